import Core
import Foundation
import Logging
import PostgresNIO
import Wire

extension PostgresLedgerStore {
    /// Every site of the latest program with the gateway's view of it.
    package func siteStatuses() async throws -> [SiteStatusRecord] {
        guard let program = programs.latest?.program else { return [] }
        let now = clockNow
        return try await guarded("reading sites") {
            try await client.leased(waiting: databaseWait) { [logger] connection in
                let reads = PostgresLedgerReads(connection: connection, logger: logger)
                var rows: [String: PostgresRandomAccessRow] = [:]
                for row in try await connection.rows("SELECT * FROM sites", logger) {
                    rows[try row.text("site_id")] = row
                }
                var statuses: [SiteStatusRecord] = []
                for site in program.sites {
                    var status = SiteStatusRecord(
                        site: site.id, name: site.name, format: site.format, status: "active", highWaterMark: 0,
                        lastSeenAt: nil, syncLagMilliseconds: 0, unsyncedExposure: .zero, flags: [],
                        offlineRisk: -(try await reads.balance(.offlineRisk(site.id))))
                    if let row = rows[site.id.rawValue] {
                        status.status = try row.text("status")
                        status.highWaterMark = try row.int("high_water_mark")
                        status.lastSeenAt = try row.intOrNil("last_seen_at_ms").map(Timestamp.init(milliseconds:))
                        status.syncLagMilliseconds =
                            try row.intOrNil("newest_occurred_at_ms").map { max(0, now.milliseconds - $0) } ?? 0
                        status.unsyncedExposure = Points(try row.int("unsynced_exposure_points"))
                        status.flags = try row.text("flags").split(separator: ",").map(String.init)
                    }
                    statuses.append(status)
                }
                return statuses
            }
        }
    }

    /// A member's record, balance, holds, qualifying points and lots. Nil when unknown.
    package func memberDetail(_ id: MemberID) async throws -> MemberDetail? {
        guard let program = programs.latest?.program else { return nil }
        let now = clockNow
        return try await transaction("reading a member") { [logger] connection in
            try await connection.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger)
            let reads = PostgresLedgerReads(connection: connection, logger: logger)
            guard let resolved = try await reads.resolve(id),
                let row = try await connection.rows(
                    "SELECT * FROM members WHERE member_id = \(resolved.description)", logger
                ).first
            else { return nil }
            let qualifying =
                try await connection.value(
                    """
                    SELECT COALESCE(SUM(points), 0)::bigint FROM qualifying_points
                    WHERE member_id = \(resolved.description) AND bucket_ms >= \(PostingEngine.windowStart(program, now: now))
                    """, as: Int64.self, logger) ?? 0
            var merged: [String] = []
            for row in try await connection.rows(
                "SELECT from_member FROM merges WHERE into_member = \(resolved.description) ORDER BY from_member",
                logger)
            {
                merged.append(try row.text("from_member"))
            }
            var lots: [LotDetail] = []
            for lot in try await reads.openLots(of: resolved) {
                guard
                    let row = try await connection.rows(
                        "SELECT earned_at_ms, original_points FROM lots WHERE lot_number = \(lot.number)", logger
                    ).first
                else { continue }
                lots.append(
                    LotDetail(
                        lotID: lot.lotID, earnedAt: Timestamp(milliseconds: try row.int("earned_at_ms")),
                        expiresAt: lot.expiresAt, originalPoints: Points(try row.int("original_points")),
                        remainingPoints: lot.remaining))
            }
            var detail = MemberDetail(
                id: resolved, cardNumber: try row.textOrNil("card_number") ?? "", tier: try row.text("tier"),
                tierReviewDate: try row.text("tier_review_date"), balance: Points(try row.int("balance_points")),
                held: try await reads.held(resolved, now: now), qualifyingPoints: Points(max(0, qualifying)),
                enrolledAt: Timestamp(milliseconds: try row.int("enrolled_at_ms")),
                enrolledSite: try row.textOrNil("enrolled_site") ?? "", mergedMembers: merged, lots: lots,
                birthMonth: try row.intOrNil("birth_month").map(Int.init))
            detail.escrowed = Points(
                try await connection.value(
                    """
                    SELECT COALESCE(SUM(granted_points - spent_points - released_points), 0)::bigint FROM allowances
                    WHERE member_id = \(resolved.description) AND status = 'active'
                    """, as: Int64.self, logger) ?? 0)
            return detail
        }
    }

    /// The member id of a phone hash or card number, if any.
    package func memberID(phoneHash: Data? = nil, card: String? = nil) async throws -> MemberID? {
        try await guarded("finding a member") {
            try await client.leased(waiting: databaseWait) { [logger] connection in
                let query: PostgresQuery =
                    if let phoneHash {
                        try "SELECT member_id FROM members WHERE phone_hash = \(phoneHash) AND merged_into IS NULL"
                    } else {
                        "SELECT member_id FROM members WHERE card_number = \(card) AND merged_into IS NULL"
                    }
                return try await connection.value(query, as: String.self, logger).flatMap(MemberID.init)
            }
        }
    }

    /// A member's ledger entries, newest first, before `position` (exclusive), at most `limit`.
    package func memberHistory(_ id: MemberID, before position: Int64?, limit: Int) async throws -> [HistoryEntry] {
        try await guarded("reading a member's history") {
            try await client.leased(waiting: databaseWait) { [logger] connection in
                try await connection.rows(
                    """
                    WITH RECURSIVE chain (position) AS (
                        SELECT last_position FROM members WHERE member_id = \(id.description) AND last_position IS NOT NULL
                        UNION ALL
                        SELECT t.member_previous FROM transactions t JOIN chain c ON t.position = c.position
                        WHERE t.member_previous IS NOT NULL
                    )
                    SELECT t.* FROM chain c JOIN transactions t ON t.position = c.position
                    WHERE t.position < \(position ?? .max) ORDER BY t.position DESC LIMIT \(Int64(limit))
                    """, logger
                ).map { row in
                    HistoryEntry(
                        position: try row.int("position"), transactionID: try row.text("transaction_id"),
                        kind: try row.textOrNil("kind") ?? "", points: Points(try row.int("points")),
                        site: try row.textOrNil("site_id") ?? "", merchant: try row.textOrNil("merchant_id") ?? "",
                        occurredAt: Timestamp(milliseconds: try row.int("occurred_at_ms")),
                        postedAt: Timestamp(milliseconds: try row.int("posted_at_ms")), detail: try row.text("detail"))
                }
            }
        }
    }

    /// Books an operator's adjustment, as the SQLite store does, with the member's row locked.
    package func adjust(
        member id: MemberID, points: Points, funder: AdjustmentFunder = .platform, reason: String,
        by operatorName: String, requestID: RequestID
    ) async throws -> (transaction: String, balance: Points) {
        let now = clockNow
        let receipt = ReceiptKey(merchant: "-ops", operation: .adjust, requestID: requestID.rawValue)
        return try await transaction("booking an adjustment") { [logger] connection in
            let reads = PostgresLedgerReads(connection: connection, logger: logger)
            let target = try await self.lockResolved(id, connection)
            if let first = try await connection.rows(
                "SELECT transaction_id, member_id FROM transactions WHERE receipt = \(receipt.description)", logger
            ).first {
                let member = try first.textOrNil("member_id").flatMap(MemberID.init) ?? id
                return (try first.text("transaction_id"), try await reads.balance(.member(member)))
            }
            let catalogue = try await self.currentPrograms(connection)
            if let merchant = funder.merchant, catalogue.latest?.program.merchant(merchant) == nil {
                throw AdjustmentRefusal.unknownFunder(merchant.rawValue)
            }
            guard target != nil else { throw AdjustmentRefusal.unknownMember(id) }
            var keys = PostingKeys()
            keys.members = [id]
            keys.debitedMembers = keys.members
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator).description
            let member = try await self.postOwn(connection, keys: keys, count: 8, now: now) { engine in
                switch engine.adjust(
                    member: id, points: points, funder: funder, transactionID: transaction,
                    requestID: requestID.rawValue, receipt: receipt, detail: "by \(operatorName): \(reason)")
                {
                case .success(let booked): return booked
                case .failure(.unknownMember): throw AdjustmentRefusal.unknownMember(id)
                case .failure(.insufficient(let available)):
                    throw AdjustmentRefusal.insufficient(available: available, requested: -points)
                }
            }
            return (transaction, try await reads.balance(.member(member)))
        }
    }

    /// Posts the gateway's own transactions (adjustments, expiry): the members of `keys` locked in
    /// sorted order, their view read, `count` positions claimed, `decide` run on the engine, its
    /// effects written, the claim ended.
    func postOwn<Result>(
        _ connection: PostgresConnection, keys: PostingKeys, count: Int64, now: Timestamp,
        _ decide: (inout PostingEngine) throws -> Result
    ) async throws -> Result {
        try await lock(members: keys.members, connection)
        let catalogue = try await currentPrograms(connection)
        var view = try await PostgresPosting.load(connection, keys: keys, catalogue: catalogue, logger: logger)
        let claim = try await PostgresPositions.claim(database.claims, count: count, now: now, logger: logger)
        let first = claim.first
        do {
            view.position = first - 1
            view.lotNumber = first - 1
            var engine = PostingEngine(
                view: view, catalogue: catalogue, site: SiteID(unchecked: "gateway"), now: claim.instant,
                programGraceMilliseconds: 0, clockSkewMaxMilliseconds: 0)
            let result = try decide(&engine)
            let effects = engine.finish()
            guard effects.position < first + count else {
                throw PostgresLedgerError("the gateway's own posting took more than the \(count) positions it claimed")
            }
            try await PostgresPosting.apply(connection, effects, outbox: [:], now: claim.instant, logger: logger)
            try await PostgresPositions.endClaim(first, connection, logger: logger)
            return result
        } catch {
            await PostgresPositions.abandon(first, database.claims, logger: logger)
            throw error
        }
    }

    /// Published program versions, oldest first.
    package func programSummaries() async throws -> [ProgramSummary] {
        try await guarded("reading programs") {
            try await client.leased(waiting: databaseWait) { [logger] connection in
                try await connection.rows(
                    """
                    SELECT version, effective_at_ms, published_at_ms, published_by, sha256 FROM program_versions
                    ORDER BY version
                    """, logger
                ).map { row in
                    ProgramSummary(
                        version: try row.int("version"),
                        effectiveAt: Timestamp(milliseconds: try row.int("effective_at_ms")),
                        publishedAt: Timestamp(milliseconds: try row.int("published_at_ms")),
                        publishedBy: try row.text("published_by"), documentSHA256: try row.text("sha256"))
                }
            }
        }
    }
}
