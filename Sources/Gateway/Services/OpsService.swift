import Core
import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Wire
import X509

/// `coalition.ops.v1.Ops`: operations for the `coalition admin` CLI, on the gateway's mTLS port.
/// Only an operator certificate (`coalition://operator/NAME`) is accepted; the name is recorded
/// on every change.
package struct OpsService<
    Store: OperationsLedger & SettlementLedger & LedgerJobs & MallLedger & LotteryLedger & MonitoringLedger
        & AllowanceLedger & PromotionQuotaLedger
>:
    Coalition_Ops_V1_Ops
        .ServiceProtocol
{
    let store: Store
    private let phoneHashKey: [UInt8]?
    let logger: Logger
    private let refusals: RefusalRecorder
    /// The web console's sign-ins and its address, when this gateway serves one.
    let console: ConsoleLink?

    package init(
        store: Store, phoneHashKey: [UInt8]?, logger: Logger, refusals: RefusalRecorder? = nil,
        console: ConsoleLink? = nil
    ) {
        self.store = store
        self.phoneHashKey = phoneHashKey
        self.logger = logger
        self.refusals = refusals ?? .logging(logger)
        self.console = console
    }
}

/// What the Ops API needs of the web console: its sign-ins, and its address once it listens.
package struct ConsoleLink: Sendable {
    package let sessions: ConsoleSessions
    package let baseURL: @Sendable () async throws -> String

    package init(sessions: ConsoleSessions, baseURL: @escaping @Sendable () async throws -> String) {
        self.sessions = sessions
        self.baseURL = baseURL
    }

    /// A one-time login link for `operatorName` (`ConsoleSessions.mintLogin`): its URL and expiry.
    package func mint(for operatorName: String, now: Timestamp) async throws -> (url: String, expiresAt: Timestamp) {
        let link = try sessions.mintLogin(for: operatorName, now: now)
        return (try await baseURL() + "/login?token=" + link.token, link.expiresAt)
    }
}

/// The operator the web console calls the Ops API for. Set only by the console, in process, for
/// a signed-in session; a call over the network never carries it (it is a task-local value, not
/// metadata) and is bound to its operator certificate as always.
package enum ConsoleCaller {
    @TaskLocal package static var operatorName: String?
}

extension OpsService {
    /// The most conflicts a listing pages through (older ones are read in the database file).
    static var conflictsListMax: Int { 1_000_000 }

    package func listSites(
        request: ServerRequest<Coalition_Ops_V1_ListSitesRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListSitesResponse> {
        try await handle(request, context) { _, _ in
            var response = Coalition_Ops_V1_ListSitesResponse()
            let program = store.programs.latest?.program
            response.sites = try await store.siteStatuses().map { record in
                var site = Coalition_Ops_V1_SiteStatus(record)
                site.exposureLimitPoints = program?.site(record.site)?.offline.siteExposureMax.value ?? 0
                return site
            }
            return response
        }
    }

    package func setSiteStatus(
        request: ServerRequest<Coalition_Ops_V1_SetSiteStatusRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_SetSiteStatusResponse> {
        try await handle(request, context) { name, message in
            guard let site = SiteID(message.siteID), store.programs.latest?.program.site(site) != nil else {
                throw ServiceError.notFound("site_id", "unknown site '\(message.siteID.prefix(64))'")
            }
            guard ["active", "revoked"].contains(message.status) else {
                throw ServiceError.invalid("status", "must be active or revoked")
            }
            try Self.requireReason(message.reason)
            try await store.setSite(site, revoked: message.status == "revoked", by: name, reason: message.reason)
            logger.notice(
                "site status set",
                metadata: [
                    "site.id": "\(site)", "status": "\(message.status)", "operator": "\(name)",
                    "reason": "\(message.reason)",
                ])
            var response = Coalition_Ops_V1_SetSiteStatusResponse()
            response.site =
                try await store.siteStatuses().first { $0.site == site }.map(Coalition_Ops_V1_SiteStatus.init)
                ?? Coalition_Ops_V1_SiteStatus()
            return response
        }
    }

    package func revokeCertificate(
        request: ServerRequest<Coalition_Ops_V1_RevokeCertificateRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_RevokeCertificateResponse> {
        try await handle(request, context) { name, message in
            let serial = message.serial.lowercased()
            guard (1...128).contains(serial.utf8.count),
                serial.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x3A })
            else {
                throw ServiceError.invalid("serial", "hexadecimal bytes separated by colons, at most 128 characters")
            }
            try Self.requireReason(message.reason)
            let (record, already) = try await store.revokeCertificate(serial: serial, reason: message.reason, by: name)
            logger.notice(
                "certificate revoked",
                metadata: ["serial": "\(serial)", "operator": "\(name)", "reason": "\(message.reason)"])
            var response = Coalition_Ops_V1_RevokeCertificateResponse()
            response.certificate = Coalition_Ops_V1_RevokedCertificate(record)
            response.alreadyRevoked = already
            return response
        }
    }

    package func listRevokedCertificates(
        request: ServerRequest<Coalition_Ops_V1_ListRevokedCertificatesRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListRevokedCertificatesResponse> {
        try await handle(request, context) { _, _ in
            var response = Coalition_Ops_V1_ListRevokedCertificatesResponse()
            response.certificates = try await store.revokedCertificates().map(Coalition_Ops_V1_RevokedCertificate.init)
            return response
        }
    }

    package func listRefusedCalls(
        request: ServerRequest<Coalition_Ops_V1_ListRefusedCallsRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListRefusedCallsResponse> {
        try await handle(request, context) { _, message in
            let size = try Self.pageSize(message.pageSize)
            guard message.before >= 0 else {
                throw ServiceError.invalid("before", "must be 0 (the newest) or a call id (found \(message.before))")
            }
            let calls = try await store.refusedCalls(before: message.before == 0 ? nil : message.before, limit: size)
            var response = Coalition_Ops_V1_ListRefusedCallsResponse()
            response.calls = calls.map(Coalition_Ops_V1_RefusedCall.init)
            response.nextBefore = calls.count == size ? calls.last?.id ?? 0 : 0
            response.countsSinceStart = refusals.counts.sorted { $0.key < $1.key }.map { kind, count in
                var entry = Coalition_Ops_V1_RefusalCount()
                entry.kind = kind
                entry.count = count
                return entry
            }
            response.unwrittenSinceStart = refusals.unwritten
            return response
        }
    }

    /// A listing's `page_size`: 0 means 100; at most 1,000.
    static func pageSize(_ requested: Int32) throws -> Int {
        let size = requested == 0 ? 100 : Int(requested)
        guard (1...1_000).contains(size) else {
            throw ServiceError.invalid("page_size", "must be 0 (default 100) or 1 to 1000 (found \(requested))")
        }
        return size
    }

    /// An operator's reason, recorded with the change: 1 to 200 characters.
    static func requireReason(_ reason: String) throws {
        guard !reason.isEmpty, reason.count <= 200 else { throw ServiceError.invalid("reason", "1 to 200 characters") }
    }

    package func listConflicts(
        request: ServerRequest<Coalition_Ops_V1_ListConflictsRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListConflictsResponse> {
        try await handle(request, context) { _, message in
            let size = try Self.pageSize(message.pageSize)
            let site = message.siteID.isEmpty ? nil : SiteID(message.siteID)
            if !message.siteID.isEmpty, site == nil { throw ServiceError.invalid("site_id", Slug.rule) }
            let offset = message.pageToken.isEmpty ? 0 : (Int(message.pageToken) ?? -1)
            // A token is an offset into at most `conflictsListMax` conflicts.
            guard (0...Self.conflictsListMax).contains(offset) else {
                throw ServiceError.invalid("page_token", "is not a token from a previous page")
            }
            let all = try await store.conflicts(
                site: site, kind: message.kind.isEmpty ? nil : message.kind, limit: offset + size + 1
            )
            .filter {
                (message.fromMs == 0 || $0.detectedAt.milliseconds >= message.fromMs)
                    && (message.toMs == 0 || $0.detectedAt.milliseconds < message.toMs)
            }
            var response = Coalition_Ops_V1_ListConflictsResponse()
            response.conflicts = all.dropFirst(offset).prefix(size).enumerated().map { index, record in
                var conflict = Coalition_Ops_V1_Conflict()
                conflict.conflictID = String(offset + index + 1)
                conflict.kind = record.kind
                conflict.siteID = record.site ?? ""
                conflict.transactionID = record.transaction ?? ""
                conflict.memberID = record.member ?? ""
                conflict.resolution = record.resolution
                conflict.points = record.points
                conflict.detectedAtMs = record.detectedAt.milliseconds
                conflict.detail = record.detail
                return conflict
            }
            if all.count > offset + size { response.nextPageToken = String(offset + size) }
            return response
        }
    }

    package func getMember(
        request: ServerRequest<Coalition_Ops_V1_GetMemberRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_GetMemberResponse> {
        try await handle(request, context) { _, message in
            let id: MemberID?
            switch message.key {
            case .memberID(let text):
                guard let parsed = MemberID(text) else {
                    throw ServiceError.invalid("member_id", "must be a 26-character member id")
                }
                id = parsed
            case .phone(let text):
                id = try await MemberLookup.byPhone(text, phoneHashKey: phoneHashKey, store: store)
            case .cardNumber(let card):
                id = try await MemberLookup.byCard(card, store: store)
            case nil:
                throw ServiceError.invalid("key", "set one of member_id, phone or card_number")
            }
            guard let id, let detail = try await store.memberDetail(id) else {
                throw ServiceError(.notFound, "no such member")
            }
            return Coalition_Ops_V1_GetMemberResponse(detail)
        }
    }

    package func memberHistory(
        request: ServerRequest<Coalition_Ops_V1_MemberHistoryRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_MemberHistoryResponse> {
        try await handle(request, context) { _, message in
            guard let id = MemberID(message.memberID) else {
                throw ServiceError.invalid("member_id", "must be a 26-character member id")
            }
            let size = message.pageSize == 0 ? 50 : Int(message.pageSize)
            guard (1...1_000).contains(size) else {
                throw ServiceError.invalid("page_size", "0 (default 50) or 1 to 1000")
            }
            var before: Int64?
            if !message.pageToken.isEmpty {
                guard let token = Int64(message.pageToken), token > 0 else {
                    throw ServiceError.invalid("page_token", "is not a token from a previous page")
                }
                before = token
            }
            let rows = try await store.memberHistory(id, before: before, limit: size + 1)
            var response = Coalition_Ops_V1_MemberHistoryResponse()
            response.entries = rows.prefix(size).map(Coalition_Ops_V1_LedgerEntry.init)
            if rows.count > size, let last = rows.prefix(size).last { response.nextPageToken = String(last.position) }
            return response
        }
    }

    package func adjustMember(
        request: ServerRequest<Coalition_Ops_V1_AdjustMemberRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_AdjustMemberResponse> {
        try await handle(request, context) { name, message in
            guard let requestID = RequestID(message.requestID) else {
                throw ServiceError.invalid("request_id", RequestID.rule)
            }
            guard let id = MemberID(message.memberID) else {
                throw ServiceError.invalid("member_id", "must be a 26-character member id")
            }
            guard message.points != 0, (-1_000_000_000...1_000_000_000).contains(message.points) else {
                throw ServiceError.invalid("points", "must be non-zero and at most 10^9 in size")
            }
            try Self.requireReason(message.reason)
            // Every credit names who pays for it; a debit gives the points back to the platform
            // unless it names a merchant.
            let funder: AdjustmentFunder
            if message.fundedBy.isEmpty, message.points < 0 {
                funder = .platform
            } else if let named = AdjustmentFunder(message.fundedBy) {
                funder = named
            } else {
                throw ServiceError.invalid(
                    "funded_by",
                    "\"platform\" or the id of the merchant who pays for the points (required for a credit)")
            }
            let transaction: String
            let balance: Points
            do {
                (transaction, balance) = try await store.adjust(
                    member: id, points: Points(message.points), funder: funder, reason: message.reason, by: name,
                    requestID: requestID)
            } catch let refusal as AdjustmentRefusal {
                throw ServiceError(refusal)
            }
            logger.notice(
                "adjustment",
                metadata: [
                    "member.id": "\(id)", "points": "\(message.points)", "funded_by": "\(funder)",
                    "operator": "\(name)",
                ])
            var response = Coalition_Ops_V1_AdjustMemberResponse()
            response.transactionID = transaction
            response.balanceAfterPoints = balance.value
            return response
        }
    }

    package func validateProgram(
        request: ServerRequest<Coalition_Ops_V1_ValidateProgramRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ValidateProgramResponse> {
        try await handle(request, context) { _, message in
            var response = Coalition_Ops_V1_ValidateProgramResponse()
            do {
                _ = try ProgramDocumentParser.load(Array(message.document))
                response.valid = true
            } catch let error as ProgramErrors {
                response.errors = error.errors.map { problem in
                    var wire = Coalition_Ops_V1_ProgramError()
                    wire.path = problem.path
                    wire.message = problem.message
                    return wire
                }
            }
            return response
        }
    }

    package func publishProgram(
        request: ServerRequest<Coalition_Ops_V1_PublishProgramRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_PublishProgramResponse> {
        try await handle(request, context) { name, message in
            guard RequestID(message.requestID) != nil else { throw ServiceError.invalid("request_id", RequestID.rule) }
            let version: Int64
            do {
                version = try await store.publish(
                    document: Array(message.document),
                    effectiveAt: message.effectiveAtMs == 0 ? nil : Timestamp(milliseconds: message.effectiveAtMs),
                    by: name)
            } catch let errors as ProgramErrors {
                throw ServiceError.invalid(
                    "document", errors.errors.prefix(20).map(\.description).joined(separator: "; "))
            }
            let summary = try await store.programSummaries().first { $0.version == version }
            var response = Coalition_Ops_V1_PublishProgramResponse()
            response.version = version
            response.effectiveAtMs = summary?.effectiveAt.milliseconds ?? 0
            response.documentSha256 = summary?.documentSHA256 ?? ""
            return response
        }
    }

    package func listPrograms(
        request: ServerRequest<Coalition_Ops_V1_ListProgramsRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListProgramsResponse> {
        try await handle(request, context) { _, _ in
            var response = Coalition_Ops_V1_ListProgramsResponse()
            response.programs = try await store.programSummaries().map(Coalition_Ops_V1_ProgramSummary.init)
            return response
        }
    }

    package func runExpiry(
        request: ServerRequest<Coalition_Ops_V1_RunExpiryRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_RunExpiryResponse> {
        try await handle(request, context) { name, message in
            guard let zone = store.programs.latest?.program.timeZone else {
                throw ServiceError(.failedPrecondition, "no program")
            }
            let yesterday = zone.date(of: store.clockNow).adding(days: -1)
            let day = message.asOf.isEmpty ? yesterday : try Self.period(message.asOf, field: "as_of")
            // A day not over yet would expire points before their date (a year ahead expired a
            // year's points at once).
            guard day <= yesterday else {
                throw ServiceError.invalid(
                    "as_of",
                    "must be a day that has ended in the program's time zone, at most \(yesterday) (found \(day))")
            }
            let run = try await store.runExpiry(asOfEndOf: day)
            logger.notice("expiry run", metadata: ["day": "\(day)", "points": "\(run.points)", "operator": "\(name)"])
            var response = Coalition_Ops_V1_RunExpiryResponse()
            response.membersAffected = Int64(run.members)
            response.pointsExpired = run.points.value
            response.transactions = Int64(run.transactions)
            response.alreadyRun = run.alreadyRun
            response.asOf = day.description
            return response
        }
    }

    package func listExpiryReminders(
        request: ServerRequest<Coalition_Ops_V1_ListExpiryRemindersRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListExpiryRemindersResponse> {
        try await handle(request, context) { _, message in
            guard let zone = store.programs.latest?.program.timeZone else {
                throw ServiceError(.failedPrecondition, "no program")
            }
            let start =
                message.asOf.isEmpty ? store.clockNow : zone.startOfDay(try Self.period(message.asOf, field: "as_of"))
            let size = message.pageSize == 0 ? 1_000 : Int(message.pageSize)
            guard (1...100_000).contains(size) else {
                throw ServiceError.invalid("page_size", "0 (default 1000) or 1 to 100000")
            }
            var response = Coalition_Ops_V1_ListExpiryRemindersResponse()
            response.reminders = try await store.expiryReminders(asOf: start, limit: size).map { reminder in
                var wire = Coalition_Ops_V1_ExpiryReminder()
                wire.memberID = reminder.member.description
                wire.points = reminder.points.value
                wire.expiresAtMs = reminder.expiresAt.milliseconds
                return wire
            }
            return response
        }
    }

    static func period(_ text: String, field: String = "period") throws -> CivilDate {
        guard let day = CivilDate(parsing: text) else {
            throw ServiceError.invalid(field, "must be a day, YYYY-MM-DD (found '\(text.prefix(32))')")
        }
        return day
    }

    /// Binds the call to an operator certificate and maps every error to an explicit status.
    func handle<Input: Sendable, Output: Sendable>(
        _ request: ServerRequest<Input>, _ context: ServerContext, _ body: (String, Input) async throws -> Output
    ) async throws -> ServerResponse<Output> {
        try await ServiceError.mapping {
            if let console = ConsoleCaller.operatorName {
                return ServerResponse(message: try await body(console, request.message))
            }
            let name: String
            do {
                name = try await CallerCertificate.require(
                    context, role: "operator", calls: "Ops", isRevoked: { try await store.isRevoked(serial: $0) }
                ) { identity in
                    if case .operator(let name) = identity { return name }
                    return nil
                }
            } catch let error as ServiceError {
                await refusals.record(error, service: "ops", context: context)
                throw error
            }
            return ServerResponse(message: try await body(name, request.message))
        }
    }
}
