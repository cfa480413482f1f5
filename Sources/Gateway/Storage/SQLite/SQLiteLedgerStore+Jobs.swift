import Core
import Foundation
import GRDB
import Wire

extension SQLiteLedgerStore {
    /// Expires every lot that expires by the end of `day` (program time zone): one `expire`
    /// transaction per member (member → `expired`). Running the same day again does nothing.
    package func runExpiry(asOfEndOf day: CivilDate) async throws -> ExpiryRun {
        guard let program = programs.active(at: clockNow)?.program else { preconditionFailure("no program") }
        let now = clockNow
        let end = program.timeZone.startOfDay(day.adding(days: 1))
        return try await database.pool.write { db in
            if let done = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT members, points, transactions FROM expiry_runs WHERE day = ?"),
                arguments: [day.description])
            {
                return ExpiryRun(
                    day: day, members: done["members"], points: Points(done["points"]),
                    transactions: done["transactions"], alreadyRun: true)
            }
            // Lots due, by member; each member's chain is read and the engine decides.
            var byMember: [String: Set<Int64>] = [:]
            for row in try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT lot_number, member_id FROM lots WHERE remaining_points > 0 AND expires_at_ms <= ?"
                ),
                arguments: [end.milliseconds])
            {
                byMember[row["member_id"], default: []].insert(row["lot_number"])
            }
            var keys = PostingKeys()
            keys.members = Set(byMember.keys.compactMap(MemberID.init))
            keys.debitedMembers = keys.members
            let catalogue = programs
            let view = try SQLitePosting.load(db, keys: keys, catalogue: catalogue)
            let instant = try LedgerWriter(db: db).postingInstant(now)
            var engine = PostingEngine(
                view: view, catalogue: catalogue, site: SiteID(unchecked: "gateway"), now: instant,
                programGraceMilliseconds: 0, clockSkewMaxMilliseconds: 0)
            var total = Points.zero
            var generator = SystemRandomNumberGenerator()
            for (memberText, lots) in byMember.sorted(by: { $0.key < $1.key }) {
                guard let member = MemberID(memberText) else { continue }
                total += engine.expire(
                    member: member, due: lots, transactionID: TransactionID(time: now, using: &generator).description,
                    detail: "expiry as of end of \(day)")
            }
            try SQLitePosting.apply(db, engine.finish(), outbox: [:], now: now)
            let run = ExpiryRun(
                day: day, members: byMember.count, points: total, transactions: byMember.count, alreadyRun: false)
            try db.cachedStatement(
                sql: "INSERT INTO expiry_runs (day, members, points, transactions, ran_at_ms) VALUES (?, ?, ?, ?, ?)"
            ).execute(arguments: [day.description, run.members, total.value, run.transactions, now.milliseconds])
            return run
        }
    }

    /// Members with points expiring after `asOf` and within the program's reminder window.
    package func expiryReminders(asOf: Timestamp, limit: Int) async throws -> [ExpiryReminder] {
        guard let program = programs.active(at: asOf)?.program else { return [] }
        let horizon = asOf.adding(milliseconds: Int64(program.expiry.reminderDays) * Timestamp.day)
        return try await database.pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT member_id, SUM(remaining_points) AS points, MIN(expires_at_ms) AS first FROM lots
                        WHERE remaining_points > 0 AND expires_at_ms > ? AND expires_at_ms <= ?
                        GROUP BY member_id ORDER BY first, member_id LIMIT ?
                        """),
                arguments: [asOf.milliseconds, horizon.milliseconds, limit]
            ).compactMap { row in
                MemberID(row["member_id"] as String).map {
                    ExpiryReminder(
                        member: $0, points: Points(row["points"]), expiresAt: Timestamp(milliseconds: row["first"]))
                }
            }
        }
    }

    /// Reviews the tiers of members whose review date has come by `day`: down (or up) to the tier
    /// their rolling 12 months qualify for. Returns how many members changed tier.
    package func reviewTiers(on day: CivilDate) async throws -> Int {
        guard let program = programs.latest?.program else { return 0 }
        let now = clockNow
        return try await database.pool.write { db in
            let writer = LedgerWriter(db: db)
            let due = try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT member_id, tier, tier_review_date FROM members WHERE merged_into IS NULL AND tier_review_date <= ?"
                ),
                arguments: [day.description])
            var changed = 0
            for row in due {
                guard let member = MemberID(row["member_id"] as String),
                    let reviewDate = CivilDate(parsing: row["tier_review_date"])
                else { continue }
                let status = TierStatus(
                    tier: TierID(row["tier"] as String) ?? program.tiers.tiers[0].id, reviewDate: reviewDate)
                let qualifying = try writer.qualifyingPoints(member, program: program, now: now)
                let next = TierCalculator.atReview(program.tiers, status: status, qualifying: qualifying, on: day)
                let position = try writer.nextPosition()
                try db.cachedStatement(
                    sql: "UPDATE members SET tier = ?, tier_review_date = ?, changed_position = ? WHERE member_id = ?"
                ).execute(arguments: [next.tier.rawValue, next.reviewDate.description, position, member.description])
                if next.tier != status.tier {
                    changed += 1
                    try writer.tierSpell(member, tier: next.tier, position: position)
                }
            }
            return changed
        }
    }
}
