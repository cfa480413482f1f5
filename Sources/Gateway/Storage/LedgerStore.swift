import Core
import Crypto
import Foundation
import NodeSupport
import Wire

/// The gateway's ledger, in the four parts its users need: the sync protocol, operators' reads
/// and changes, settlement, and the daily jobs. `SQLiteLedgerStore` implements them all on one
/// SQLite file; a PostgreSQL store implements the same parts with per-member serialisation in
/// the database. Every part returns domain values and throws domain errors (`LedgerRecords.swift`);
/// the services make wire messages and statuses of them.
package typealias LedgerStore = SyncLedger & OperationsLedger & SettlementLedger & LedgerJobs & MallLedger
    & MonitoringLedger
    & LotteryLedger & AllowanceLedger & PromotionQuotaLedger

/// What the sync service (`coalition.sync.v1.Sync`) needs of the ledger.
package protocol SyncLedger: Sendable {
    /// The published programs.
    var programs: ProgramCatalogue { get }
    /// Applies a contiguous batch of a site's outbox in one database transaction and returns
    /// only after it is durable. Throws `SyncRefusal` for a protocol violation (nothing applied,
    /// the site flagged).
    func push(site: SiteID, batch: [PushItem], exposure: Points, sentAt: Timestamp) async throws -> PushOutcome
    /// A page of changes after `cursor`, as the site sees them.
    func pull(site: SiteID, cursor: Int64, pageSize: Int) async throws -> PullPage
    /// The site's own transactions from `sequence`, at most `count`.
    func recover(site: SiteID, from sequence: Int64, count: Int) async throws -> RecoverPage
    /// Authorises a redemption against the member's global balance less holds.
    func authorize(site: SiteID, request: AuthorizeCommand) async throws -> Authorization
    /// Releases an active hold of the site; false when it was not active.
    func release(site: SiteID, hold: String) async throws -> Bool
    /// The site's status, creating its row on first contact. Nil when the site is not in the program.
    func siteStatus(_ site: SiteID) async throws -> SiteRecord?
    /// True when a certificate serial has been revoked.
    func isRevoked(serial: String) async throws -> Bool
}

/// What operators read and change (`coalition.ops.v1.Ops`, `coalition admin`).
package protocol OperationsLedger: Sendable {
    var programs: ProgramCatalogue { get }
    /// The store's current instant (its injected clock).
    var clockNow: Timestamp { get }
    func siteStatuses() async throws -> [SiteStatusRecord]
    /// Revokes or reinstates a site, recording the operator and the reason.
    func setSite(_ site: SiteID, revoked: Bool, by operatorName: String, reason: String) async throws
    /// Revokes one certificate by serial number; the first revocation stands.
    func revokeCertificate(serial: String, reason: String, by operatorName: String) async throws
        -> (certificate: RevokedCertificateRecord, alreadyRevoked: Bool)
    /// Every revoked certificate, newest first.
    func revokedCertificates() async throws -> [RevokedCertificateRecord]
    /// Keeps a call refused for who the caller is; the oldest beyond `refused_calls_max` go.
    func recordRefusedCall(_ call: RefusedCall) async throws
    /// Refused calls, newest first, older than `before` (an id) when given.
    func refusedCalls(before: Int64?, limit: Int) async throws -> [RefusedCall]
    func isRevoked(serial: String) async throws -> Bool
    /// Conflicts in the order they were found, optionally of one site or kind.
    func conflicts(site: SiteID?, kind: String?, limit: Int) async throws -> [ConflictRecord]
    /// The member id of a phone hash or card number, if any.
    func memberID(phoneHash: Data?, card: String?) async throws -> MemberID?
    /// A member's record, balance, holds, qualifying points and lots. Nil when unknown.
    func memberDetail(_ id: MemberID) async throws -> MemberDetail?
    /// A member's ledger entries, newest first, before `position` (exclusive), at most `limit`.
    func memberHistory(_ id: MemberID, before position: Int64?, limit: Int) async throws -> [HistoryEntry]
    /// Books an operator's adjustment; throws `AdjustmentRefusal`. The same request id returns the
    /// first adjustment.
    func adjust(
        member: MemberID, points: Points, funder: AdjustmentFunder, reason: String, by operatorName: String,
        requestID: RequestID
    ) async throws -> (transaction: String, balance: Points)
    /// Validates and publishes a program document as the next version, unless it is byte for byte
    /// the latest one; returns the version in force after the call. Throws `ProgramErrors`.
    func publish(document: [UInt8], effectiveAt: Timestamp?, by publisher: String) async throws -> Int64
    /// Published program versions, oldest first.
    func programSummaries() async throws -> [ProgramSummary]
}

/// Allowances (escrow, docs/protocol.md "Allowances and promotion quotas"): granted on a
/// trigger or by an operator, given back, reclaimed by the gateway after the lease and its margin.
package protocol AllowanceLedger: Sendable {
    /// Grants an allowance by the latest program's rules; the same request id (of the same site,
    /// or of operators) returns the first grant. Throws `AllowanceLedgerRefusal`.
    func grantAllowance(_ command: AllowanceGrantCommand) async throws -> AllowanceGrant
    /// Gives back `points` (nil: all it has left) of an active allowance of `site`. Throws
    /// `AllowanceLedgerRefusal`.
    func returnAllowance(_ allowanceID: String, site: SiteID, points: Points?, by who: String) async throws
        -> AllowanceRecord
    /// One allowance, nil when there is none of that id.
    func allowance(_ id: String) async throws -> AllowanceRecord?
    /// Allowances, newest grant first, optionally of one site or member (following merges), only
    /// active ones when asked; at most `limit`.
    func allowances(site: SiteID?, member: MemberID?, activeOnly: Bool, limit: Int) async throws
        -> [AllowanceRecord]
    /// What each site's escrow account holds (the sum of its active allowances' left).
    func escrowBySite() async throws -> [SiteID: Points]
    /// Reclaims active allowances whose lease and margin have passed and whose site caught up
    /// since (or has been unheard for `unheard_reclaim_hours`), at most `limit`; how many.
    func reclaimAllowances(limit: Int) async throws -> Int
    /// Each member's count of earns posted per site since `since` (the home-site job's input).
    func earnCounts(since: Timestamp) async throws -> [MemberID: [SiteID: Int]]
    /// Records that `site` had pushed everything in its outbox when it sent a request at `sentAt`
    /// (its clock): the reclaim job's evidence that nothing it spent before then is still on its
    /// way. Kept as the earliest instant on the gateway's clock that can be (the site's clock less
    /// `clock_skew_max_minutes`, never later than now), and only while the site has an active
    /// allowance whose lease ended by then (otherwise nothing reads it).
    func recordCaughtUp(site: SiteID, sentAt: Timestamp) async throws
}

extension AllowanceLedger {
    /// The daily home-site job: an allowance for each member at their home site (where they earned
    /// most often over the last `AllowanceRules.homeSiteDays` days) when its format grants on
    /// `home_site` and they have none active there; at most `limit` a day. Members with nothing to
    /// reserve, or an allowance there already, are passed over. Returns how many were granted.
    package func grantHomeSiteAllowances(program: Program, now: Timestamp, limit: Int) async throws -> Int {
        let pairs = program.allowances.homeSites(
            try await earnCounts(since: now.adding(milliseconds: -Int64(AllowanceRules.homeSiteDays) * 86_400_000)),
            program: program)
        let day = program.timeZone.date(of: now)
        var granted = 0
        for (member, site) in pairs where granted < limit {
            guard let request = RequestID("home-\(day)-\(member)") else { continue }
            do {
                let grant = try await grantAllowance(
                    AllowanceGrantCommand(site: site, member: member, trigger: .homeSite, requestID: request))
                if !grant.alreadyGranted { granted += 1 }
            } catch is AllowanceLedgerRefusal {
                continue
            }
        }
        return granted
    }
}

/// Closing a day's settlement and reading closed ones (DESIGN §7).
package protocol SettlementLedger: Sendable {
    /// Closes `period` (once: a second close returns the first, `alreadyClosed`). Throws
    /// `SettlementRefusal` for a period that has not ended.
    func closeSettlement(period: CivilDate, by operatorName: String) async throws -> ClosedSettlement
    func storedSettlement(_ period: CivilDate) async throws -> ClosedSettlement?
}

/// The gateway's daily jobs: expiry, tier reviews, expiry reminders.
package protocol LedgerJobs: Sendable {
    /// Expires the points of lots that ended by the end of `day` (once a day).
    func runExpiry(asOfEndOf day: CivilDate) async throws -> ExpiryRun
    /// Reviews the tiers of members whose review date is `day` or earlier; returns how many changed.
    func reviewTiers(on day: CivilDate) async throws -> Int
    /// Members with points expiring within the program's reminder window after `asOf`.
    func expiryReminders(asOf: Timestamp, limit: Int) async throws -> [ExpiryReminder]
}

/// One pushed transaction: its outbox row exactly as sent (compared and chained), and its payload
/// as the posting rules read it (decoded once by the service).
package struct PushItem: Sendable {
    package var sequence: Int64
    package var transactionID: String
    package var previousHash: Data
    package var payload: Data
    package var occurredAtMilliseconds: Int64
    package var pushed: PushedTransaction
    /// SHA-256 of the payload: the next item's `previous_hash` (computed where the item is made,
    /// off the ledger's writer).
    package var payloadHash: Data

    package init(
        sequence: Int64, transactionID: String, previousHash: Data, payload: Data, occurredAtMilliseconds: Int64,
        pushed: PushedTransaction
    ) {
        self.sequence = sequence
        self.transactionID = transactionID
        self.previousHash = previousHash
        self.payload = payload
        self.occurredAtMilliseconds = occurredAtMilliseconds
        self.pushed = pushed
        payloadHash = Data(SHA256.hash(data: payload))
    }
}

/// What a pushed transaction came to, as the site is answered.
package struct PushedResult: Sendable, Equatable {
    package var sequence: Int64
    package var transactionID: String
    package var result: PostingResult

    package init(sequence: Int64, transactionID: String, result: PostingResult) {
        self.sequence = sequence
        self.transactionID = transactionID
        self.result = result
    }
}

/// A site as the gateway knows it.
package struct SiteRecord: Sendable, Equatable {
    package var site: SiteID
    package var revoked: Bool
    package var highWaterMark: Int64
    package var flags: [String]
}

/// The result of a push.
package struct PushOutcome: Sendable {
    package enum Status: Sendable, Equatable {
        case applied, alreadyApplied
        case resendFrom(Int64)
    }

    package var status: Status
    package var highWaterMark: Int64
    package var results: [PushedResult]
}

/// What AuthorizeRedeem asks.
package struct AuthorizeCommand: Sendable {
    package var requestID: RequestID
    package var member: MemberID
    package var merchant: MerchantID
    package var points: Points
    package var transaction: TransactionID
    /// The member's points change from the site's transactions not yet acknowledged.
    package var unacknowledged: Points
    /// The site's acknowledged sequence `unacknowledged` was counted after.
    package var acknowledgedSequence: Int64

    package init(
        requestID: RequestID, member: MemberID, merchant: MerchantID, points: Points, transaction: TransactionID,
        unacknowledged: Points = .zero, acknowledgedSequence: Int64 = 0
    ) {
        self.requestID = requestID
        self.member = member
        self.merchant = merchant
        self.points = points
        self.transaction = transaction
        self.unacknowledged = unacknowledged
        self.acknowledgedSequence = acknowledgedSequence
    }
}

/// A push that breaks the protocol: nothing was applied and the site is flagged.
package struct SyncRefusal: Error, Sendable, CustomStringConvertible {
    package var reason: String
    package var message: String

    package init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }

    package var description: String { "\(reason): \(message)" }
}

/// Gateway limits; each is a documented config key (docs/protocol.md).
package struct GatewayLimits: Sendable, Equatable {
    /// Most transactions in one push.
    package var pushTransactionsMax = 500
    /// Most payload bytes in one push.
    package var pushBytesMax = 4 * 1024 * 1024
    /// Most pushes (of different sites) written in one transaction, with one fsync.
    package var pushGroupMax = 8
    /// Most pushes waiting for the writer; more are refused (RESOURCE_EXHAUSTED) until it catches up.
    package var pushQueueMax = 256
    /// Largest pull page.
    package var pullPageMax = 1_000
    /// Largest recover page.
    package var recoverPageMax = 1_000
    /// How long a hold lasts before it expires unused, in milliseconds.
    package var holdMilliseconds: Int64 = 10 * 60 * 1000
    /// Clock difference between an edge and the gateway above which the site is flagged.
    package var clockSkewMaxMilliseconds: Int64 = 5 * 60 * 1000
    /// How long after a newer program is effective an edge may still use the previous one.
    package var programGraceMilliseconds: Int64 = 60 * 60 * 1000
    /// Largest request message, in bytes.
    package var requestBytesMax = 8 * 1024 * 1024
    /// How long a connection waits for SQLite's write lock.
    package var busyTimeoutMilliseconds = 5_000
    /// How often the gateway checks whether a new day (program time zone) has begun, to run expiry
    /// and tier reviews.
    package var maintenanceCheckMilliseconds: Int64 = 60_000
    /// Most allowances the reclaim job takes back in one run (it runs every
    /// `maintenanceCheckMilliseconds`; docs/protocol.md, "Allowances and promotion quotas").
    package var allowanceReclaimsMax = 1_000
    /// Most allowances the daily home-site job grants in a day.
    package var homeSiteAllowancesMax = 100_000
    /// How long a graceful shutdown (SIGTERM) may take to answer the calls in flight before they
    /// are cancelled, in milliseconds.
    package var shutdownMilliseconds = 10_000
    /// Most refused calls kept in the ledger for `coalition admin audit`; older ones are dropped.
    package var refusedCallsMax = 10_000
    /// Most refused calls written to the ledger per minute; beyond it they are logged and counted
    /// only (a flood of bad handshakes must not turn into a flood of writes).
    package var refusedCallsPerMinuteMax = 600
    /// Connections a gateway keeps to a PostgreSQL ledger at most.
    package var databaseConnectionsMax = 16
    /// How long reaching a PostgreSQL ledger may take before it counts as down, in milliseconds.
    package var databaseConnectTimeoutMilliseconds = 10_000
    /// How long a call waits for a connection of the PostgreSQL pool before it is answered
    /// UNAVAILABLE (the database is away, or every connection is busy), in milliseconds.
    package var databaseWaitMilliseconds = 5_000
    /// Connections of their own a gateway keeps for claiming ledger positions on a PostgreSQL
    /// ledger (docs/scale.md: a claim must never wait for the main pool).
    package var databaseClaimConnections = 2
    /// How many times a PostgreSQL transaction is tried when the database picks it as a deadlock's
    /// victim or a serialisation failure, or another gateway enrolled the same phone first.
    package var databaseRetriesMax = 5
    /// How long closing a settlement period on PostgreSQL waits for transactions posting before
    /// its end to commit, in milliseconds (then UNAVAILABLE: try again).
    package var settlementCloseWaitMilliseconds: Int64 = 5_000
    /// How long a gateway holds a daily job's lease on PostgreSQL before another may take it over,
    /// in milliseconds (renewed while the job runs).
    package var jobLeaseMilliseconds: Int64 = 600_000
    /// How long a PostgreSQL posting transaction's claim on ledger positions holds the pull feed
    /// back before readers drop it as a dead gateway's (its transaction then cannot commit), in
    /// milliseconds (docs/scale.md).
    package var positionClaimMaxMilliseconds: Int64 = 60_000
    /// Ledger entries the member API reads at most for one account view (this year's points by
    /// format, the last 90 days for recommendations); beyond it the figures count the newest.
    package var accountEntriesMax = 10_000
    /// Orders of the points mall written in one SQLite transaction (one fsync).
    package var orderGroupMax = 64
    /// Orders waiting for the writer (SQLite) or for their turn (PostgreSQL); more are refused
    /// RESOURCE_EXHAUSTED (`BUSY`) until the queue drains.
    package var orderQueueMax = 10_000
    /// Order transactions one gateway runs at once on a PostgreSQL ledger (the others wait their
    /// turn in memory, holding no connection).
    package var orderTransactionsMax = 4
    /// How long an order waits for its turn before it is refused RESOURCE_EXHAUSTED (`BUSY`), in
    /// milliseconds.
    package var orderWaitMilliseconds: Int64 = 10_000
    /// Connections and calls on the sync port (docs/operations.md, "Connections").
    package var connections = ConnectionLimits()

    package init() {}
}

/// Per-site promotion quotas (docs/protocol.md, "Promotion quotas").
package protocol PromotionQuotaLedger: Sendable {
    /// Issues `site` its quotas of the latest program's budgeted promotions at the end of a pull
    /// (`PromotionQuotas.plan`), first releasing what earlier issues reserved when the site holds
    /// issue `heldIssue`, applied at its outbox sequence `appliedAt`, and the gateway has that
    /// sequence. Nil (nothing written) when no budgeted promotion reaches the site.
    func issuePromotionQuotas(site: SiteID, heldIssue: Int64, appliedAt: Int64) async throws -> PromotionQuotaIssue?
    /// The quota holdings, by promotion then site, optionally of one promotion or site, with each
    /// site's bonus over the program's `history_days`.
    func promotionQuotas(promotion: PromotionID?, site: SiteID?) async throws -> [PromotionQuotaRecord]
}
