import Core
import Logging
import PostgresNIO

/// Allowances (escrow), as a batch's posting reads and writes them.
extension PostgresPosting {
    /// The allowances a batch's spends name, locked (in id order) until the batch commits: two
    /// gateways spending from one allowance take turns.
    static func loadAllowances(
        _ connection: PostgresConnection, ids: Set<String>, into view: inout PostingView, _ logger: Logger
    ) async throws {
        guard !ids.isEmpty else { return }
        for record in try await allowances(
            connection,
            """
            SELECT \(unescaped: SQLitePosting.allowanceColumns) FROM allowances
            WHERE allowance_id = ANY(\(ids.sorted())) ORDER BY allowance_id FOR UPDATE
            """, logger)
        {
            view.allowances[record.allowanceID] = record
        }
    }

    /// The allowances `query` selects (with `SQLitePosting.allowanceColumns`).
    static func allowances(_ connection: PostgresConnection, _ query: PostgresQuery, _ logger: Logger) async throws
        -> [AllowanceRecord]
    {
        try await connection.rows(query, logger).map { row in
            guard
                let record = SQLitePosting.allowanceRecord(
                    id: try row.text("allowance_id"), site: try row.text("site_id"),
                    member: try row.text("member_id"), granted: try row.int("granted_points"),
                    spent: try row.int("spent_points"), released: try row.int("released_points"),
                    grantedAt: try row.int("granted_at_ms"), leaseUntil: try row.int("lease_until_ms"),
                    status: try row.text("status"))
            else { preconditionFailure("a stored allowance is malformed") }
            return record
        }
    }

    /// Writes the allowances a batch granted or changed, as it leaves them.
    static func applyAllowances(
        _ connection: PostgresConnection, _ allowances: [String: AllowanceRecord], _ logger: Logger
    ) async throws {
        for record in allowances.values.sorted(by: { $0.allowanceID < $1.allowanceID }) {
            try await connection.run(
                """
                INSERT INTO allowances (\(unescaped: SQLitePosting.allowanceColumns))
                VALUES (\(record.allowanceID), \(record.site.rawValue), \(record.member.description),
                    \(record.granted.value), \(record.spent.value), \(record.released.value),
                    \(record.grantedAt.milliseconds), \(record.leaseUntil.milliseconds), \(record.status.rawValue))
                ON CONFLICT (allowance_id) DO UPDATE SET spent_points = excluded.spent_points,
                    released_points = excluded.released_points, status = excluded.status
                """, logger)
        }
    }
}
