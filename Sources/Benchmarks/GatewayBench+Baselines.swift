import Core
import Crypto
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import NodeSupport
import SwiftProtobuf
import Wire

// The baselines the sync benches measure in the same run: the same work with no logic.
extension GatewayBenches {
    /// The baseline of the sync benches: the same outbox rows inserted into a plain SQLite table
    /// (same batches, same durability, one writer per site at once) with no logic. Seconds taken.
    static func plainInsertSeconds(
        _ folder: BenchFolder, _ batches: [(SiteID, [[Coalition_Sync_V1_OutboxTransaction]])]
    ) async throws -> Double {
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let plain = try DatabasePool(
            path: folder.path + "/baseline-\(UUID().uuidString).sqlite", configuration: configuration)
        try await plain.barrierWriteWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(
                sql: """
                    CREATE TABLE rows (site_id TEXT NOT NULL, sequence INTEGER NOT NULL, transaction_id TEXT NOT NULL UNIQUE,
                        previous_hash BLOB NOT NULL, payload BLOB NOT NULL, occurred_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (site_id, sequence)) STRICT, WITHOUT ROWID
                    """)
        }
        let (_, seconds) = try await Load.time {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (site, pushes) in batches {
                    group.addTask {
                        for push in pushes {
                            try await plain.write { db in
                                let statement = try db.cachedStatement(
                                    sql:
                                        "INSERT INTO rows (site_id, sequence, transaction_id, previous_hash, payload, occurred_at_ms) VALUES (?, ?, ?, ?, ?, ?)"
                                )
                                for row in push {
                                    try statement.execute(arguments: [
                                        site.rawValue, Int64(row.sequence), row.transactionID, row.previousHash,
                                        row.payload, row.occurredAtMs,
                                    ])
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        try plain.close()
        return seconds
    }

    /// The second baseline of gateway-ingest: the rows a posting writes, inserted with no logic
    /// into a ledger with the gateway's own schema (same indexes, same durability), per pushed
    /// transaction: its ledger row (with the outbox row and receipt, on its member's chain), two
    /// postings, its lot (on its member's chain) and its member row (inserted with its tier spell for an enrolment, rewritten with its balance and
    /// its qualifying bucket for an earn); per push, the issuing merchants' balances, the position
    /// counter and the site row. Payloads are decoded before the clock starts. Seconds taken.
    static func postingRowsSeconds(
        _ folder: BenchFolder, _ batches: [(SiteID, [[Coalition_Sync_V1_OutboxTransaction]])]
    ) async throws -> Double {
        struct Row: Sendable {
            let transaction: Coalition_Sync_V1_OutboxTransaction
            let local: Coalition_Sync_V1_LocalTransaction
        }
        let decoded: [(SiteID, [[Row]])] = try batches.map { site, pushes in
            (
                site,
                try pushes.map { push in
                    try push.map {
                        Row(transaction: $0, local: try Coalition_Sync_V1_LocalTransaction(serializedBytes: $0.payload))
                    }
                }
            )
        }
        let database = try GatewayDatabase.open(path: folder.path + "/rows-\(UUID().uuidString).sqlite")
        try await database.pool.write { db in
            for (site, _) in decoded {
                try db.execute(
                    sql: "INSERT INTO sites (site_id, last_hash) VALUES (?, ?)",
                    arguments: [site.rawValue, Data(count: 32)])
            }
        }
        let (_, seconds) = try await Load.time {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (site, pushes) in decoded {
                    group.addTask {
                        for push in pushes {
                            try await database.pool.write { db in
                                var position =
                                    try Int64.fetchOne(
                                        db.cachedStatement(sql: "SELECT value FROM counters WHERE name = 'position'"))
                                    ?? 0
                                var issued: [String: Int64] = [:]
                                for row in push {
                                    position += 1
                                    if let (merchant, points) = try insertPostingRows(
                                        db, site: site, position: position, row.transaction, row.local)
                                    {
                                        issued[merchant, default: 0] -= points
                                    }
                                }
                                for (merchant, points) in issued {
                                    try db.cachedStatement(
                                        sql:
                                            "INSERT INTO balances (account, points) VALUES (?, ?) ON CONFLICT (account) DO UPDATE SET points = points + excluded.points"
                                    ).execute(arguments: ["issued:" + merchant, points])
                                }
                                try db.cachedStatement(sql: "UPDATE counters SET value = ? WHERE name = 'position'")
                                    .execute(arguments: [position])
                                try db.cachedStatement(
                                    sql: "UPDATE sites SET high_water_mark = ?, last_push_at_ms = ? WHERE site_id = ?"
                                ).execute(arguments: [
                                    Int64(push.last?.transaction.sequence ?? 0), position, site.rawValue,
                                ])
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        try database.pool.close()
        return seconds
    }

    /// The rows of one pushed transaction; the merchant and the points it issued.
    private static func insertPostingRows(
        _ db: Database, site: SiteID, position: Int64, _ transaction: Coalition_Sync_V1_OutboxTransaction,
        _ local: Coalition_Sync_V1_LocalTransaction
    ) throws -> (String, Int64)? {
        let member: String
        let points: Int64
        switch local.body {
        case .enrollment(let record): (member, points) = (record.memberID, record.signupPoints)
        case .earn(let record): (member, points) = (record.memberID, record.breakdown.totalPoints)
        default: return nil
        }
        try FastStatement(
            db,
            sql: """
                INSERT INTO transactions (position, transaction_id, kind, site_id, site_sequence, merchant_id, member_id,
                    request_id, points, amount_minor, occurred_at_ms, posted_at_ms, program_version, receipt, stated_points,
                    previous_hash, payload, outbox_occurred_at_ms, outcome, reason, posted_points, member_previous)
                VALUES (?, ?, 'earn', ?, ?, ?, ?, ?, ?, 0, ?, ?, 1, ?, ?, ?, ?, ?, 'posted', '', ?, ?)
                """
        ).run { values in
            values.add(position)
            values.add(local.transactionID)
            values.add(site.rawValue)
            values.add(Int64(transaction.sequence))
            values.add(local.merchantID)
            values.add(member)
            values.add(local.requestID)
            values.add(points)
            values.add(local.occurredAtMs)
            values.add(local.occurredAtMs)
            values.add("\(local.merchantID)|earn|\(local.requestID)")
            values.add(points)
            values.add(transaction.previousHash)
            values.add(transaction.payload)
            values.add(transaction.occurredAtMs)
            values.add(points)
            values.add(position - 1)
        }
        for (line, (account, value)) in [("member:" + member, points), ("issued:" + local.merchantID, -points)]
            .enumerated()
        {
            try FastStatement(db, sql: "INSERT INTO postings (position, line, account, points) VALUES (?, ?, ?, ?)").run
            { values in
                values.add(position)
                values.add(line)
                values.add(account)
                values.add(value)
            }
        }
        try FastStatement(
            db,
            sql:
                "INSERT INTO lots (lot_number, lot_id, member_id, earned_at_ms, expires_at_ms, original_points, remaining_points, next_lot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ).run { values in
            values.add(position)
            values.add(local.transactionID)
            values.add(member)
            values.add(local.occurredAtMs)
            values.add(local.occurredAtMs + 31_536_000_000)
            values.add(points)
            values.add(points)
            values.add(position - 1)
        }
        if case .enrollment = local.body {
            try FastStatement(
                db,
                sql:
                    "INSERT INTO members (member_id, tier, tier_review_date, enrolled_at_ms, enrolled_site, changed_position, balance_points, last_position, lots_head) VALUES (?, 'member', '2027-11-30', ?, ?, ?, ?, ?, ?)"
            ).run { values in
                values.add(member)
                values.add(local.occurredAtMs)
                values.add(site.rawValue)
                values.add(position)
                values.add(points)
                values.add(position)
                values.add(position)
            }
            try FastStatement(db, sql: "INSERT INTO member_tiers (member_id, position, tier) VALUES (?, ?, 'member')")
                .run { values in
                    values.add(member)
                    values.add(position)
                }
        } else {
            try FastStatement(
                db,
                sql:
                    "UPDATE members SET last_earn = ?, streak_last_day = ?, streak_days = ?, tier = ?, tier_review_date = ?, changed_position = ?, balance_points = balance_points + ?, last_position = ?, lots_head = ? WHERE member_id = ?"
            ).run { values in
                values.add("mall=\(local.occurredAtMs)")
                values.add("2026-11-30")
                values.add(1)
                values.add("member")
                values.add("2027-11-30")
                values.add(position)
                values.add(points)
                values.add(position)
                values.add(position)
                values.add(member)
            }
            try FastStatement(
                db,
                sql: """
                    INSERT INTO qualifying_points (member_id, bucket_ms, points) VALUES (?, ?, ?)
                    ON CONFLICT (member_id, bucket_ms) DO UPDATE SET points = points + excluded.points
                    """
            ).run { values in
                values.add(member)
                values.add(local.occurredAtMs / 900_000 * 900_000)
                values.add(points)
            }
        }
        return (local.merchantID, points)
    }

    /// Inserting `count` rows shaped like a replica's members into a plain table, 1000 per
    /// transaction, with the phone hash unique: the replica-size baseline. Seconds taken.
    static func plainMemberInsertSeconds(_ folder: BenchFolder, count: Int) async throws -> Double {
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let plain = try DatabasePool(path: folder.path + "/baseline-members.sqlite", configuration: configuration)
        try await plain.barrierWriteWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(
                sql:
                    "CREATE TABLE members (member_id TEXT PRIMARY KEY, phone_hash BLOB UNIQUE, tier TEXT NOT NULL, balance INTEGER NOT NULL) STRICT"
            )
        }
        var generator = SystemRandomNumberGenerator()
        let now = SystemWallClock().now()
        let ids = (0..<count).map { _ in MemberID(time: now, using: &generator).description }
        let (_, seconds) = try await Load.time {
            for start in stride(from: 0, to: count, by: 1_000) {
                try await plain.write { db in
                    let statement = try db.cachedStatement(
                        sql: "INSERT INTO members (member_id, phone_hash, tier, balance) VALUES (?, ?, 'member', ?)")
                    for index in start..<min(count, start + 1_000) {
                        try statement.execute(arguments: [
                            ids[index], Data(SHA256.hash(data: Data("+86136\(index)".utf8))), Int64(index % 5_000),
                        ])
                    }
                }
            }
        }
        try plain.close()
        return seconds
    }
}
