import Core
import Foundation
import Logging
import PostgresNIO

extension PostgresLedgerStore {
    package func grantAllowance(_ command: AllowanceGrantCommand) async throws -> AllowanceGrant {
        let now = clockNow
        return try await transaction("granting an allowance") { [logger] connection in
            // The member's row locked first: grants and spends of one member take turns, so a
            // second grant at the site sees the first.
            let target = try await self.lockResolved(command.member, connection)
            if let first = try await connection.rows(
                "SELECT transaction_id, position FROM transactions WHERE receipt = \(command.receipt.description)",
                logger
            ).first,
                let record = try await PostgresPosting.allowances(
                    connection,
                    """
                    SELECT \(unescaped: SQLitePosting.allowanceColumns) FROM allowances
                    WHERE allowance_id = \(try first.text("transaction_id"))
                    """, logger
                ).first
            {
                return AllowanceGrant(record: record, alreadyGranted: true, position: try first.int("position"))
            }
            var keys = PostingKeys()
            keys.members = [command.member]
            keys.debitedMembers = keys.members
            keys.allowanceMembers = [target ?? command.member]
            var generator = SystemRandomNumberGenerator()
            let id = TransactionID(time: now, using: &generator).description
            let record = try await self.postOwn(connection, keys: keys, count: 2, now: now) { engine in
                try engine.grantAllowance(
                    member: command.member, site: command.site, trigger: command.trigger, points: command.points,
                    leaseUntil: command.leaseUntil, allowanceID: id, transactionID: id,
                    requestID: command.requestID.rawValue, receipt: command.receipt, detail: command.detail
                ).get()
            }
            let position = try await connection.value(
                "SELECT position FROM transactions WHERE transaction_id = \(id)", as: Int64.self, logger)
            return AllowanceGrant(record: record, alreadyGranted: false, position: position ?? 0)
        }
    }

    package func returnAllowance(_ allowanceID: String, site: SiteID, points: Points?, by who: String) async throws
        -> AllowanceRecord
    {
        let now = clockNow
        return try await transaction("returning an allowance") { connection in
            let keys = try await self.allowanceKeys(connection, ids: [allowanceID])
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator).description
            return try await self.postOwn(connection, keys: keys, count: 2, now: now) { engine in
                guard let found = engine.allowance(allowanceID) else {
                    throw AllowanceLedgerRefusal.unknownAllowance(allowanceID)
                }
                return try engine.returnAllowance(
                    allowanceID, site: site, points: points ?? found.left, transactionID: transaction,
                    detail: "returned by \(who)"
                ).get()
            }
        }
    }

    package func allowance(_ id: String) async throws -> AllowanceRecord? {
        try await transaction("reading an allowance") { [logger] connection in
            try await PostgresPosting.allowances(
                connection,
                "SELECT \(unescaped: SQLitePosting.allowanceColumns) FROM allowances WHERE allowance_id = \(id)", logger
            ).first
        }
    }

    package func allowances(site: SiteID?, member: MemberID?, activeOnly: Bool, limit: Int) async throws
        -> [AllowanceRecord]
    {
        try await transaction("reading allowances") { [logger] connection in
            let reads = PostgresLedgerReads(connection: connection, logger: logger)
            var resolved: String?
            if let member { resolved = (try await reads.resolve(member) ?? member).description }
            return try await PostgresPosting.allowances(
                connection,
                """
                SELECT \(unescaped: SQLitePosting.allowanceColumns) FROM allowances
                WHERE (\(site?.rawValue)::text IS NULL OR site_id = \(site?.rawValue))
                    AND (\(resolved)::text IS NULL OR member_id = \(resolved))
                    AND (NOT \(activeOnly) OR status = 'active')
                ORDER BY granted_at_ms DESC, allowance_id DESC LIMIT \(Int64(limit))
                """, logger)
        }
    }

    package func earnCounts(since: Timestamp) async throws -> [MemberID: [SiteID: Int]] {
        try await transaction("counting earns") { [logger] connection in
            var counts: [MemberID: [SiteID: Int]] = [:]
            for row in try await connection.rows(
                """
                SELECT member_id, site_id, COUNT(*) AS earns FROM transactions
                WHERE occurred_at_ms >= \(since.milliseconds) AND kind = 'earn' AND member_id IS NOT NULL
                    AND site_id IS NOT NULL
                GROUP BY member_id, site_id
                """, logger)
            {
                guard let member = MemberID(try row.text("member_id")), let site = SiteID(try row.text("site_id"))
                else { continue }
                counts[member, default: [:]][site] = Int(try row.int("earns"))
            }
            return counts
        }
    }

    package func escrowBySite() async throws -> [SiteID: Points] {
        try await transaction("reading escrow") { [logger] connection in
            var totals: [SiteID: Points] = [:]
            for row in try await connection.rows(
                "SELECT account, points FROM balances WHERE account LIKE 'escrow:%' AND points <> 0", logger)
            {
                if case .escrow(let site) = SQLitePosting.account(try row.text("account")) {
                    totals[site] = Points(try row.int("points"))
                }
            }
            return totals
        }
    }

    package func reclaimAllowances(limit: Int) async throws -> Int {
        let now = clockNow
        guard let rules = programs.latest?.program.allowances else { return 0 }
        let due = now.milliseconds - Int64(rules.reclaimMarginMinutes) * 60_000
        return try await transaction("reclaiming allowances") { [logger] connection in
            var ids: [String] = []
            for row in try await connection.rows(
                """
                SELECT allowance_id FROM allowances WHERE status = 'active' AND lease_until_ms <= \(due)
                ORDER BY lease_until_ms, allowance_id LIMIT \(Int64(limit))
                """, logger)
            {
                ids.append(try row.text("allowance_id"))
            }
            guard !ids.isEmpty else { return 0 }
            let keys = try await self.allowanceKeys(connection, ids: Set(ids))
            var caughtUp: [SiteID: Timestamp] = [:]
            for row in try await connection.rows(
                "SELECT site_id, caught_up_at_ms FROM sites WHERE caught_up_at_ms IS NOT NULL", logger)
            {
                caughtUp[SiteID(unchecked: try row.text("site_id"))] = Timestamp(
                    milliseconds: try row.int("caught_up_at_ms"))
            }
            var generator = SystemRandomNumberGenerator()
            let transactions = ids.map { _ in TransactionID(time: now, using: &generator).description }
            return try await self.postOwn(connection, keys: keys, count: Int64(ids.count) + 1, now: now) { engine in
                var reclaimed = 0
                for (id, transaction) in zip(ids, transactions) {
                    guard let site = engine.allowance(id)?.site else { continue }
                    if case .success(.some) = engine.reclaimAllowance(
                        id, caughtUpAt: caughtUp[site], transactionID: transaction,
                        detail: "reclaimed after the lease and its margin")
                    {
                        reclaimed += 1
                    }
                }
                return reclaimed
            }
        }
    }

    package func recordCaughtUp(site: SiteID, sentAt: Timestamp) async throws {
        let at = SQLiteLedgerStore.caughtUpInstant(
            sentAt: sentAt, now: clockNow, rules: programs.latest?.program.allowances)
        try await transaction("recording a site caught up") { [logger] connection in
            try await connection.run(
                """
                UPDATE sites SET caught_up_at_ms = GREATEST(COALESCE(caught_up_at_ms, 0), \(at.milliseconds))
                WHERE site_id = \(site.rawValue) AND EXISTS (
                    SELECT 1 FROM allowances WHERE site_id = \(site.rawValue) AND status = 'active'
                        AND lease_until_ms <= \(at.milliseconds))
                """, logger)
        }
    }

    /// The keys of a posting of the allowances `ids`: they and their members (locked by `postOwn`).
    private func allowanceKeys(_ connection: PostgresConnection, ids: Set<String>) async throws -> PostingKeys {
        var keys = PostingKeys()
        keys.allowances = ids
        for row in try await connection.rows(
            "SELECT member_id FROM allowances WHERE allowance_id = ANY(\(ids.sorted()))", logger)
        {
            if let member = MemberID(try row.text("member_id")) { keys.members.insert(member) }
        }
        return keys
    }
}
