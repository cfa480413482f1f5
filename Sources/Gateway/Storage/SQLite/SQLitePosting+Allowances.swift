import Core
import GRDB

/// Allowances (escrow), as a batch's posting reads and writes them.
extension SQLitePosting {
    static let allowanceColumns =
        "allowance_id, site_id, member_id, granted_points, spent_points, released_points, granted_at_ms, lease_until_ms, status"

    /// The allowances a batch's spends name.
    static func loadAllowances(_ db: Database, ids: Set<String>, into view: inout PostingView) throws {
        guard !ids.isEmpty else { return }
        for record in try allowances(
            db, where: "allowance_id IN (SELECT value FROM json_each(?))", arguments: [json(ids)])
        {
            view.allowances[record.allowanceID] = record
        }
    }

    /// Allowances meeting `condition`, in grant order (`newestFirst`: the other way), at most `limit`
    /// (-1: all).
    static func allowances(
        _ db: Database, where condition: String, arguments: StatementArguments, newestFirst: Bool = false,
        limit: Int = -1
    ) throws -> [AllowanceRecord] {
        let order = newestFirst ? "granted_at_ms DESC, allowance_id DESC" : "granted_at_ms, allowance_id"
        return try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT \(allowanceColumns) FROM allowances WHERE \(condition) ORDER BY \(order) LIMIT ?"),
            arguments: arguments + [limit]
        ).map { row in
            guard
                let record = allowanceRecord(
                    id: row["allowance_id"], site: row["site_id"], member: row["member_id"],
                    granted: row["granted_points"], spent: row["spent_points"], released: row["released_points"],
                    grantedAt: row["granted_at_ms"], leaseUntil: row["lease_until_ms"], status: row["status"])
            else { preconditionFailure("a stored allowance is malformed") }
            return record
        }
    }

    /// An allowance row as the posting rules read it (nil when a stored value does not parse).
    static func allowanceRecord(
        id: String, site: String, member: String, granted: Int64, spent: Int64, released: Int64, grantedAt: Int64,
        leaseUntil: Int64, status: String
    ) -> AllowanceRecord? {
        guard let site = SiteID(site), let member = MemberID(member),
            let status = AllowanceRecord.Status(rawValue: status)
        else { return nil }
        return AllowanceRecord(
            allowanceID: id, site: site, member: member, granted: Points(granted), spent: Points(spent),
            released: Points(released), grantedAt: Timestamp(milliseconds: grantedAt),
            leaseUntil: Timestamp(milliseconds: leaseUntil), status: status)
    }

    /// Writes the allowances a batch granted or changed, as it leaves them.
    static func applyAllowances(_ db: Database, _ allowances: [String: AllowanceRecord]) throws {
        guard !allowances.isEmpty else { return }
        let upsert = try db.cachedStatement(
            sql: """
                INSERT INTO allowances (\(allowanceColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (allowance_id) DO UPDATE SET spent_points = excluded.spent_points,
                    released_points = excluded.released_points, status = excluded.status
                """)
        for record in allowances.values.sorted(by: { $0.allowanceID < $1.allowanceID }) {
            try upsert.execute(arguments: [
                record.allowanceID, record.site.rawValue, record.member.description, record.granted.value,
                record.spent.value, record.released.value, record.grantedAt.milliseconds,
                record.leaseUntil.milliseconds, record.status.rawValue,
            ])
        }
    }
}
