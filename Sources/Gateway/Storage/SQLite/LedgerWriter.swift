import Core
import Foundation
import GRDB

/// Reads and writes of the ledger around posting, inside one database transaction: positions,
/// balances, holds, tier spells, merges. Every ledger transaction is decided by `PostingEngine`
/// and written by `SQLitePosting`.
struct LedgerWriter {
    let db: Database

    /// The next global position (transactions and pull changes share one sequence).
    func nextPosition() throws -> Int64 {
        guard
            let value = try Int64.fetchOne(
                db.cachedStatement(sql: "UPDATE counters SET value = value + 1 WHERE name = 'position' RETURNING value")
            )
        else {
            preconditionFailure("the position counter is missing")
        }
        return value
    }

    /// An account's balance (a member's is on its row).
    func balance(_ account: Account) throws -> Points {
        if case .member(let member) = account {
            return Points(
                try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT balance_points FROM members WHERE member_id = ?"),
                    arguments: [member.description]) ?? 0)
        }
        return Points(
            try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT points FROM balances WHERE account = ?"), arguments: [account.key]) ?? 0
        )
    }

    /// Points of a member's balance held by active, unexpired holds (other than `excluding`): the
    /// part of each hold that was taken from the balance when it was placed.
    func held(_ member: MemberID, now: Timestamp, excluding hold: String? = nil) throws -> Points {
        // The member's active holds; which of them keep points is HoldRules' to say.
        let holds = try Row.fetchAll(
            db.cachedStatement(sql: SQLitePosting.activeHolds + " AND member_id = ?"), arguments: [member.description]
        ).compactMap(SQLitePosting.hold)
        return HoldRules.held(holds, member: member, now: now, excluding: hold)
    }

    /// What a member may spend: balance less other holds.
    func available(_ member: MemberID, now: Timestamp, excluding hold: String? = nil) throws -> Points {
        try balance(.member(member)) - held(member, now: now, excluding: hold)
    }

    /// Marks a member as changed at `position`, so edges pull its snapshot.
    func touch(_ member: MemberID, position: Int64) throws {
        try db.cachedStatement(sql: "UPDATE members SET changed_position = ? WHERE member_id = ?")
            .execute(arguments: [position, member.description])
    }

    /// Bonus points each budgeted promotion has given so far.
    func promotionsGiven() throws -> [PromotionID: Points] {
        var given: [PromotionID: Points] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT promotion_id, points_given FROM promotion_usage")) {
            if let id = PromotionID(row["promotion_id"] as String) { given[id] = Points(row["points_given"]) }
        }
        return given
    }

    /// Records that `member` holds `tier` from `position` on.
    func tierSpell(_ member: MemberID, tier: TierID, position: Int64) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO member_tiers (member_id, position, tier) VALUES (?, ?, ?) ON CONFLICT (member_id, position) DO UPDATE SET tier = excluded.tier"
        ).execute(arguments: [member.description, position, tier.rawValue])
    }

    /// The instant to post at: the clock's, or the last posting time if the clock is behind it
    /// (posting times never go backwards, so a period of posting time is a range of positions).
    func postingInstant(_ clock: Timestamp) throws -> Timestamp {
        let last = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT posted_at_ms FROM transactions ORDER BY position DESC LIMIT 1"))
        return Timestamp(milliseconds: max(clock.milliseconds, last ?? .min))
    }

    /// The first position posted at or after `instant` (posting times never go backwards): a
    /// binary search over positions, no index needed.
    func firstPosition(postedAtOrAfter instant: Timestamp) throws -> Int64 {
        let statement = try db.cachedStatement(
            sql: "SELECT position, posted_at_ms FROM transactions WHERE position >= ? ORDER BY position LIMIT 1")
        var low: Int64 = 0
        var high =
            (try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT position FROM transactions ORDER BY position DESC LIMIT 1"))
                ?? 0) + 1
        while low < high {
            let middle = low + (high - low) / 2
            guard let row = try Row.fetchOne(statement, arguments: [middle]),
                (row["posted_at_ms"] as Int64) < instant.milliseconds
            else {
                high = middle
                continue
            }
            low = (row["position"] as Int64) + 1
        }
        return low
    }

    /// A member's lots with points left (its chain from `members.lots_head`).
    func openLots(of member: MemberID) throws -> [Row] {
        try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    WITH RECURSIVE chain (number) AS (
                        SELECT lots_head FROM members WHERE member_id = ? AND lots_head IS NOT NULL
                        UNION ALL
                        SELECT l.next_lot FROM lots l JOIN chain c ON l.lot_number = c.number WHERE l.next_lot IS NOT NULL
                    )
                    SELECT l.* FROM chain c JOIN lots l ON l.lot_number = c.number
                    ORDER BY l.expires_at_ms, l.lot_id
                    """),
            arguments: [member.description])
    }

    /// A member's ledger transactions before `position`, newest first, at most `limit` (its chain
    /// from `members.last_position`).
    func history(of member: MemberID, before position: Int64, limit: Int) throws -> [Row] {
        try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    WITH RECURSIVE chain (position) AS (
                        SELECT last_position FROM members WHERE member_id = ? AND last_position IS NOT NULL
                        UNION ALL
                        SELECT t.member_previous FROM transactions t JOIN chain c ON t.position = c.position
                        WHERE t.member_previous IS NOT NULL
                    )
                    SELECT t.* FROM chain c JOIN transactions t ON t.position = c.position
                    WHERE t.position < ? ORDER BY t.position DESC LIMIT ?
                    """),
            arguments: [member.description, position, limit])
    }

    /// The member's points change from the site's transactions after `sequence`, as posted: the
    /// member's chain back to the first of them.
    func posted(_ member: MemberID, site: SiteID, after sequence: Int64) throws -> Points {
        guard
            let first = try Int64.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT position FROM transactions WHERE site_id = ? AND site_sequence > ? AND site_sequence IS NOT NULL ORDER BY site_sequence LIMIT 1"
                ),
                arguments: [site.rawValue, sequence])
        else { return .zero }
        let sum = try Int64.fetchOne(
            db.cachedStatement(
                sql: """
                    WITH RECURSIVE chain (position) AS (
                        SELECT last_position FROM members WHERE member_id = ? AND last_position >= ?
                        UNION ALL
                        SELECT t.member_previous FROM transactions t JOIN chain c ON t.position = c.position
                        WHERE t.member_previous >= ?
                    )
                    SELECT COALESCE(SUM(t.points), 0) FROM chain c JOIN transactions t ON t.position = c.position
                    WHERE t.site_id = ? AND t.site_sequence > ?
                    """),
            arguments: [member.description, first, first, site.rawValue, sequence])
        return Points(sum ?? 0)
    }

    /// Points earned (less refunds) in the rolling qualifying window ending now.
    func qualifyingPoints(_ member: MemberID, program: Program, now: Timestamp) throws -> Points {
        let sum =
            try Int64.fetchOne(
                db.cachedStatement(
                    sql: "SELECT COALESCE(SUM(points), 0) FROM qualifying_points WHERE member_id = ? AND bucket_ms >= ?"
                ),
                arguments: [member.description, PostingEngine.windowStart(program, now: now)]) ?? 0
        return Points(max(0, sum))
    }

    /// The member a member id stands for now (following merges).
    func resolve(_ member: MemberID) throws -> MemberID? {
        var current = member
        for _ in 0..<8 {
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT merged_into FROM members WHERE member_id = ?"),
                    arguments: [current.description])
            else { return nil }
            let merged: String? = row["merged_into"]
            guard let merged, let next = MemberID(merged) else { return current }
            current = next
        }
        return current
    }
}
