import Core
import Foundation
import Logging
import PostgresNIO
import Wire

extension PostgresLedgerStore {
    /// This gateway process, as a lease holder.
    static let holder =
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(UUID().uuidString.prefix(8))"

    /// Runs a daily job of `period` only while holding its lease (docs/scale.md): nil when another
    /// gateway holds it or it has run. The job's own record (an expiry run's day) still makes a
    /// second run do nothing, should a lease be taken over from a gateway that finished unseen.
    func leased<Result: Sendable>(_ job: String, period: String, _ body: () async throws -> Result) async throws
        -> Result?
    {
        let now = clockNow
        let claim = try await guarded("taking the lease of \(job)") {
            try await PostgresLeases.claim(
                client, job: job, period: period, holder: Self.holder, now: now,
                leaseMilliseconds: limits.jobLeaseMilliseconds, logger: logger)
        }
        guard case .held = claim else { return nil }
        let result = try await body()
        _ = try await guarded("finishing the lease of \(job)") {
            try await PostgresLeases.finish(client, job: job, period: period, holder: Self.holder, logger: logger)
        }
        return result
    }

    /// Expires every lot that expires by the end of `day` (program time zone), as the SQLite store
    /// does: once per day, however many gateways run.
    package func runExpiry(asOfEndOf day: CivilDate) async throws -> ExpiryRun {
        guard let program = programs.active(at: clockNow)?.program else { preconditionFailure("no program") }
        let now = clockNow
        let end = program.timeZone.startOfDay(day.adding(days: 1))
        let run = try await leased("expiry", period: day.description) {
            try await self.transaction("expiring points") { [logger] connection in
                if let done = try await self.expiryRun(day, connection) { return done }
                var byMember: [String: Set<Int64>] = [:]
                for row in try await connection.rows(
                    """
                    SELECT lot_number, member_id FROM lots WHERE remaining_points > 0 AND expires_at_ms <= \(end.milliseconds)
                    """, logger)
                {
                    byMember[try row.text("member_id"), default: []].insert(try row.int("lot_number"))
                }
                var keys = PostingKeys()
                keys.members = Set(byMember.keys.compactMap(MemberID.init))
                keys.debitedMembers = keys.members
                var generator = SystemRandomNumberGenerator()
                let total = try await self.postOwn(
                    connection, keys: keys, count: Int64(4 * byMember.count + 8), now: now
                ) { engine in
                    var total = Points.zero
                    for (memberText, lots) in byMember.sorted(by: { $0.key < $1.key }) {
                        guard let member = MemberID(memberText) else { continue }
                        total += engine.expire(
                            member: member, due: lots,
                            transactionID: TransactionID(time: now, using: &generator).description,
                            detail: "expiry as of end of \(day)")
                    }
                    return total
                }
                let run = ExpiryRun(
                    day: day, members: byMember.count, points: total, transactions: byMember.count, alreadyRun: false)
                try await connection.run(
                    """
                    INSERT INTO expiry_runs (day, members, points, transactions, ran_at_ms)
                    VALUES (\(day.description), \(Int64(run.members)), \(total.value), \(Int64(run.transactions)),
                        \(now.milliseconds))
                    """, logger)
                return run
            }
        }
        if let run { return run }
        // Another gateway holds the lease or has run the day: its record, once written.
        return try await guarded("reading an expiry run") {
            try await client.leased(waiting: databaseWait) { connection in try await self.expiryRun(day, connection) }
        } ?? ExpiryRun(day: day, members: 0, points: .zero, transactions: 0, alreadyRun: true)
    }

    private func expiryRun(_ day: CivilDate, _ connection: PostgresConnection) async throws -> ExpiryRun? {
        guard
            let done = try await connection.rows(
                "SELECT members, points, transactions FROM expiry_runs WHERE day = \(day.description)", logger
            ).first
        else { return nil }
        return ExpiryRun(
            day: day, members: Int(try done.int("members")), points: Points(try done.int("points")),
            transactions: Int(try done.int("transactions")), alreadyRun: true)
    }

    /// Members with points expiring after `asOf` and within the program's reminder window.
    package func expiryReminders(asOf: Timestamp, limit: Int) async throws -> [ExpiryReminder] {
        guard let program = programs.active(at: asOf)?.program else { return [] }
        let horizon = asOf.adding(milliseconds: Int64(program.expiry.reminderDays) * Timestamp.day)
        return try await guarded("reading expiry reminders") {
            try await client.leased(waiting: databaseWait) { [logger] connection in
                try await connection.rows(
                    """
                    SELECT member_id, SUM(remaining_points)::bigint AS points, MIN(expires_at_ms) AS first FROM lots
                    WHERE remaining_points > 0 AND expires_at_ms > \(asOf.milliseconds)
                        AND expires_at_ms <= \(horizon.milliseconds)
                    GROUP BY member_id ORDER BY first, member_id LIMIT \(Int64(limit))
                    """, logger
                ).compactMap { row in
                    try MemberID(try row.text("member_id")).map {
                        ExpiryReminder(
                            member: $0, points: Points(try row.int("points")),
                            expiresAt: Timestamp(milliseconds: try row.int("first")))
                    }
                }
            }
        }
    }

    /// Reviews the tiers of members whose review date has come by `day`, as the SQLite store does:
    /// once per day, however many gateways run.
    package func reviewTiers(on day: CivilDate) async throws -> Int {
        guard let program = programs.latest?.program else { return 0 }
        let now = clockNow
        let changed = try await leased("tier_review", period: day.description) {
            try await self.transaction("reviewing tiers") { [logger] connection in
                let due = try await connection.rows(
                    """
                    SELECT member_id FROM members WHERE merged_into IS NULL AND tier_review_date <= \(day.description)
                    ORDER BY member_id
                    """, logger
                ).compactMap { MemberID(try $0.text("member_id")) }
                guard !due.isEmpty else { return 0 }
                try await self.lock(members: Set(due), connection)
                let first = try await PostgresPositions.claim(
                    self.database.claims, count: Int64(due.count), now: now, logger: logger
                ).first
                do {
                    var changed = 0
                    var tiers = PostgresRowsWriter(
                        "INSERT INTO member_tiers (member_id, position, tier)",
                        types: [.text, .bigint, .text],
                        tail: "ON CONFLICT (member_id, position) DO UPDATE SET tier = excluded.tier")
                    for (offset, member) in due.enumerated() {
                        guard
                            let row = try await connection.rows(
                                "SELECT tier, tier_review_date FROM members WHERE member_id = \(member.description)",
                                logger
                            ).first,
                            let reviewDate = CivilDate(parsing: try row.text("tier_review_date")), reviewDate <= day
                        else { continue }
                        let status = TierStatus(
                            tier: TierID(try row.text("tier")) ?? program.tiers.tiers[0].id, reviewDate: reviewDate)
                        let qualifying =
                            try await connection.value(
                                """
                                SELECT COALESCE(SUM(points), 0)::bigint FROM qualifying_points
                                WHERE member_id = \(member.description)
                                    AND bucket_ms >= \(PostingEngine.windowStart(program, now: now))
                                """, as: Int64.self, logger) ?? 0
                        let next = TierCalculator.atReview(
                            program.tiers, status: status, qualifying: Points(max(0, qualifying)), on: day)
                        let position = first + Int64(offset)
                        try await connection.run(
                            """
                            UPDATE members SET tier = \(next.tier.rawValue), tier_review_date = \(next.reviewDate.description),
                                changed_position = \(position)
                            WHERE member_id = \(member.description)
                            """, logger)
                        if next.tier != status.tier {
                            changed += 1
                            tiers.add { values in
                                values.append(member.description)
                                values.append(position)
                                values.append(next.tier.rawValue)
                            }
                        }
                    }
                    try await tiers.write(connection, logger)
                    try await PostgresPositions.endClaim(first, connection, logger: logger)
                    return changed
                } catch {
                    await PostgresPositions.abandon(first, self.database.claims, logger: logger)
                    throw error
                }
            }
        }
        return changed ?? 0
    }
}
