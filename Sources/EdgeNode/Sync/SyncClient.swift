import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwiftProtobuf
import Synchronization
import Wire

/// The edge's side of sync (DESIGN §5): a push loop sending the outbox in bounded batches, a pull
/// loop applying the gateway's changes page by page, online authorisation with a deadline, and
/// recovery of the site's own transactions into a lost or old database.
///
/// Every failure is retried with bounded exponential backoff; the loops never wait for a new local
/// write to resume.
package final class SyncClient: Sendable {
    private let link: GatewayLink
    private let site: SiteID
    private let database: EdgeDatabase
    private let clock: any WallClock
    private let logger: Logger
    private let client: GRPCClient<HTTP2ClientTransport.Posix>?
    private let sync: SyncCalls
    private let program: @Sendable () -> ActiveProgram
    private let activate: @Sendable (ActiveProgram) -> Void

    /// A client over mutual TLS to the gateway the link names.
    package convenience init(
        link: GatewayLink, site: SiteID, database: EdgeDatabase, clock: any WallClock, logger: Logger,
        program: @escaping @Sendable () -> ActiveProgram, activate: @escaping @Sendable (ActiveProgram) -> Void
    ) throws {
        let ca = link.caCertificatePath
        let client = GRPCClient(
            transport: try .http2NIOPosix(
                target: Self.target(host: link.host, port: link.port),
                transportSecurity: .mTLS(
                    certificateChain: [.file(path: link.certificatePath, format: .pem)],
                    privateKey: .file(path: link.privateKeyPath, format: .pem)
                ) { tls in
                    tls.trustRoots = .certificates([.file(path: ca, format: .pem)])
                }))
        self.init(
            link: link, site: site, database: database, clock: clock, logger: logger, program: program,
            activate: activate,
            calls: SyncCalls(client: Coalition_Sync_V1_Sync.Client(wrapping: client)), connection: client)
    }

    /// A client making its calls through `calls` (the simulation's in-process link); `connection`
    /// is the gRPC client whose connections `runConnections()` runs, if any.
    package init(
        link: GatewayLink, site: SiteID, database: EdgeDatabase, clock: any WallClock, logger: Logger,
        program: @escaping @Sendable () -> ActiveProgram, activate: @escaping @Sendable (ActiveProgram) -> Void,
        calls: SyncCalls, connection: GRPCClient<HTTP2ClientTransport.Posix>? = nil
    ) {
        self.link = link
        self.site = site
        self.database = database
        self.clock = clock
        self.logger = logger
        self.program = program
        self.activate = activate
        self.sync = calls
        self.client = connection
    }

    /// IP literals are dialled as addresses (no SNI; the gateway certificate carries the IP);
    /// names through DNS (SNI and certificate verification use the name).
    private static func target(host: String, port: Int) -> any ResolvableTarget {
        if host.contains(":") { return .ipv6(address: host, port: port) }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) { return .ipv4(address: host, port: port) }
        return .dns(host: host, port: port)
    }

    /// Runs the client's connections until `shutDown()` or cancellation.
    package func runConnections() async throws {
        try await client?.runConnections()
    }

    package func shutDown() {
        client?.beginGracefulShutdown()
    }

    private func options(_ milliseconds: Int) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = .milliseconds(milliseconds)
        return options
    }

    // MARK: Online authorisation

    /// The authoriser for the edge's redemptions: the gateway's answer within the deadline, else
    /// `.unavailable` (the offline steps decide).
    package var authorizer: RedeemAuthorizer {
        RedeemAuthorizer(
            authorize: { [sync, link, logger] request in
                var message = Coalition_Sync_V1_AuthorizeRedeemRequest()
                message.protocolVersion = 1
                message.requestID = request.requestID.rawValue
                message.memberID = request.member.description
                message.merchantID = request.merchant.rawValue
                message.points = request.points.value
                message.transactionID = request.transaction.description
                message.unacknowledgedPoints = request.unacknowledged.value
                var options = CallOptions.defaults
                options.timeout = .milliseconds(link.authorizeDeadlineMilliseconds)
                // A link known to be down fails at once instead of holding the till for the deadline.
                options.waitForReady = false
                do {
                    let response = try await sync.authorizeRedeem(message, options)
                    if response.approved { return .approved(holdID: response.holdID) }
                    // A member the centre has not heard of yet is decided offline.
                    if response.reason == .unknownMember { return .unavailable }
                    return .declined(
                        .insufficientPoints,
                        response.message.isEmpty ? "The centre declined the redemption." : response.message)
                } catch {
                    logger.debug("online authorisation unavailable", metadata: ["error": "\(error)"])
                    return .unavailable
                }
            },
            release: { [sync, link, logger] hold in
                var message = Coalition_Sync_V1_ReleaseHoldRequest()
                message.protocolVersion = 1
                message.holdID = hold
                var options = CallOptions.defaults
                options.timeout = .milliseconds(link.callTimeoutMilliseconds)
                do {
                    _ = try await sync.releaseHold(message, options)
                } catch {
                    // The hold then expires on its own at the gateway (limits.hold_ms).
                    logger.notice("could not release a hold", metadata: ["hold": "\(hold)", "error": "\(error)"])
                }
            })
    }

    // MARK: Loops

    /// Runs the push and pull loops until cancelled.
    package func runLoops() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.loop(name: "push") { try await self.pushRound() } }
            group.addTask { await self.loop(name: "pull") { try await self.pullRound() } }
        }
    }

    /// Repeats `round` (which says whether more work is waiting) with the sync interval, backing
    /// off exponentially after failures, until cancelled.
    private func loop(name: String, _ round: @Sendable () async throws -> Bool) async {
        var backoff = link.backoffInitialMilliseconds
        while !Task.isCancelled {
            let wait: Int
            do {
                let more = try await round()
                backoff = link.backoffInitialMilliseconds
                wait = more ? 0 : link.syncIntervalMilliseconds
            } catch is CancellationError {
                return
            } catch {
                logger.notice("\(name) failed; retrying", metadata: ["error": "\(error)", "retry.ms": "\(backoff)"])
                wait = backoff
                backoff = min(link.backoffMaxMilliseconds, backoff * 2)
            }
            if wait > 0 {
                do {
                    try await Task.sleep(for: .milliseconds(wait))
                } catch {
                    return
                }
            }
        }
    }

    // MARK: Push

    /// Sends the next batch of unacknowledged transactions. True when more are waiting.
    package func pushRound() async throws -> Bool {
        let batchMax = link.pushBatchMax
        let (batch, exposure) = try await database.pool.read { db -> ([Coalition_Sync_V1_OutboxTransaction], Int64) in
            let acknowledged =
                try Int64.fetchOne(db, sql: "SELECT acknowledged_sequence FROM sync_state WHERE id = 1") ?? 0
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT sequence, transaction_id, previous_hash, payload, occurred_at_ms FROM outbox WHERE sequence > ? ORDER BY sequence LIMIT ?"
                ),
                arguments: [acknowledged, batchMax])
            let exposure = try LedgerTransaction(db: db, limits: EdgeLimits()).siteExposure().value
            return (
                rows.map { row in
                    Coalition_Sync_V1_OutboxTransaction(
                        sequence: row["sequence"], transactionID: row["transaction_id"],
                        previousHash: row["previous_hash"],
                        payload: row["payload"], occurredAtMs: row["occurred_at_ms"])
                }, exposure
            )
        }
        guard let last = batch.last else { return false }
        var request = Coalition_Sync_V1_PushRequest()
        request.protocolVersion = 1
        request.programVersion = program().version
        request.transactions = batch
        request.unsyncedExposurePoints = exposure
        request.sentAtMs = clock.now().milliseconds
        let response = try await sync.push(request, options(link.callTimeoutMilliseconds))
        let now = clock.now()
        switch response.status {
        case .applied, .alreadyApplied:
            let acknowledged = min(Int64(response.highWaterMark), Int64(last.sequence))
            try await database.pool.write { db in
                for result in response.results
                where result.outcome == .rejected && Int64(result.sequence) <= acknowledged {
                    try db.cachedStatement(sql: "INSERT OR IGNORE INTO rejected (sequence, reason) VALUES (?, ?)")
                        .execute(arguments: [Int64(result.sequence), result.reason])
                }
                try db.cachedStatement(
                    sql:
                        "UPDATE sync_state SET acknowledged_sequence = MAX(acknowledged_sequence, ?), last_gateway_contact_ms = ? WHERE id = 1"
                ).execute(arguments: [acknowledged, now.milliseconds])
            }
            for result in response.results where result.outcome != .posted {
                logger.info(
                    "push result",
                    metadata: [
                        "txn.id": "\(result.transactionID)", "outcome": "\(result.outcome)",
                        "reason": "\(result.reason)",
                    ])
            }
            return batch.count == batchMax
        case .resendFrom:
            // The gateway has less than we thought (for example restored from a backup): resend.
            let from = Int64(response.resendFromSequence)
            try await database.pool.write { db in
                try db.cachedStatement(
                    sql: "UPDATE sync_state SET acknowledged_sequence = ?, last_gateway_contact_ms = ? WHERE id = 1"
                ).execute(arguments: [max(0, from - 1), now.milliseconds])
            }
            logger.warning("gateway asked to resend", metadata: ["from": "\(from)"])
            return true
        case .unspecified, .UNRECOGNIZED:
            throw ServiceError(.internalError, "the gateway answered a push with status \(response.status)")
        }
    }

    // MARK: Pull

    /// Applies the next page of changes. True when more are waiting.
    package func pullRound() async throws -> Bool {
        let cursor = try await database.pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT pull_cursor FROM sync_state WHERE id = 1") ?? 0
        }
        var request = Coalition_Sync_V1_PullRequest()
        request.protocolVersion = 1
        request.programVersion = program().version
        request.cursor = UInt64(cursor)
        request.pageSize = UInt32(link.pullPageSize)
        let response = try await sync.pull(request, options(link.callTimeoutMilliseconds))
        var programs: [(Int64, Data, Int64)] = []
        for change in response.changes {
            if case .program(let program) = change.body {
                programs.append((program.version, program.document, program.effectiveAtMs))
            }
        }
        var parsed: [Int64: Program] = [:]
        for (version, document, _) in programs {
            do {
                parsed[version] = try ProgramDocumentParser.load(Array(document))
            } catch {
                throw ServiceError(
                    .internalError, "program version \(version) from the gateway does not load: \(error)")
            }
        }
        let now = clock.now()
        try await database.pool.write { db in
            for change in response.changes {
                switch change.body {
                case .member(let snapshot): try Self.apply(snapshot, position: Int64(change.position), db, at: now)
                case .merge(let merge):
                    try db.cachedStatement(
                        sql: "UPDATE members SET merged_into = ?, phone_hash = NULL WHERE member_id = ?"
                    ).execute(arguments: [merge.intoMemberID, merge.fromMemberID])
                case .program(let program):
                    try db.cachedStatement(
                        sql:
                            "INSERT OR IGNORE INTO program_versions (version, document, effective_at_ms, received_at_ms) VALUES (?, ?, ?, ?)"
                    ).execute(arguments: [program.version, program.document, program.effectiveAtMs, now.milliseconds])
                case nil: break
                }
            }
            for budget in response.promotionBudgets {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO promotion_budgets (promotion_id, points_left, as_of_sequence) VALUES (?, ?, ?)
                        ON CONFLICT (promotion_id) DO UPDATE SET
                            points_left = excluded.points_left, as_of_sequence = excluded.as_of_sequence
                        """
                ).execute(arguments: [budget.promotionID, budget.pointsLeft, Int64(response.siteHighWaterMark)])
            }
            try db.cachedStatement(
                sql: "UPDATE sync_state SET pull_cursor = ?, last_gateway_contact_ms = ? WHERE id = 1"
            ).execute(arguments: [Int64(response.nextCursor), now.milliseconds])
        }
        if let newest = programs.filter({ $0.2 <= now.milliseconds }).max(by: { $0.0 < $1.0 }),
            let program = parsed[newest.0],
            newest.0 > self.program().version
        {
            activate(ActiveProgram(version: newest.0, program: program))
            logger.info("program activated", metadata: ["program.version": "\(newest.0)"])
        }
        return response.hasMore_p
    }

    /// Writes a member snapshot into the replica, keeping the later of the local and the
    /// gateway's earn state (local earns the snapshot does not include yet).
    private static func apply(
        _ snapshot: Coalition_Sync_V1_MemberSnapshot, position: Int64, _ db: Database, at now: Timestamp
    ) throws {
        let id = snapshot.memberID
        let existing = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT last_earn, streak_last_day, streak_days FROM members WHERE member_id = ?"),
            arguments: [id])
        var lastEarn: [Format: Timestamp] = [:]
        for (format, ms) in snapshot.lastEarnAtMsByFormat {
            if let format = Format(format) { lastEarn[format] = Timestamp(milliseconds: ms) }
        }
        var streakDay = snapshot.streakLastDay
        var streakDays = Int(snapshot.streakDays)
        if let existing {
            for (format, time) in LastEarnEncoding.decode(existing["last_earn"]) {
                lastEarn[format] = max(lastEarn[format] ?? time, time)
            }
            let localDay: String? = existing["streak_last_day"]
            if let localDay, localDay > streakDay {
                streakDay = localDay
                streakDays = existing["streak_days"]
            }
        }
        if !snapshot.phoneHash.isEmpty {
            // The gateway's record wins the phone (a merge of a local duplicate follows).
            try db.cachedStatement(sql: "UPDATE members SET phone_hash = NULL WHERE phone_hash = ? AND member_id != ?")
                .execute(arguments: [snapshot.phoneHash, id])
        }
        if !snapshot.cardNumber.isEmpty {
            try db.cachedStatement(
                sql: "UPDATE members SET card_number = NULL WHERE card_number = ? AND member_id != ?"
            ).execute(arguments: [snapshot.cardNumber, id])
        }
        try db.cachedStatement(
            sql: """
                INSERT INTO members (member_id, phone_hash, card_number, tier, birth_month, snapshot_balance, snapshot_site_sequence,
                    snapshot_at_ms, snapshot_position, expiring_points, next_expiry_at_ms, last_earn, streak_last_day, streak_days,
                    enrolled_at_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (member_id) DO UPDATE SET
                    phone_hash = excluded.phone_hash, card_number = excluded.card_number, tier = excluded.tier,
                    birth_month = excluded.birth_month, snapshot_balance = excluded.snapshot_balance,
                    snapshot_site_sequence = excluded.snapshot_site_sequence, snapshot_at_ms = excluded.snapshot_at_ms,
                    snapshot_position = excluded.snapshot_position,
                    expiring_points = excluded.expiring_points, next_expiry_at_ms = excluded.next_expiry_at_ms,
                    last_earn = excluded.last_earn, streak_last_day = excluded.streak_last_day, streak_days = excluded.streak_days
                """
        ).execute(arguments: [
            id, snapshot.phoneHash.isEmpty ? nil : snapshot.phoneHash,
            snapshot.cardNumber.isEmpty ? nil : snapshot.cardNumber,
            snapshot.tier, snapshot.birthMonth == 0 ? nil : Int(snapshot.birthMonth), snapshot.balancePoints,
            Int64(snapshot.includesSiteSequence), now.milliseconds, position, snapshot.expiringPoints,
            snapshot.nextExpiryAtMs, LastEarnEncoding.encode(lastEarn), streakDay.isEmpty ? nil : streakDay, streakDays,
            snapshot.enrolledAtMs,
        ])
    }

    // MARK: Recovery

    /// Downloads the site's own transactions the gateway has and this database lacks (a lost file
    /// or an old backup), before any new one is minted. Returns how many were restored.
    @discardableResult
    package func recover() async throws -> Int {
        var restored = 0
        while true {
            let local = try await database.pool.read { db in
                try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM outbox") ?? 0
            }
            var request = Coalition_Sync_V1_RecoverRequest()
            request.protocolVersion = 1
            request.fromSequence = UInt64(local + 1)
            request.maxCount = UInt32(min(1_000, link.pullPageSize))
            let response = try await sync.recover(request, options(link.callTimeoutMilliseconds))
            let now = clock.now()
            let timeZone = program().program.timeZone
            try await database.pool.write { db in
                for transaction in response.transactions {
                    try Self.restore(transaction, db, timeZone: timeZone)
                }
                try db.cachedStatement(
                    sql:
                        "UPDATE sync_state SET acknowledged_sequence = MAX(acknowledged_sequence, ?), last_gateway_contact_ms = ? WHERE id = 1"
                ).execute(arguments: [
                    min(Int64(response.highWaterMark), local + Int64(response.transactions.count)), now.milliseconds,
                ])
            }
            restored += response.transactions.count
            if response.transactions.isEmpty || !response.hasMore_p { break }
        }
        if restored > 0 { logger.notice("recovered transactions from the gateway", metadata: ["count": "\(restored)"]) }
        return restored
    }

    /// Writes a recovered transaction into the outbox exactly as it was (same bytes, same chain).
    private static func restore(
        _ transaction: Coalition_Sync_V1_OutboxTransaction, _ db: Database, timeZone: ProgramTimeZone
    ) throws {
        let local = try Coalition_Sync_V1_LocalTransaction(serializedBytes: transaction.payload)
        var kind: TransactionKind?
        var member = ""
        var points: Int64 = 0
        var amount: Int64 = 0
        var authorization: String?
        var original: String?
        var freeMinutes: Int64 = 0
        var deltas: [(String, Int64)] = []
        switch local.body {
        case .enrollment(let record):
            kind = .enroll
            member = record.memberID
            points = record.signupPoints
            deltas = [(record.memberID, record.signupPoints)]
            if !record.referrerMemberID.isEmpty, record.referralPoints > 0 {
                deltas.append((record.referrerMemberID, record.referralPoints))
            }
        case .earn(let record):
            kind = .earn
            member = record.memberID
            points = record.breakdown.totalPoints
            amount = record.amountMinor
            deltas = [(member, points)]
            for component in record.breakdown.components where component.kind == .promotion && component.points > 0 {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO outbox_promotions (promotion_id, sequence, points) VALUES (?, ?, ?)
                        ON CONFLICT (promotion_id, sequence) DO UPDATE SET points = points + excluded.points
                        """
                ).execute(arguments: [component.ruleID, Int64(transaction.sequence), component.points])
            }
        case .redeem(let record):
            kind = .redeem
            member = record.memberID
            points = -record.points
            amount = record.billAmountMinor
            authorization = record.authorization == .online ? "online" : "floor_limit"
            deltas = [(member, points)]
        case .reverse(let record):
            kind = .reverse
            member = record.memberID
            points = record.points
            amount = record.amountMinor
            original = record.originalTransactionID
            deltas = [(member, points)]
        case .parking(let record):
            kind = .parking
            member = record.memberID
            points = -record.points
            amount = record.feeMinor
            freeMinutes = record.freeMinutesApplied
            authorization = record.points > 0 ? (record.authorization == .online ? "online" : "floor_limit") : nil
            deltas = [(member, points)]
        case nil:
            break
        }
        let day = timeZone.date(of: Timestamp(milliseconds: transaction.occurredAtMs))
        try db.cachedStatement(
            sql: """
                INSERT INTO outbox (sequence, transaction_id, kind, merchant_id, member_id, request_id, points, amount_minor, authorization,
                    original_transaction_id, free_minutes, occurred_at_ms, local_day, previous_hash, payload_hash, payload)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            Int64(transaction.sequence), transaction.transactionID, kind?.rawValue ?? "unknown", local.merchantID,
            member, local.requestID,
            points, amount,
            authorization, original, freeMinutes, transaction.occurredAtMs, day.description, transaction.previousHash,
            Data(SHA256.hash(data: transaction.payload)), transaction.payload,
        ])
        var merged: [String: Int64] = [:]
        for (id, value) in deltas where !id.isEmpty { merged[id, default: 0] += value }
        for (id, value) in merged.sorted(by: { $0.key < $1.key }) {
            try db.cachedStatement(sql: "INSERT INTO member_delta (member_id, sequence, points) VALUES (?, ?, ?)")
                .execute(arguments: [id, Int64(transaction.sequence), value])
        }
    }
}
