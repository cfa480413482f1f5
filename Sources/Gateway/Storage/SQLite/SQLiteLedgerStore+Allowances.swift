import Core
import Foundation
import GRDB

extension SQLiteLedgerStore {
    package func grantAllowance(_ command: AllowanceGrantCommand) async throws -> AllowanceGrant {
        let now = clockNow
        let catalogue = programs
        return try await database.pool.write { db in
            let writer = LedgerWriter(db: db)
            if let first = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT transaction_id, position FROM transactions WHERE receipt = ?"),
                arguments: [command.receipt.description]),
                let record = try SQLitePosting.allowances(
                    db, where: "allowance_id = ?", arguments: [first["transaction_id"] as String]
                ).first
            {
                return AllowanceGrant(record: record, alreadyGranted: true, position: first["position"])
            }
            var keys = PostingKeys()
            keys.members = [command.member]
            keys.debitedMembers = keys.members
            keys.allowanceMembers = [try writer.resolve(command.member) ?? command.member]
            let view = try SQLitePosting.load(db, keys: keys, catalogue: catalogue)
            var engine = PostingEngine(
                view: view, catalogue: catalogue, site: command.site, now: try writer.postingInstant(now),
                programGraceMilliseconds: 0, clockSkewMaxMilliseconds: 0)
            var generator = SystemRandomNumberGenerator()
            let id = TransactionID(time: now, using: &generator).description
            let record = try engine.grantAllowance(
                member: command.member, site: command.site, trigger: command.trigger, points: command.points,
                leaseUntil: command.leaseUntil, allowanceID: id, transactionID: id,
                requestID: command.requestID.rawValue, receipt: command.receipt, detail: command.detail
            ).get()
            let effects = engine.finish()
            try SQLitePosting.apply(db, effects, outbox: [:], now: now)
            return AllowanceGrant(
                record: record, alreadyGranted: false,
                position: effects.entries.first { $0.transactionID == id }?.position ?? 0)
        }
    }

    package func returnAllowance(_ allowanceID: String, site: SiteID, points: Points?, by who: String) async throws
        -> AllowanceRecord
    {
        let now = clockNow
        let catalogue = programs
        return try await database.pool.write { db in
            var engine = try Self.allowanceEngine(db, ids: [allowanceID], catalogue: catalogue, now: now)
            guard let found = engine.allowance(allowanceID) else {
                throw AllowanceLedgerRefusal.unknownAllowance(allowanceID)
            }
            var generator = SystemRandomNumberGenerator()
            let record = try engine.returnAllowance(
                allowanceID, site: site, points: points ?? found.left,
                transactionID: TransactionID(time: now, using: &generator).description, detail: "returned by \(who)"
            ).get()
            try SQLitePosting.apply(db, engine.finish(), outbox: [:], now: now)
            return record
        }
    }

    package func allowance(_ id: String) async throws -> AllowanceRecord? {
        try await database.pool.read { db in
            try SQLitePosting.allowances(db, where: "allowance_id = ?", arguments: [id]).first
        }
    }

    package func allowances(site: SiteID?, member: MemberID?, activeOnly: Bool, limit: Int) async throws
        -> [AllowanceRecord]
    {
        try await database.pool.read { db in
            var conditions = ["1"]
            var arguments: StatementArguments = []
            if let site {
                conditions.append("site_id = ?")
                arguments += [site.rawValue]
            }
            if let member {
                conditions.append("member_id = ?")
                arguments += [(try LedgerWriter(db: db).resolve(member) ?? member).description]
            }
            if activeOnly { conditions.append("status = 'active'") }
            return try SQLitePosting.allowances(
                db, where: conditions.joined(separator: " AND "), arguments: arguments, newestFirst: true, limit: limit)
        }
    }

    package func earnCounts(since: Timestamp) async throws -> [MemberID: [SiteID: Int]] {
        try await database.pool.read { db in
            var counts: [MemberID: [SiteID: Int]] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT member_id, site_id, COUNT(*) AS earns FROM transactions
                    WHERE occurred_at_ms >= ? AND kind = 'earn' AND member_id IS NOT NULL AND site_id IS NOT NULL
                    GROUP BY member_id, site_id
                    """, arguments: [since.milliseconds])
            {
                guard let member = MemberID(row["member_id"] as String), let site = SiteID(row["site_id"] as String)
                else { continue }
                counts[member, default: [:]][site] = row["earns"]
            }
            return counts
        }
    }

    package func escrowBySite() async throws -> [SiteID: Points] {
        try await database.pool.read { db in
            var totals: [SiteID: Points] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT account, points FROM balances WHERE account LIKE 'escrow:%' AND points != 0")
            {
                if case .escrow(let site) = SQLitePosting.account(row["account"]) {
                    totals[site] = Points(row["points"])
                }
            }
            return totals
        }
    }

    package func reclaimAllowances(limit: Int) async throws -> Int {
        let now = clockNow
        let catalogue = programs
        guard let rules = catalogue.latest?.program.allowances else { return 0 }
        let due = now.milliseconds - Int64(rules.reclaimMarginMinutes) * 60_000
        return try await database.pool.write { db in
            let ids = try String.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT allowance_id FROM allowances WHERE status = 'active' AND lease_until_ms <= ?
                        ORDER BY lease_until_ms, allowance_id LIMIT ?
                        """),
                arguments: [due, limit])
            guard !ids.isEmpty else { return 0 }
            var engine = try Self.allowanceEngine(db, ids: Set(ids), catalogue: catalogue, now: now)
            var caughtUp: [SiteID: Timestamp?] = [:]
            var generator = SystemRandomNumberGenerator()
            var reclaimed = 0
            for id in ids {
                guard let site = engine.allowance(id)?.site else { continue }
                if caughtUp[site] == nil {
                    caughtUp[site] = try Int64.fetchOne(
                        db, sql: "SELECT caught_up_at_ms FROM sites WHERE site_id = ?", arguments: [site.rawValue]
                    ).map(Timestamp.init(milliseconds:))
                }
                if case .success(.some) = engine.reclaimAllowance(
                    id, caughtUpAt: caughtUp[site] ?? nil,
                    transactionID: TransactionID(time: now, using: &generator).description,
                    detail: "reclaimed after the lease and its margin")
                {
                    reclaimed += 1
                }
            }
            try SQLitePosting.apply(db, engine.finish(), outbox: [:], now: now)
            return reclaimed
        }
    }

    package func recordCaughtUp(site: SiteID, sentAt: Timestamp) async throws {
        let at = Self.caughtUpInstant(sentAt: sentAt, now: clockNow, rules: programs.latest?.program.allowances)
        let exists = "SELECT 1 FROM allowances WHERE site_id = ? AND status = 'active' AND lease_until_ms <= ?"
        // Most pulls find nothing to record: read first, write only when it matters.
        guard
            try await database.pool.read({ db in
                try Bool.fetchOne(db.cachedStatement(sql: exists), arguments: [site.rawValue, at.milliseconds]) != nil
            })
        else { return }
        try await database.pool.write { db in
            try db.execute(
                sql: "UPDATE sites SET caught_up_at_ms = MAX(COALESCE(caught_up_at_ms, 0), ?) WHERE site_id = ?",
                arguments: [at.milliseconds, site.rawValue])
        }
    }

    /// The instant on the gateway's clock a site's request sent at `sentAt` (its clock) was sent at
    /// the earliest: less the clocks' tolerance, and never later than now.
    static func caughtUpInstant(sentAt: Timestamp, now: Timestamp, rules: AllowanceRules?) -> Timestamp {
        let skew = Int64(rules?.clockSkewMaxMinutes ?? 0) * 60_000
        let sent = sentAt.milliseconds > Int64.min + skew ? sentAt.milliseconds - skew : Int64.min
        return Timestamp(milliseconds: max(0, min(now.milliseconds, sent)))
    }

    /// An engine whose view holds the allowances `ids` and their members.
    private static func allowanceEngine(
        _ db: Database, ids: Set<String>, catalogue: ProgramCatalogue, now: Timestamp
    ) throws -> PostingEngine {
        var keys = PostingKeys()
        keys.allowances = ids
        keys.members = Set(
            try SQLitePosting.allowances(
                db, where: "allowance_id IN (SELECT value FROM json_each(?))",
                arguments: [
                    SQLitePosting.json(ids)
                ]
            ).map(\.member))
        let view = try SQLitePosting.load(db, keys: keys, catalogue: catalogue)
        return PostingEngine(
            view: view, catalogue: catalogue, site: SiteID(unchecked: "gateway"),
            now: try LedgerWriter(db: db).postingInstant(now), programGraceMilliseconds: 0,
            clockSkewMaxMilliseconds: 0)
    }
}
