import Core
import Crypto
import Foundation
import GRDB
import Gateway
import SwiftProtobuf
import Wire

/// A canonical listing of what the gateway's ledger holds at the end of a simulation run, and its
/// hash: every pushed transaction's result and postings, the postings of the gateway's own
/// transactions (expiry, adjustments, allowances granted and reclaimed), every balance, every member's lots by expiry date, and
/// every member's tier and merge.
///
/// It names nothing a run mints at random: a member is named by the pushed enrolment that created
/// it (`mall-01#12`), a pushed transaction by its site and sequence, and positions, transaction ids
/// and lot ids do not appear (lots are summed per member and expiry date). So the same seed gives
/// the same digest on every run, and a change of posting code that keeps behaviour keeps it.
enum LedgerDigest {
    /// The listing and its SHA-256 (hex).
    static func compute(_ database: GatewayDatabase) async throws -> (text: String, hash: String) {
        let text = try await database.pool.read { db in try listing(db) }
        let hash = SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
        return (text, hash)
    }

    private static func listing(_ db: Database) throws -> String {
        // Members are named after the enrolment that created them.
        var labels: [String: String] = [:]
        let pushed = try Row.fetchAll(
            db,
            sql: """
                SELECT site_id, site_sequence AS sequence, transaction_id, payload, outcome, reason, posted_points
                FROM transactions WHERE site_sequence IS NOT NULL ORDER BY site_id, site_sequence
                """)
        for row in pushed {
            let payload: Data = row["payload"]
            if let local = try? Coalition_Sync_V1_LocalTransaction(serializedBytes: payload),
                case .enrollment(let enrollment) = local.body
            {
                labels[enrollment.memberID] = "\(row["site_id"] as String)#\(row["sequence"] as Int64)"
            }
        }
        func member(_ id: String?) -> String {
            guard let id else { return "-" }
            return labels[id] ?? "unknown(\(id))"
        }
        func account(_ key: String) -> String {
            key.hasPrefix("member:") ? "member:" + member(String(key.dropFirst("member:".count))) : key
        }
        func postings(_ position: Int64) throws -> String {
            try Row.fetchAll(db, sql: "SELECT account, points FROM postings WHERE position = ?", arguments: [position])
                .map { "\(account($0["account"])) \($0["points"] as Int64)" }.sorted().joined(separator: ", ")
        }
        var lines: [String] = []
        for row in pushed {
            let id: String = row["transaction_id"]
            var line =
                "pushed \(row["site_id"] as String)#\(row["sequence"] as Int64) \(row["outcome"] as String) "
                + "'\(row["reason"] as String)' \(row["posted_points"] as Int64)"
            if let posted = try Row.fetchOne(
                db,
                sql: "SELECT position, kind, member_id FROM transactions WHERE transaction_id = ? AND kind IS NOT NULL",
                arguments: [id])
            {
                line +=
                    " \(posted["kind"] as String) \(member(posted["member_id"])): \(try postings(posted["position"]))"
            }
            lines.append(line)
        }
        var own: [String] = []
        for row in try Row.fetchAll(
            db, sql: "SELECT position, kind, site_id, member_id, detail FROM transactions WHERE site_sequence IS NULL")
        {
            // A detail naming another transaction (a cancellation its order) names it by its place.
            let detail = (row["detail"] as String).replacing(/[0-9A-HJKMNP-TV-Z]{26}/, with: "<transaction>")
            // Its site, for those of a site (allowances granted and reclaimed).
            let site = (row["site_id"] as String?).map { " at \($0)" } ?? ""
            own.append(
                "gateway \(row["kind"] as String)\(site) \(member(row["member_id"])) '\(detail)': "
                    + (try postings(row["position"])))
        }
        lines += own.sorted()
        // Member accounts are listed once a posting has touched them (as the ledger listed them
        // before member balances moved to the member rows).
        lines += try Row.fetchAll(
            db,
            sql: """
                SELECT account, points FROM account_balances b
                WHERE account NOT LIKE 'member:%' OR account IN (SELECT account FROM postings)
                """
        ).map {
            "balance \(account($0["account"])) \($0["points"] as Int64)"
        }.sorted()
        lines += try Row.fetchAll(
            db,
            sql: """
                SELECT member_id, expires_at_ms, SUM(original_points) AS original, SUM(remaining_points) AS remaining
                FROM lots GROUP BY member_id, expires_at_ms
                """
        ).map {
            "lots \(member($0["member_id"])) expiring \($0["expires_at_ms"] as Int64): "
                + "\($0["original"] as Int64) earned, \($0["remaining"] as Int64) left"
        }.sorted()
        lines += try Row.fetchAll(db, sql: "SELECT member_id, tier, tier_review_date, merged_into FROM members").map {
            "member \(member($0["member_id"])) \($0["tier"] as String) review \($0["tier_review_date"] as String)"
                + (($0["merged_into"] as String?).map { " merged into \(member($0))" } ?? "")
        }.sorted()
        return lines.joined(separator: "\n") + "\n"
    }
}
