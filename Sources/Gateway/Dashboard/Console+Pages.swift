import Core
import Foundation
import GRPCCore
import Hummingbird
import Wire

/// The console's pages, in the navigation's order.
package enum ConsolePage: String, CaseIterable, Sendable {
    case network, today, liability, allowances, conflicts, settlement, member

    var path: String { "/\(rawValue)" }

    var title: String {
        switch self {
        case .network: "Network"
        case .today: "Today"
        case .liability: "Liability"
        case .allowances: "Allowances"
        case .conflicts: "Conflicts"
        case .settlement: "Settlement"
        case .member: "Members"
        }
    }
}

extension Console {
    typealias HTML = ConsoleHTML

    /// A page for `session`: the whole document, or with `partial=1` only its `main` (the live
    /// refresh).
    func render(_ page: ConsolePage, request: Request, session: ConsoleSessions.Session) async throws -> Response {
        let query = request.uri.queryParameters
        func parameter(_ name: String, max: Int = 128) -> String {
            String((query[Substring(name)].map(String.init) ?? "").prefix(max))
        }
        let body: String
        var refresh = settings.refreshMilliseconds
        switch page {
        case .network: body = try await networkPage()
        case .today: body = try await todayPage(day: parameter("day", max: 10))
        case .liability: body = try await liabilityPage()
        case .allowances: body = try await allowancesPage()
        case .conflicts:
            body = try await conflictsPage(
                site: parameter("site", max: 64), kind: parameter("kind", max: 64), detail: parameter("detail", max: 9))
        case .settlement:
            body = try await settlementPage(day: parameter("day", max: 10), session: session)
            refresh = 0
        case .member:
            body = try await memberPage(
                query: parameter("q", max: 64), notice: parameter("notice", max: 200), session: session)
            refresh = 0
        }
        if query["partial"] == "1" {
            return Response(
                status: .ok, headers: Self.pageHeaders(), body: ResponseBody(byteBuffer: .init(string: body)))
        }
        return Self.page(
            status: .ok, title: page.title, body: body, session: session, current: page, refreshMilliseconds: refresh)
    }

    /// The program the pages compute with (the Ops API's), nil before any is published.
    var program: Program? { try? ops.programInForce(at: store.clockNow) }

    // MARK: Network

    func networkPage() async throws -> String {
        let sites = try await call("ListSites", Coalition_Ops_V1_ListSitesRequest(), ops.listSites).sites
        let now = store.clockNow.milliseconds
        let program = self.program
        var rows: [[String]] = []
        var classes: [String?] = []
        var offline = 0
        for site in sites {
            let online = site.lastSeenAtMs > 0 && now - site.lastSeenAtMs <= settings.offlineAfterMilliseconds
            if !online { offline += 1 }
            let share =
                site.exposureLimitPoints > 0
                ? Double(site.unsyncedExposurePoints) / Double(site.exposureLimitPoints) : 0
            let price =
                SiteID(site.siteID).flatMap { program?.site($0) }.flatMap {
                    program?.settlement.formatPrices[$0.format]?.redeemPrice
                } ?? .zero
            let alert = !online || share >= 0.8 || !site.flags.isEmpty || site.status == "revoked"
            classes.append(alert ? "alert" : nil)
            let money = program.map { HTML.money(price.halfEvenTimes(site.unsyncedExposurePoints), $0.currency) } ?? ""
            rows.append([
                "<span class=\"mono\">\(HTML.escape(site.siteID))</span>", HTML.escape(site.name),
                HTML.escape(site.format),
                online
                    ? "<span class=\"state-online\">online</span>"
                    : "<span class=\"state-offline\">\(site.status == "revoked" ? "revoked" : "offline")</span>",
                HTML.escape(HTML.time(site.lastSeenAtMs, program?.timeZone))
                    + (site.lastSeenAtMs > 0 ? " (\(HTML.duration(milliseconds: now - site.lastSeenAtMs)) ago)" : ""),
                HTML.duration(milliseconds: site.syncLagMs),
                "<span data-points=\"\(site.unsyncedExposurePoints)\">\(HTML.number(site.unsyncedExposurePoints))</span>"
                    + " / \(HTML.number(site.exposureLimitPoints)) pts · \(HTML.escape(money)) "
                    + HTML.bar(part: site.unsyncedExposurePoints, whole: site.exposureLimitPoints),
                HTML.number(site.offlineRiskPoints),
                site.flags.map { "<span class=\"flag\">\(HTML.escape($0))</span>" }.joined(),
            ])
        }
        return "<h1>Network</h1><p class=\"sub\">Every site's link to the gateway. Red: offline (no call for "
            + "\(HTML.duration(milliseconds: settings.offlineAfterMilliseconds))), exposure at 80 % of its limit or "
            + "more, flags raised, or revoked.</p>"
            + HTML.figures([
                ("sites-count", "Sites", HTML.number(Int64(sites.count))),
                ("sites-offline", "Offline", HTML.number(Int64(offline))),
                (
                    "exposure-total", "Unsynced exposure (points)",
                    HTML.number(sites.reduce(0) { $0 + $1.unsyncedExposurePoints })
                ),
            ])
            + HTML.table(
                id: "sites",
                headers: [
                    "Site", "Name", "Format", "State", "Last seen", "Sync lag", "Unsynced exposure / limit",
                    "Offline risk (pts)", "Flags",
                ], rows: rows, rowClasses: classes, empty: "No sites in the program.")
    }

    // MARK: Today

    func todayPage(day: String) async throws -> String {
        var request = Coalition_Ops_V1_GetActivityRequest()
        request.day = day
        let activity = try await call("GetActivity", request, ops.getActivity)
        var issued = [Int64](repeating: 0, count: 24)
        var redeemed = [Int64](repeating: 0, count: 24)
        var byFormat: [String: (Int64, Int64)] = [:]
        for hour in activity.hours {
            let index = Int(min(23, max(0, hour.hour)))
            issued[index] += hour.issuedPoints
            redeemed[index] += hour.redeemedPoints
            let sums = byFormat[hour.format] ?? (0, 0)
            byFormat[hour.format] = (sums.0 + hour.issuedPoints, sums.1 + hour.redeemedPoints)
        }
        let chart = HTML.lineChart(
            id: "hourly-chart", title: "Points per hour, \(activity.day)",
            labels: (0..<24).map { $0 < 10 ? "0\($0):00" : "\($0):00" },
            series: [("issued", "issued", issued), ("redeemed", "redeemed", redeemed)])
        let formats = HTML.table(
            id: "formats", headers: ["Format", "Issued (pts)", "Redeemed (pts)"],
            rows: byFormat.sorted { $0.key < $1.key }.map {
                [HTML.escape($0.key), HTML.number($0.value.0), HTML.number($0.value.1)]
            }, empty: "No activity this day.")
        let merchants = HTML.table(
            id: "top-merchants", headers: ["Merchant", "Site", "Issued (pts)", "Redeemed (pts)", "Transactions"],
            rows: activity.topMerchants.map {
                [
                    "<span class=\"mono\">\(HTML.escape($0.merchantID))</span>", HTML.escape($0.siteID),
                    HTML.number($0.issuedPoints), HTML.number($0.redeemedPoints), HTML.number($0.transactions),
                ]
            }, empty: "No merchant activity this day.")
        let promotions = HTML.table(
            id: "promotions", headers: ["Promotion", "Budget (pts)", "Given (pts)", "Left (pts)", "Burn"],
            rows: activity.promotions.map {
                [
                    "<span class=\"mono\">\(HTML.escape($0.promotionID))</span>", HTML.number($0.budgetPoints),
                    HTML.number($0.givenPoints), HTML.number($0.leftPoints),
                    HTML.bar(part: $0.givenPoints, whole: $0.budgetPoints, alertAt: 0.9),
                ]
            }, empty: "No budgeted promotion in the program.")
        return "<h1>Today</h1><p class=\"sub\">Points issued and redeemed by the transactions of "
            + "\(HTML.escape(activity.day)) (program time zone), by the hour they happened.</p>"
            + "<form class=\"inline\" method=\"get\" action=\"/today\"><label>Day<input name=\"day\" value=\""
            + HTML.escape(activity.day) + "\" pattern=\"\\d{4}-\\d{2}-\\d{2}\"></label>"
            + "<button class=\"primary\" type=\"submit\">Show</button></form>"
            + HTML.figures([
                ("issued-total", "Issued (points)", HTML.number(activity.issuedPoints)),
                ("redeemed-total", "Redeemed (points)", HTML.number(activity.redeemedPoints)),
            ])
            + chart + "<h2>By format</h2>" + formats + "<h2>Top merchants</h2>" + merchants
            + "<h2>Promotion budgets</h2>" + promotions
    }

    // MARK: Liability

    func liabilityPage() async throws -> String {
        let liability = try await call("GetLiability", Coalition_Ops_V1_GetLiabilityRequest(), ops.getLiability)
        guard let currency = program?.currency else {
            return "<h1>Liability</h1><p class=\"empty\">No program is published.</p>"
        }
        return "<h1>Liability</h1><p class=\"sub\">The points members hold as of "
            + HTML.escape(HTML.time(liability.asOfMs, program?.timeZone))
            + ", valued at the program's highest redeem price (\(HTML.escape(liability.redeemPrice)) minor units per "
            + "point, rounded half to even).</p>"
            + HTML.figures([
                ("outstanding-points", "Outstanding (points)", HTML.number(liability.outstandingPoints)),
                ("outstanding-value", "Value at redeem price", HTML.money(liability.outstandingValueMinor, currency)),
                ("members-with-points", "Members holding points", HTML.number(liability.membersWithPoints)),
                ("expired-points", "Breakage to date (points expired)", HTML.number(liability.expiredPoints)),
            ])
            + "<h2>Expiring</h2>"
            + HTML.table(
                id: "expiring", headers: ["Within", "Points", "Share of outstanding"],
                rows: [
                    ("30 days", liability.expiring30DaysPoints), ("60 days", liability.expiring60DaysPoints),
                    ("90 days", liability.expiring90DaysPoints),
                ].map {
                    [$0.0, HTML.number($0.1), HTML.bar(part: $0.1, whole: liability.outstandingPoints, alertAt: 2)]
                })
    }

    /// What each site's escrow holds and the allowances active now (docs/operations.md,
    /// "Allowances").
    func allowancesPage() async throws -> String {
        var request = Coalition_Ops_V1_ListAllowancesRequest()
        request.activeOnly = true
        request.pageSize = 1_000
        let listed = try await call("ListAllowances", request, ops.listAllowances)
        let zone = program?.timeZone
        return "<h1>Allowances</h1><p class=\"sub\">Points reserved for members at sites (escrow): spendable "
            + "there, offline too, until the lease ends; still the members' points.</p>"
            + HTML.figures([
                (
                    "escrowed-total", "Escrowed (points)",
                    HTML.number(listed.escrow.reduce(0) { $0 + $1.escrowedPoints })
                ),
                ("active-allowances", "Active allowances", HTML.number(Int64(listed.allowances.count))),
            ])
            + "<h2>By site</h2>"
            + HTML.table(
                id: "escrow", headers: ["Site", "Escrowed (points)"],
                rows: listed.escrow.map { [HTML.escape($0.siteID), HTML.number($0.escrowedPoints)] },
                empty: "No site holds escrow.")
            + "<h2>Active</h2>"
            + HTML.table(
                id: "allowances", headers: ["Allowance", "Site", "Member", "Granted", "Spent", "Left", "Lease until"],
                rows: listed.allowances.map {
                    [
                        HTML.escape($0.allowanceID), HTML.escape($0.siteID), HTML.escape($0.memberID),
                        HTML.number($0.grantedPoints), HTML.number($0.spentPoints), HTML.number($0.leftPoints),
                        HTML.escape(HTML.time($0.leaseUntilMs, zone)),
                    ]
                }, empty: "No allowance is active.")
            + (try await quotasSection())
    }

    /// Each budgeted promotion's budget and what each site holds of it (docs/protocol.md,
    /// "Promotion quotas").
    func quotasSection() async throws -> String {
        let listed = try await call(
            "ListPromotionQuotas", Coalition_Ops_V1_ListPromotionQuotasRequest(), ops.listPromotionQuotas)
        return "<h2>Promotion budgets</h2>"
            + HTML.table(
                id: "promotion-budgets", headers: ["Promotion", "Budget", "Given", "Reserved for sites", "Pool"],
                rows: listed.promotions.map {
                    [
                        HTML.escape($0.promotionID), HTML.number($0.budgetPoints), HTML.number($0.givenPoints),
                        HTML.number($0.reservedPoints), HTML.number($0.poolPoints),
                    ]
                }, empty: "No promotion has a budget.")
            + "<h2>Quotas by site</h2>"
            + HTML.table(
                id: "promotion-quotas",
                headers: ["Promotion", "Site", "Given", "Reserved", "Quota left", "Recent use"],
                rows: listed.quotas.map {
                    [
                        HTML.escape($0.promotionID), HTML.escape($0.siteID), HTML.number($0.givenPoints),
                        HTML.number($0.reservedPoints), HTML.number($0.quotaLeftPoints), HTML.number($0.recentPoints),
                    ]
                }, empty: "No site holds a quota.")
    }
}
