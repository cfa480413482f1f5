import Core
import Foundation
import GRPCCore
import Hummingbird
import Logging
import NIOCore
import Wire

// The console's conflicts, settlement and member pages, and its actions (each an Ops call made as
// the signed-in operator, so it is recorded under that name as the CLI's are).
extension Console {
    /// Conflicts a page lists.
    static var conflictsPageSize: Int32 { 100 }
    /// Days the settlement page lists, from today back.
    static var settlementDays: Int { 14 }

    // MARK: Conflicts

    func conflictsPage(site: String, kind: String, detail: String) async throws -> String {
        var request = Coalition_Ops_V1_ListConflictsRequest()
        request.siteID = site
        request.kind = kind
        request.pageSize = Self.conflictsPageSize
        let conflicts = try await call("ListConflicts", request, ops.listConflicts).conflicts
        let program = self.program
        func atRisk(_ conflict: Coalition_Ops_V1_Conflict) -> String {
            guard let program else { return "" }
            let price =
                SiteID(conflict.siteID).flatMap { program.site($0) }.flatMap {
                    program.settlement.formatPrices[$0.format]?.redeemPrice
                } ?? program.highestRedeemPrice
            return HTML.money(price.halfEvenTimes(conflict.points), program.currency)
        }
        let filter = "site=\(HTML.query(site))&kind=\(HTML.query(kind))"
        var html = "<h1>Conflicts</h1><p class=\"sub\">What the gateway found while posting and how its written "
        html += "rules resolved it, in the order found; money at risk is the points at the site's redeem price.</p>"
        html += "<form class=\"inline\" method=\"get\" action=\"/conflicts\"><label>Site<select name=\"site\">"
        html += "<option value=\"\">every site</option>"
        for id in program?.sites.map(\.id.rawValue) ?? [] {
            html += "<option\(id == site ? " selected" : "")>\(HTML.escape(id))</option>"
        }
        html += "</select></label><label>Kind<select name=\"kind\"><option value=\"\">every kind</option>"
        for option in ConflictKind.allCases.map(\.rawValue) {
            html += "<option\(option == kind ? " selected" : "")>\(HTML.escape(option))</option>"
        }
        html += "</select></label><button class=\"primary\" type=\"submit\">Filter</button></form>"
        if let number = Int(detail), number >= 1 {
            var one = request
            one.pageSize = 1
            one.pageToken = String(number - 1)
            if let conflict = try await call("ListConflicts", one, ops.listConflicts).conflicts.first {
                html += "<section id=\"conflict-detail\"><h2>Conflict \(number)</h2>"
                html += HTML.figures([
                    ("detail-kind", "Kind", conflict.kind), ("detail-site", "Site", conflict.siteID),
                    ("detail-points", "Points", HTML.number(conflict.points)),
                    ("detail-money", "Money at risk", atRisk(conflict)),
                ])
                html += "<p>Member <span class=\"mono\">\(HTML.escape(conflict.memberID))</span>, transaction "
                html += "<span class=\"mono\">\(HTML.escape(conflict.transactionID))</span>, detected "
                html += HTML.escape(HTML.time(conflict.detectedAtMs, program?.timeZone)) + ".</p>"
                html += "<p>Resolution: \(HTML.escape(conflict.resolution))</p>"
                if !conflict.detail.isEmpty { html += "<p class=\"mono\">\(HTML.escape(conflict.detail))</p>" }
                html += "</section>"
            }
        }
        html += HTML.table(
            id: "conflicts",
            headers: ["#", "Kind", "Site", "Member", "Points", "Money at risk", "Detected", "Resolution"],
            rows: conflicts.map { conflict in
                [
                    "<a href=\"/conflicts?\(filter)&detail=\(HTML.query(conflict.conflictID))\">\(HTML.escape(conflict.conflictID))</a>",
                    HTML.escape(conflict.kind), HTML.escape(conflict.siteID),
                    "<span class=\"mono\">\(HTML.escape(conflict.memberID))</span>", HTML.number(conflict.points),
                    HTML.escape(atRisk(conflict)), HTML.escape(HTML.time(conflict.detectedAtMs, program?.timeZone)),
                    HTML.escape(conflict.resolution),
                ]
            }, empty: "No conflicts match.")
        return html
    }

    // MARK: Settlement

    func settlementPage(day: String, session: ConsoleSessions.Session) async throws -> String {
        guard let program else { return "<h1>Settlement</h1><p class=\"empty\">No program is published.</p>" }
        let today = program.timeZone.date(of: store.clockNow)
        var html = "<h1>Settlement</h1><p class=\"sub\">Each day's statement between merchants, closed once by an "
        html += "operator (recorded with the name); a closed day's files carry its content hash.</p>"
        var rows: [[String]] = []
        for offset in 0..<Self.settlementDays {
            let period = today.adding(days: -offset)
            var request = Coalition_Ops_V1_GetSettlementRequest()
            request.period = period.description
            let closed = try? await call("GetSettlement", request, ops.getSettlement).result
            let link = "<a href=\"/settlement?day=\(period)\">\(period)</a>"
            if let closed {
                rows.append([
                    link, "closed", HTML.escape(closed.closedBy),
                    HTML.escape(HTML.time(closed.closedAtMs, program.timeZone)),
                    "<span class=\"mono\">\(HTML.escape(String(closed.contentHash.prefix(16))))…</span>",
                ])
            } else if offset == 0 {
                rows.append([link, "open (the day has not ended)", "", "", ""])
            } else {
                rows.append([
                    link, "open", "", "",
                    "<form method=\"post\" action=\"/settlement/close\"><input type=\"hidden\" name=\"csrf\" value=\""
                        + HTML.escape(session.formToken) + "\"><input type=\"hidden\" name=\"day\" value=\"\(period)\">"
                        + "<button class=\"primary\" type=\"submit\" id=\"close-\(period)\">Close \(period)</button></form>",
                ])
            }
        }
        html += HTML.table(
            id: "periods", headers: ["Day", "State", "Closed by", "Closed at", "Content hash"], rows: rows)
        guard let period = CivilDate(parsing: day) else { return html }
        var request = Coalition_Ops_V1_GetSettlementRequest()
        request.period = period.description
        let result = try await call("GetSettlement", request, ops.getSettlement).result
        let currency = program.currency
        html += "<section id=\"statement\"><h2>Statement of \(period)</h2>"
        html += "<p>Content hash <code id=\"content-hash\">\(HTML.escape(result.contentHash))</code> · "
        html += "<a id=\"download-csv\" href=\"/settlement/download?day=\(period)&format=csv\">CSV</a> · "
        html += "<a id=\"download-json\" href=\"/settlement/download?day=\(period)&format=json\">JSON</a></p>"
        html += HTML.table(
            id: "statement-lines",
            headers: [
                "Merchant", "Site", "Issued (pts)", "Redeemed (pts)", "Reversed (pts)", "Payable", "Receivable", "Net",
            ],
            rows: result.merchants.map {
                [
                    "<span class=\"mono\">\(HTML.escape($0.merchantID))</span>", HTML.escape($0.siteID),
                    HTML.number($0.pointsIssued), HTML.number($0.pointsRedeemed), HTML.number($0.pointsReversed),
                    HTML.money($0.payableMinor, currency), HTML.money($0.receivableMinor, currency),
                    HTML.money($0.netMinor, currency),
                ]
            }, empty: "No merchant had activity that day.")
        html += "<p>Platform net \(HTML.escape(HTML.money(result.platform.netMinor, currency))); journal debits "
        html += "\(HTML.escape(HTML.money(result.journalDebitsMinor, currency))) = credits "
        html += "\(HTML.escape(HTML.money(result.journalCreditsMinor, currency))).</p></section>"
        return html
    }

    /// A closed day's statement file (`format=csv` or `json`), with its content hash in
    /// `X-Content-Hash`.
    func download(_ request: Request, session: ConsoleSessions.Session) async throws -> Response {
        let query = request.uri.queryParameters
        let day = String((query["day"] ?? "").prefix(10))
        guard let format = query["format"].map(String.init), ["csv", "json"].contains(format) else {
            return Self.page(
                status: .badRequest, title: "Not done",
                body: "<p class=\"error\" id=\"error\">format must be csv or json</p>", session: session)
        }
        var export = Coalition_Ops_V1_ExportSettlementRequest()
        export.period = day
        let files = try await call("ExportSettlement", export, ops.exportSettlement)
        guard let file = files.files.first(where: { $0.name == "\(day).\(format)" }) else {
            return Self.page(
                status: .notFound, title: "Not found",
                body: "<p class=\"error\" id=\"error\">no \(format) file for \(HTML.escape(day))</p>", session: session)
        }
        var headers = Self.pageHeaders(contentType: format == "csv" ? "text/csv; charset=utf-8" : "application/json")
        headers[.contentDisposition] = "attachment; filename=\"\(file.name)\""
        headers[.init("X-Content-Hash")!] = files.contentHash
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.content)))
    }

    func closeDay(form: [String: String], session: ConsoleSessions.Session) async throws -> Response {
        var request = Coalition_Ops_V1_CloseSettlementRequest()
        request.period = String((form["day"] ?? "").prefix(10))
        request.requestID = "console-close-\(request.period)"
        _ = try await call("CloseSettlement", request, ops.closeSettlement)
        logger.notice(
            "console: settlement closed",
            metadata: ["operator": "\(session.operatorName)", "period": "\(request.period)"])
        return Self.redirect("/settlement?day=\(request.period)")
    }

    // MARK: Members

    func memberPage(query: String, notice: String, session: ConsoleSessions.Session) async throws -> String {
        var html = "<h1>Members</h1><p class=\"sub\">Look a member up by phone, member id or card number. Phone "
        html += "numbers are shown masked.</p>"
        var request = Coalition_Ops_V1_GetMemberRequest()
        let trimmed = query.trimmingCharacters(in: .whitespaces)
        if MemberID(trimmed) != nil {
            request.memberID = trimmed
        } else if trimmed.hasPrefix("+")
            || (trimmed.count >= 7 && trimmed.allSatisfy(\.isNumber) && trimmed.count != 16)
        {
            request.phone = trimmed
        } else {
            request.cardNumber = trimmed
        }
        // A phone number typed is not shown back whole either.
        let shown = request.phone.isEmpty ? query : PhoneMask.mask(request.phone)
        html += "<form class=\"inline\" method=\"get\" action=\"/member\"><label>Phone, member id or card<input "
        html += "name=\"q\" id=\"member-query\" value=\"\(HTML.escape(shown))\" autocomplete=\"off\"></label>"
        html += "<button class=\"primary\" type=\"submit\">Look up</button></form>"
        if !notice.isEmpty { html += "<p class=\"notice\" id=\"notice\">\(HTML.escape(notice))</p>" }
        guard !query.isEmpty else { return html }
        let member: Coalition_Ops_V1_GetMemberResponse
        do {
            member = try await call("GetMember", request, ops.getMember)
        } catch let error as any RPCErrorConvertible where error.rpcErrorCode == .notFound {
            return html + "<p class=\"error\" id=\"error\">No member matches.</p>"
        }
        let zone = program?.timeZone
        let phone = member.phone.isEmpty ? (request.phone.isEmpty ? "" : request.phone) : member.phone
        html += "<section id=\"member\"><h2>Member <span class=\"mono\" id=\"member-id\">"
        html += "\(HTML.escape(member.memberID))</span></h2>"
        html += HTML.figures([
            ("member-balance", "Balance (points)", HTML.number(member.balancePoints)),
            ("member-held", "Held (points)", HTML.number(member.heldPoints)),
            ("member-tier", "Tier", member.tier),
            ("member-phone", "Phone", PhoneMask.mask(phone)),
            ("member-card", "Card", member.cardNumber),
            ("member-enrolled", "Enrolled", HTML.time(member.enrolledAtMs, zone) + " at " + member.enrolledSiteID),
        ])
        var history = Coalition_Ops_V1_MemberHistoryRequest()
        history.memberID = member.memberID
        history.pageSize = 50
        let entries = try await call("MemberHistory", history, ops.memberHistory).entries
        html += "<h3>History</h3>"
        html += HTML.table(
            id: "history", headers: ["When", "Kind", "Points", "Site", "Merchant", "Transaction"],
            rows: entries.map {
                [
                    HTML.escape(HTML.time($0.occurredAtMs, zone)), HTML.escape($0.kind), HTML.number($0.points),
                    HTML.escape($0.siteID), HTML.escape($0.merchantID),
                    "<span class=\"mono\">\(HTML.escape($0.transactionID))</span>",
                ]
            })
        html += "<h3>Adjust</h3><p class=\"sub\">A credit names who pays for it (platform or a merchant id); a "
        html += "reason is required; the adjustment is booked under your name.</p>"
        html += "<form class=\"inline\" method=\"post\" action=\"/member/adjust\" id=\"adjust-form\">"
        html += "<input type=\"hidden\" name=\"csrf\" value=\"\(HTML.escape(session.formToken))\">"
        html += "<input type=\"hidden\" name=\"member\" value=\"\(HTML.escape(member.memberID))\">"
        html += "<input type=\"hidden\" name=\"request_id\" value=\"console-\(UUID().uuidString.lowercased())\">"
        html += "<label>Points (+/−)<input name=\"points\" type=\"number\" required></label>"
        html += "<label>Funded by<input name=\"funded_by\" value=\"platform\"></label>"
        html += "<label>Reason<input name=\"reason\" required maxlength=\"200\"></label>"
        html += "<button class=\"primary\" type=\"submit\">Book adjustment</button></form></section>"
        return html
    }

    func adjust(form: [String: String], session: ConsoleSessions.Session) async throws -> Response {
        var request = Coalition_Ops_V1_AdjustMemberRequest()
        request.memberID = String((form["member"] ?? "").prefix(64))
        request.requestID = String((form["request_id"] ?? "").prefix(64))
        request.reason = form["reason"] ?? ""
        request.fundedBy = String((form["funded_by"] ?? "").prefix(64))
        guard let points = Int64(form["points"] ?? "") else {
            throw ServiceError.invalid("points", "a whole number of points, + or −")
        }
        request.points = points
        let booked = try await call("AdjustMember", request, ops.adjustMember)
        let notice =
            "Adjustment \(booked.transactionID) booked: the balance is now \(booked.balanceAfterPoints) points."
        return Self.redirect("/member?q=\(HTML.query(request.memberID))&notice=\(HTML.query(notice))")
    }
}

/// Phone numbers as the console shows them (PIPL: no full number on an operator's screen): the
/// country code, the first three and the last four digits (`+86 138****8000`).
package enum PhoneMask {
    package static func mask(_ phone: String) -> String {
        guard !phone.isEmpty else { return "" }
        let digits = Array(phone.filter(\.isNumber))
        guard digits.count >= 8 else { return String(repeating: "*", count: digits.count) }
        let tail = String(digits.suffix(4))
        let headCount = digits.count >= 11 ? 3 : 0
        let countryCount = max(0, digits.count - 11)
        let country = String(digits.prefix(countryCount))
        let head = String(digits.dropFirst(countryCount).prefix(headCount))
        let hidden = String(repeating: "*", count: digits.count - countryCount - headCount - 4)
        return (country.isEmpty ? "" : "+\(country) ") + head + hidden + tail
    }
}
