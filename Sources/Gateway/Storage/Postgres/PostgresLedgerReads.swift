import Core
import Foundation
import Logging
import PostgresNIO

/// Reads around posting on the PostgreSQL ledger, inside one transaction: `LedgerWriter`'s reads
/// (balances, holds, a member's chains, merges), the same statements.
struct PostgresLedgerReads {
    let connection: PostgresConnection
    let logger: Logger

    /// An account's balance (a member's is on its row).
    func balance(_ account: Account) async throws -> Points {
        if case .member(let member) = account {
            return Points(
                try await connection.value(
                    "SELECT balance_points FROM members WHERE member_id = \(member.description)", as: Int64.self, logger
                )
                    ?? 0)
        }
        return Points(
            try await connection.value(
                "SELECT points FROM balances WHERE account = \(account.key)", as: Int64.self, logger)
                ?? 0)
    }

    /// Points of a member's balance held by active, unexpired holds.
    func held(_ member: MemberID, now: Timestamp) async throws -> Points {
        let holds = try await connection.rows(
            "\(unescaped: PostgresPosting.activeHolds) AND member_id = \(member.description)", logger
        ).compactMap(PostgresPosting.hold)
        return HoldRules.held(holds, member: member, now: now, excluding: nil)
    }

    /// What a member may spend: balance less holds.
    func available(_ member: MemberID, now: Timestamp) async throws -> Points {
        try await balance(.member(member)) - held(member, now: now)
    }

    /// Marks a member as changed at `position`, so edges pull its snapshot.
    func touch(_ member: MemberID, position: Int64) async throws {
        try await connection.run(
            "UPDATE members SET changed_position = \(position) WHERE member_id = \(member.description)", logger)
    }

    /// The member a member id stands for now (following merges).
    func resolve(_ member: MemberID) async throws -> MemberID? {
        var current = member
        for _ in 0..<8 {
            guard
                let row = try await connection.rows(
                    "SELECT merged_into FROM members WHERE member_id = \(current.description)", logger
                ).first
            else { return nil }
            guard let merged = try row.textOrNil("merged_into"), let next = MemberID(merged) else { return current }
            current = next
        }
        return current
    }

    /// A member's lots with points left, soonest expiry first.
    func openLots(of member: MemberID) async throws -> [LotRecord] {
        try await connection.rows(
            """
            WITH RECURSIVE chain (number) AS (
                SELECT lots_head FROM members WHERE member_id = \(member.description) AND lots_head IS NOT NULL
                UNION ALL
                SELECT l.next_lot FROM lots l JOIN chain c ON l.lot_number = c.number WHERE l.next_lot IS NOT NULL
            )
            SELECT \(unescaped: SQLitePosting.lotColumns) FROM chain c JOIN lots l ON l.lot_number = c.number
            ORDER BY l.expires_at_ms, l.lot_id
            """, logger
        ).map(PostgresPosting.lotRecord)
    }

    /// The member's points change from the site's transactions after `sequence`, as posted.
    func posted(_ member: MemberID, site: SiteID, after sequence: Int64) async throws -> Points {
        guard
            let first = try await connection.value(
                """
                SELECT position FROM transactions WHERE site_id = \(site.rawValue) AND site_sequence > \(sequence)
                ORDER BY site_sequence LIMIT 1
                """, as: Int64.self, logger)
        else { return .zero }
        return Points(
            try await connection.value(
                """
                WITH RECURSIVE chain (position) AS (
                    SELECT last_position FROM members WHERE member_id = \(member.description) AND last_position >= \(first)
                    UNION ALL
                    SELECT t.member_previous FROM transactions t JOIN chain c ON t.position = c.position
                    WHERE t.member_previous >= \(first)
                )
                SELECT COALESCE(SUM(t.points), 0)::bigint FROM chain c JOIN transactions t ON t.position = c.position
                WHERE t.site_id = \(site.rawValue) AND t.site_sequence > \(sequence)
                """, as: Int64.self, logger) ?? 0)
    }
}
