import Core
import Foundation
import GRDB
import NodeSupport
import Wire

/// What the sync service reads and holds beyond pushes: pull pages, recovery pages, holds.
extension SQLiteLedgerStore {
    // MARK: Pull

    package func pull(site: SiteID, cursor: Int64, pageSize: Int) async throws -> PullPage {
        let catalogue = programs
        let now = clock.now()
        return try await database.pool.read { db in
            let highWater =
                try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT high_water_mark FROM sites WHERE site_id = ?"),
                    arguments: [site.rawValue]) ?? 0
            // Up to pageSize + 1 of each kind after the cursor, merged in position order.
            // One position can change several rows (a referral touches two members, a merge a
            // member and a merge record): `PullPaging` ends the page between positions.
            var (changes, hasMore, rereadAll) = PullPaging.trim(
                try Self.changes(
                    db, condition: "changed_position > ?", argument: cursor, limit: pageSize + 1, site: site,
                    siteHighWater: highWater, catalogue: catalogue, now: now), pageSize: pageSize)
            if let rereadAll {
                changes = try Self.changes(
                    db, condition: "changed_position = ?", argument: rereadAll, limit: nil, site: site,
                    siteHighWater: highWater, catalogue: catalogue, now: now)
            }
            var keys: [UInt8: [UInt8]] = [:]
            for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT key_id, public_key FROM voucher_keys")) {
                keys[UInt8(truncatingIfNeeded: row["key_id"] as Int64)] = Array(row["public_key"] as Data)
            }
            return PullPage(
                changes: changes, hasMore: hasMore, nextCursor: changes.last?.position ?? max(0, cursor),
                siteHighWaterMark: highWater, voucherKeys: keys)
        }
    }

    /// The member, program and merge changes whose `changed_position` meets `condition`, at most
    /// `limit` of each kind, in position order.
    private static func changes(
        _ db: Database, condition: String, argument: Int64, limit: Int?, site: SiteID, siteHighWater: Int64,
        catalogue: ProgramCatalogue, now: Timestamp
    ) throws -> [LedgerChange] {
        // Two shapes of statement (after a cursor, at one position), each prepared once; a
        // negative LIMIT is no limit.
        let order = "ORDER BY changed_position LIMIT ?"
        let arguments: StatementArguments = [argument, limit ?? -1]
        var changes: [LedgerChange] = []
        for row in try Row.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM members WHERE merged_into IS NULL AND \(condition) \(order)"),
            arguments: arguments)
        {
            changes.append(
                LedgerChange(
                    position: row["changed_position"],
                    body: .member(
                        try snapshot(
                            db, row, site: site, siteHighWater: siteHighWater, catalogue: catalogue, now: now))))
        }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT version, document, effective_at_ms, changed_position FROM program_versions WHERE \(condition) \(order)"
            ),
            arguments: arguments)
        {
            changes.append(
                LedgerChange(
                    position: row["changed_position"],
                    body: .program(
                        version: row["version"], document: row["document"],
                        effectiveAt: Timestamp(milliseconds: row["effective_at_ms"]))))
        }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT from_member, into_member, changed_position FROM merges WHERE \(condition) \(order)"),
            arguments: arguments)
        {
            guard let from = MemberID(row["from_member"] as String), let into = MemberID(row["into_member"] as String)
            else { preconditionFailure("a stored merge names a malformed member id") }
            changes.append(LedgerChange(position: row["changed_position"], body: .merge(from: from, into: into)))
        }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT voucher_id, status, changed_position FROM vouchers WHERE status != 'issued' AND \(condition) \(order)"
            ),
            arguments: arguments)
        {
            guard let status = VoucherStatus(rawValue: row["status"]) else {
                preconditionFailure("a stored voucher has an unknown status")
            }
            changes.append(
                LedgerChange(position: row["changed_position"], body: .voucher(id: row["voucher_id"], status: status)))
        }
        // Stable: within one position, members before programs before merges before vouchers.
        return changes.enumerated().sorted { ($0.element.position, $0.offset) < ($1.element.position, $1.offset) }.map(
            \.element)
    }

    private static func snapshot(
        _ db: Database, _ row: Row, site: SiteID, siteHighWater: Int64, catalogue: ProgramCatalogue, now: Timestamp
    ) throws -> MemberSnapshot {
        guard let member = MemberID(row["member_id"] as String) else {
            preconditionFailure("a stored member id is malformed")
        }
        let writer = LedgerWriter(db: db)
        var expiring = Points.zero
        var nextExpiry: Timestamp?
        if let rules = catalogue.latest?.program.expiry {
            let lots = try writer.openLots(of: member).map {
                Lot(
                    id: TransactionID(value: 0), remaining: Points($0["remaining_points"]),
                    expiresAt: Timestamp(milliseconds: $0["expires_at_ms"]))
            }
            let reminder = ExpiryCalculator.reminder(lots, asOf: now, rules: rules)
            expiring = reminder.points
            nextExpiry = reminder.first
        }
        var snapshot = MemberSnapshot(
            id: member, phoneHash: row["phone_hash"] ?? Data(), cardNumber: row["card_number"] ?? "", tier: row["tier"],
            // The ledger balance, not balance minus holds: a hold that expires or is released
            // changes no posting and republishes nothing, so a snapshot net of holds would stay
            // low for good. Holds are enforced where they are placed, by online authorisation.
            balance: max(.zero, try writer.balance(.member(member))), birthMonth: row["birth_month"],
            includesSiteSequence: siteHighWater, lastEarnByFormat: LastEarnEncoding.decode(row["last_earn"]),
            streakLastDay: row["streak_last_day"] ?? "", streakDays: row["streak_days"],
            tierReviewDate: row["tier_review_date"], enrolledAt: Timestamp(milliseconds: row["enrolled_at_ms"]),
            expiringPoints: expiring, nextExpiryAt: nextExpiry)
        snapshot.reserve(
            try SQLitePosting.allowances(
                db, where: "member_id = ? AND status = 'active'", arguments: [member.description]),
            site: site, rules: catalogue.latest?.program.allowances)
        return snapshot
    }

    // MARK: Recover

    package func recover(site: SiteID, from sequence: Int64, count: Int) async throws -> RecoverPage {
        try await database.pool.read { db in
            let highWater =
                try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT high_water_mark FROM sites WHERE site_id = ?"),
                    arguments: [site.rawValue]) ?? 0
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT site_sequence, transaction_id, previous_hash, payload, outbox_occurred_at_ms FROM transactions WHERE site_id = ? AND site_sequence >= ? ORDER BY site_sequence LIMIT ?"
                ),
                arguments: [site.rawValue, sequence, count]
            ).map { row in
                StoredOutboxRow(
                    sequence: row["site_sequence"], transactionID: row["transaction_id"],
                    previousHash: row["previous_hash"], payload: row["payload"],
                    occurredAtMilliseconds: row["outbox_occurred_at_ms"])
            }
            return RecoverPage(
                highWaterMark: highWater, transactions: rows, hasMore: (rows.last?.sequence ?? highWater) < highWater)
        }
    }

    // MARK: Holds

    package func authorize(site: SiteID, request: AuthorizeCommand) async throws -> Authorization {
        let now = clock.now()
        let limits = self.limits
        return try await database.pool.write { db in
            let writer = LedgerWriter(db: db)
            if let existing = try Row.fetchOne(
                db.cachedStatement(
                    sql: "SELECT hold_id, member_id, points, expires_at_ms, status FROM holds WHERE transaction_id = ?"),
                arguments: [request.transaction.description])
            {
                // A retry of the same authorisation.
                let available = try MemberID(existing["member_id"] as String).map {
                    max(.zero, try writer.available($0, now: now))
                }
                return Authorization(
                    holdID: existing["hold_id"], expiresAt: Timestamp(milliseconds: existing["expires_at_ms"]),
                    available: available ?? .zero,
                    refusal: (existing["status"] as String) == "released" ? .released : nil)
            }
            // A transaction already pushed is settled: a hold placed for it now would keep the
            // member's points for hold_ms with nothing left to consume it.
            if try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM transactions WHERE transaction_id = ?)"),
                arguments: [request.transaction.description]) == true
            {
                throw SyncRefusal(
                    reason: "TRANSACTION_POSTED",
                    message: "transaction \(request.transaction) is already pushed; no hold is placed for it")
            }
            guard let member = try writer.resolve(request.member) else {
                return Authorization(holdID: "", expiresAt: nil, available: .zero, refusal: .unknownMember)
            }
            // The decision is HoldRules' (Core); the store reads its inputs and writes the hold.
            let decision = HoldRules.authorize(
                points: request.points, fromBalance: try writer.available(member, now: now),
                unacknowledged: request.unacknowledged,
                alreadyPosted: request.unacknowledged > .zero
                    ? try writer.posted(member, site: site, after: request.acknowledgedSequence) : .zero)
            guard decision.approved else {
                return Authorization(
                    holdID: "", expiresAt: nil, available: decision.available,
                    refusal: .insufficientPoints(requested: request.points))
            }
            var generator = SystemRandomNumberGenerator()
            let hold = "h_" + TransactionID(time: now, using: &generator).description
            let expires = now.adding(milliseconds: limits.holdMilliseconds)
            try db.cachedStatement(
                sql:
                    "INSERT INTO holds (hold_id, member_id, site_id, merchant_id, transaction_id, request_id, points, balance_points, created_at_ms, expires_at_ms, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active')"
            ).execute(arguments: [
                hold, member.description, site.rawValue, request.merchant.rawValue, request.transaction.description,
                request.requestID.rawValue,
                request.points.value, decision.fromBalancePart.value, now.milliseconds,
                expires.milliseconds,
            ])
            try writer.touch(member, position: try writer.nextPosition())
            return Authorization(holdID: hold, expiresAt: expires, available: decision.available, refusal: nil)
        }
    }

    package func release(site: SiteID, hold: String) async throws -> Bool {
        try await database.pool.write { db in
            guard
                let member = try String.fetchOne(
                    db.cachedStatement(
                        sql: "SELECT member_id FROM holds WHERE hold_id = ? AND site_id = ? AND status = 'active'"),
                    arguments: [hold, site.rawValue])
            else { return false }
            try db.cachedStatement(sql: "UPDATE holds SET status = 'released' WHERE hold_id = ?").execute(arguments: [
                hold
            ])
            if let id = MemberID(member) {
                let writer = LedgerWriter(db: db)
                try writer.touch(id, position: try writer.nextPosition())
            }
            return true
        }
    }
}
