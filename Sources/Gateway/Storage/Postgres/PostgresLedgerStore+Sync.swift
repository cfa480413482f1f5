import Core
import Foundation
import Logging
import NodeSupport
import PostgresNIO
import Wire

/// Pull pages, recovery pages and holds on the PostgreSQL ledger.
extension PostgresLedgerStore {
    // MARK: Pull

    package func pull(site: SiteID, cursor: Int64, pageSize: Int) async throws -> PullPage {
        let now = clock.now()
        // The feed's bound first: every position below it has committed or never will. The page is
        // then read in one snapshot taken after it, so it sees every row below the bound.
        let bound = try await guarded("reading the feed's bound") {
            try await PostgresPositions.committedBelow(
                client, now: now, claimMaxMilliseconds: limits.positionClaimMaxMilliseconds, logger: logger)
        }
        return try await transaction("reading a pull page") { [logger] connection in
            try await connection.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger)
            let catalogue = try await self.currentPrograms(connection)
            let highWater =
                try await connection.value(
                    "SELECT high_water_mark FROM sites WHERE site_id = \(site.rawValue)", as: Int64.self, logger) ?? 0
            var (changes, hasMore, rereadAll) = PullPaging.trim(
                try await self.changes(
                    connection, after: cursor, below: bound, limit: pageSize + 1, site: site, siteHighWater: highWater,
                    catalogue: catalogue, now: now), pageSize: pageSize)
            if let rereadAll {
                changes = try await self.changes(
                    connection, after: rereadAll - 1, below: rereadAll + 1, limit: nil, site: site,
                    siteHighWater: highWater,
                    catalogue: catalogue, now: now)
            }
            var keys: [UInt8: [UInt8]] = [:]
            for row in try await connection.rows("SELECT key_id, public_key FROM voucher_keys", logger) {
                keys[UInt8(truncatingIfNeeded: try row.int("key_id"))] = Array(try row.bytes("public_key"))
            }
            return PullPage(
                changes: changes, hasMore: hasMore, nextCursor: changes.last?.position ?? max(0, cursor),
                siteHighWaterMark: highWater, voucherKeys: keys)
        }
    }

    /// The member, program and merge changes after `cursor` and below `bound`, at most `limit` of
    /// each kind, in position order (within a position: members, programs, merges, vouchers).
    private func changes(
        _ connection: PostgresConnection, after cursor: Int64, below bound: Int64, limit: Int?, site: SiteID,
        siteHighWater: Int64, catalogue: ProgramCatalogue, now: Timestamp
    ) async throws -> [LedgerChange] {
        let limit = Int64(limit ?? Int(Int32.max))
        var changes: [LedgerChange] = []
        let reads = PostgresLedgerReads(connection: connection, logger: logger)
        for row in try await connection.rows(
            """
            SELECT * FROM members WHERE merged_into IS NULL AND changed_position > \(cursor)
                AND changed_position < \(bound)
            ORDER BY changed_position LIMIT \(limit)
            """, logger)
        {
            guard let member = MemberID(try row.text("member_id")) else {
                preconditionFailure("a stored member id is malformed")
            }
            var expiring = Points.zero
            var nextExpiry: Timestamp?
            if let rules = catalogue.latest?.program.expiry {
                let lots = try await reads.openLots(of: member).map {
                    Lot(id: TransactionID(value: 0), remaining: $0.remaining, expiresAt: $0.expiresAt)
                }
                let reminder = ExpiryCalculator.reminder(lots, asOf: now, rules: rules)
                expiring = reminder.points
                nextExpiry = reminder.first
            }
            var snapshot = MemberSnapshot(
                id: member, phoneHash: try row.bytesOrNil("phone_hash") ?? Data(),
                cardNumber: try row.textOrNil("card_number") ?? "", tier: try row.text("tier"),
                balance: max(.zero, Points(try row.int("balance_points"))),
                birthMonth: try row.intOrNil("birth_month").map(Int.init), includesSiteSequence: siteHighWater,
                lastEarnByFormat: LastEarnEncoding.decode(try row.text("last_earn")),
                streakLastDay: try row.textOrNil("streak_last_day") ?? "", streakDays: Int(try row.int("streak_days")),
                tierReviewDate: try row.text("tier_review_date"),
                enrolledAt: Timestamp(milliseconds: try row.int("enrolled_at_ms")), expiringPoints: expiring,
                nextExpiryAt: nextExpiry)
            snapshot.reserve(
                try await PostgresPosting.allowances(
                    connection,
                    """
                    SELECT \(unescaped: SQLitePosting.allowanceColumns) FROM allowances
                    WHERE member_id = \(member.description) AND status = 'active'
                    """, logger), site: site, rules: catalogue.latest?.program.allowances)
            changes.append(LedgerChange(position: try row.int("changed_position"), body: .member(snapshot)))
        }
        for row in try await connection.rows(
            """
            SELECT version, document, effective_at_ms, changed_position FROM program_versions
            WHERE changed_position > \(cursor) AND changed_position < \(bound) ORDER BY changed_position LIMIT \(limit)
            """, logger)
        {
            changes.append(
                LedgerChange(
                    position: try row.int("changed_position"),
                    body: .program(
                        version: try row.int("version"), document: try row.bytes("document"),
                        effectiveAt: Timestamp(milliseconds: try row.int("effective_at_ms")))))
        }
        for row in try await connection.rows(
            """
            SELECT from_member, into_member, changed_position FROM merges
            WHERE changed_position > \(cursor) AND changed_position < \(bound) ORDER BY changed_position LIMIT \(limit)
            """, logger)
        {
            guard let from = MemberID(try row.text("from_member")), let into = MemberID(try row.text("into_member"))
            else { preconditionFailure("a stored merge names a malformed member id") }
            changes.append(
                LedgerChange(position: try row.int("changed_position"), body: .merge(from: from, into: into)))
        }
        for row in try await connection.rows(
            """
            SELECT voucher_id, status, changed_position FROM vouchers
            WHERE status <> 'issued' AND changed_position > \(cursor) AND changed_position < \(bound)
            ORDER BY changed_position LIMIT \(limit)
            """, logger)
        {
            guard let status = VoucherStatus(rawValue: try row.text("status")) else {
                preconditionFailure("a stored voucher has an unknown status")
            }
            changes.append(
                LedgerChange(
                    position: try row.int("changed_position"),
                    body: .voucher(id: try row.text("voucher_id"), status: status)))
        }
        return changes.enumerated().sorted { ($0.element.position, $0.offset) < ($1.element.position, $1.offset) }.map(
            \.element)
    }

    // MARK: Recover

    package func recover(site: SiteID, from sequence: Int64, count: Int) async throws -> RecoverPage {
        try await transaction("reading a recovery page") { [logger] connection in
            try await connection.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger)
            let highWater =
                try await connection.value(
                    "SELECT high_water_mark FROM sites WHERE site_id = \(site.rawValue)", as: Int64.self, logger) ?? 0
            let rows = try await connection.rows(
                """
                SELECT site_sequence, transaction_id, previous_hash, payload, outbox_occurred_at_ms FROM transactions
                WHERE site_id = \(site.rawValue) AND site_sequence >= \(sequence) ORDER BY site_sequence
                LIMIT \(Int64(count))
                """, logger
            ).map { row in
                StoredOutboxRow(
                    sequence: try row.int("site_sequence"), transactionID: try row.text("transaction_id"),
                    previousHash: try row.bytes("previous_hash"), payload: try row.bytes("payload"),
                    occurredAtMilliseconds: try row.int("outbox_occurred_at_ms"))
            }
            return RecoverPage(
                highWaterMark: highWater, transactions: rows, hasMore: (rows.last?.sequence ?? highWater) < highWater)
        }
    }

    // MARK: Holds

    package func authorize(site: SiteID, request: AuthorizeCommand) async throws -> Authorization {
        let now = clock.now()
        let holdMilliseconds = limits.holdMilliseconds
        return try await transaction("authorising a redemption") { [logger] connection in
            let reads = PostgresLedgerReads(connection: connection, logger: logger)
            // The member's row first: authorisations for one member, at any gateway, queue here, so
            // two racing for the last points cannot both see them.
            guard let member = try await self.lockResolved(request.member, connection) else {
                if let existing = try await self.existingHold(request, connection, reads, now) { return existing }
                return Authorization(holdID: "", expiresAt: nil, available: .zero, refusal: .unknownMember)
            }
            if let existing = try await self.existingHold(request, connection, reads, now) { return existing }
            if try await connection.value(
                "SELECT TRUE FROM transactions WHERE transaction_id = \(request.transaction.description)",
                as: Bool.self,
                logger) == true
            {
                throw SyncRefusal(
                    reason: "TRANSACTION_POSTED",
                    message: "transaction \(request.transaction) is already pushed; no hold is placed for it")
            }
            let decision = HoldRules.authorize(
                points: request.points, fromBalance: try await reads.available(member, now: now),
                unacknowledged: request.unacknowledged,
                alreadyPosted: request.unacknowledged > .zero
                    ? try await reads.posted(member, site: site, after: request.acknowledgedSequence) : .zero)
            guard decision.approved else {
                return Authorization(
                    holdID: "", expiresAt: nil, available: decision.available,
                    refusal: .insufficientPoints(requested: request.points))
            }
            var generator = SystemRandomNumberGenerator()
            let hold = "h_" + TransactionID(time: now, using: &generator).description
            let expires = now.adding(milliseconds: holdMilliseconds)
            try await connection.run(
                """
                INSERT INTO holds (hold_id, member_id, site_id, merchant_id, transaction_id, request_id, points,
                    balance_points, created_at_ms, expires_at_ms, status)
                VALUES (\(hold), \(member.description), \(site.rawValue), \(request.merchant.rawValue),
                    \(request.transaction.description), \(request.requestID.rawValue), \(request.points.value),
                    \(decision.fromBalancePart.value), \(now.milliseconds), \(expires.milliseconds), 'active')
                """, logger)
            try await self.touch(member, reads, now: now)
            return Authorization(holdID: hold, expiresAt: expires, available: decision.available, refusal: nil)
        }
    }

    /// A retry of an authorisation already answered.
    private func existingHold(
        _ request: AuthorizeCommand, _ connection: PostgresConnection, _ reads: PostgresLedgerReads, _ now: Timestamp
    ) async throws -> Authorization? {
        guard
            let existing = try await connection.rows(
                """
                SELECT hold_id, member_id, points, expires_at_ms, status FROM holds
                WHERE transaction_id = \(request.transaction.description)
                """, logger
            ).first
        else { return nil }
        let available = try await MemberID(try existing.text("member_id")).asyncMap {
            max(.zero, try await reads.available($0, now: now))
        }
        return Authorization(
            holdID: try existing.text("hold_id"), expiresAt: Timestamp(milliseconds: try existing.int("expires_at_ms")),
            available: available ?? .zero, refusal: try existing.text("status") == "released" ? .released : nil)
    }

    /// Locks the row of the member `id` stands for now (following merges); nil when unknown.
    func lockResolved(_ id: MemberID, _ connection: PostgresConnection) async throws -> MemberID? {
        var current = id
        for _ in 0..<8 {
            guard
                let row = try await connection.rows(
                    "SELECT merged_into FROM members WHERE member_id = \(current.description) FOR UPDATE", logger
                ).first
            else { return nil }
            guard let merged = try row.textOrNil("merged_into"), let next = MemberID(merged) else { return current }
            current = next
        }
        return current
    }

    /// Marks a locked member changed at a position of its own, so edges pull its snapshot.
    func touch(_ member: MemberID, _ reads: PostgresLedgerReads, now: Timestamp) async throws {
        let position = try await PostgresPositions.claim(database.claims, count: 1, now: now, logger: logger).first
        do {
            try await reads.touch(member, position: position)
            try await PostgresPositions.endClaim(position, reads.connection, logger: logger)
        } catch {
            await PostgresPositions.abandon(position, database.claims, logger: logger)
            throw error
        }
    }

    package func release(site: SiteID, hold: String) async throws -> Bool {
        let now = clock.now()
        return try await transaction("releasing a hold") { [logger] connection in
            guard
                let member = try await connection.value(
                    "SELECT member_id FROM holds WHERE hold_id = \(hold) AND site_id = \(site.rawValue) AND status = 'active'",
                    as: String.self, logger
                ).flatMap(MemberID.init),
                let locked = try await self.lockResolved(member, connection)
            else { return false }
            let released =
                try await connection.value(
                    "UPDATE holds SET status = 'released' WHERE hold_id = \(hold) AND status = 'active' RETURNING TRUE",
                    as: Bool.self, logger) ?? false
            if released {
                try await self.touch(locked, PostgresLedgerReads(connection: connection, logger: logger), now: now)
            }
            return released
        }
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
