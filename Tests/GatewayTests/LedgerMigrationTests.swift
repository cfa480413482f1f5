// Goal: a gateway ledger written before the posting redesign opens on the v2 schema with every
// balance, lot, draw, receipt and pushed transaction where it was, the chains whole, and posts on.
import Core
import Foundation
import GRDB
import Gateway
import NodeSupport
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Ledger migration")
struct LedgerMigrationTests {
    @Test("a v1 ledger migrates to v2 with its balances, lots, receipts and pushed transactions, and posts on")
    func v1ToV2() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.url.path + "/gateway.sqlite"
        let alice = MemberID(value: 1).description
        let bob = MemberID(value: 2).description
        var generator = SystemRandomNumberGenerator()
        let ids = (0..<5).map { _ in TransactionID(time: ManualClockTime.now, using: &generator).description }
        var earn = Coalition_Sync_V1_LocalTransaction()
        earn.transactionID = ids[1]
        var record = Coalition_Sync_V1_EarnRecord()
        record.memberID = alice
        record.breakdown.totalPoints = 120
        earn.body = .earn(record)
        let earnPayload: Data = try earn.serializedBytes()

        try PrivateFiles.create(path)
        let queue = try DatabaseQueue(path: path)
        try GatewayDatabase.migrator.migrate(queue, upTo: "2026-11-30 gateway promotion usage v1")
        try await queue.write { db in
            try db.execute(
                sql: """
                    UPDATE counters SET value = 5 WHERE name = 'position';
                    INSERT INTO sites (site_id, high_water_mark, last_hash, last_push_at_ms) VALUES ('mall-01', 4, zeroblob(32), 4000);
                    INSERT INTO members (member_id, tier, tier_review_date, enrolled_at_ms, changed_position)
                        VALUES (?, 'member', '2027-11-24', 1000, 3), (?, 'member', '2027-11-24', 1000, 0);
                    INSERT INTO transactions (position, transaction_id, kind, site_id, site_sequence, merchant_id, member_id,
                        request_id, points, amount_minor, occurred_at_ms, posted_at_ms, program_version)
                    VALUES (1, ?, 'enroll', 'mall-01', 1, 'mall-fashion', ?, 'E-1', 200, 0, 1000, 1000, 1),
                           (2, ?, 'earn', 'mall-01', 2, 'mall-fashion', ?, 'G-1', 100, 10000, 2000, 3000, 1),
                           (3, ?, 'redeem', 'mall-01', 3, 'mall-fashion', ?, 'R-1', -50, 5000, 2500, 2500, 1);
                    INSERT INTO postings (position, account, points) VALUES
                        (1, 'member:' || ?, 200), (1, 'issued:mall-fashion', -200),
                        (2, 'member:' || ?, 100), (2, 'issued:mall-fashion', -100),
                        (3, 'member:' || ?, -50), (3, 'redeemed:mall-fashion', 50);
                    INSERT INTO balances (account, points) VALUES
                        ('member:' || ?, 250), ('issued:mall-fashion', -300), ('redeemed:mall-fashion', 50);
                    INSERT INTO lots (lot_id, member_id, earned_at_ms, expires_at_ms, original_points, remaining_points)
                        VALUES (?, ?, 1000, 9000000000000, 200, 150), (?, ?, 2000, 9000000000000, 100, 100);
                    INSERT INTO lot_draws (position, lot_id, points) VALUES (3, ?, 50);
                    INSERT INTO receipts (merchant_id, operation, request_id, transaction_id) VALUES
                        ('mall-fashion', 'enroll', 'E-1', ?), ('mall-fashion', 'earn', 'G-1', ?),
                        ('mall-fashion', 'redeem', 'R-1', ?), ('mall-fashion', 'earn', 'G-2', ?);
                    INSERT INTO site_transactions (site_id, sequence, transaction_id, previous_hash, payload, occurred_at_ms,
                        outcome, reason, posted_points) VALUES
                        ('mall-01', 1, ?, zeroblob(32), x'01', 1000, 'posted', '', 200),
                        ('mall-01', 2, ?, zeroblob(32), ?, 2000, 'posted_with_conflict', 'points_mismatch', 100),
                        ('mall-01', 3, ?, zeroblob(32), x'03', 2500, 'posted', '', -50),
                        ('mall-01', 4, ?, zeroblob(32), x'04', 2600, 'rejected', 'unknown_member', 0);
                    """,
                arguments: [
                    alice, bob, ids[0], alice, ids[1], alice, ids[2], alice, alice, alice, alice, alice, ids[0], alice,
                    ids[1], alice, ids[0], ids[0], ids[1], ids[2], ids[3], ids[0], ids[1], earnPayload, ids[2], ids[3],
                ])
        }
        try queue.close()

        let database = try GatewayDatabase.open(path: path)
        try await database.pool.read { (db: Database) throws in
            let balances = Dictionary(
                uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT account, points FROM account_balances").map {
                    ($0["account"] as String, $0["points"] as Int64)
                })
            #expect(balances["member:\(alice)"] == 250)
            #expect(balances["member:\(bob)"] == 0)
            #expect(balances["issued:mall-fashion"] == -300)
            #expect(balances["redeemed:mall-fashion"] == 50)
            #expect(try LedgerChains.faults(db) == [])
            #expect(
                try Int64.fetchOne(db, sql: "SELECT last_position FROM members WHERE member_id = ?", arguments: [alice])
                    == 3)
            // The rejected push has a ledger row after the last position, and the counter moved on.
            let rejected = try Row.fetchOne(
                db, sql: "SELECT position, kind, outcome, receipt FROM transactions WHERE site_sequence = 4")
            #expect(rejected?["position"] as Int64? == 6)
            #expect(rejected?["kind"] as String? == nil)
            #expect(rejected?["outcome"] as String? == "rejected")
            #expect(rejected?["receipt"] as String? == "mall-fashion|earn|G-2")
            #expect(try Int64.fetchOne(db, sql: "SELECT value FROM counters WHERE name = 'position'") == 6)
            // The earn's receipt figure came out of its payload; its outbox row is kept.
            let posted = try Row.fetchOne(
                db, sql: "SELECT stated_points, reason, payload FROM transactions WHERE transaction_id = ?",
                arguments: [ids[1]])
            #expect(posted?["stated_points"] as Int64? == 120)
            #expect(posted?["reason"] as String? == "points_mismatch")
            #expect(posted?["payload"] as Data? == earnPayload)
            #expect(
                try Int64.fetchOne(
                    db,
                    sql:
                        "SELECT d.points FROM lot_draws d JOIN lots l ON l.lot_number = d.lot_number WHERE d.position = 3 AND l.lot_id = ?",
                    arguments: [ids[0]]) == 50)
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM transactions WHERE receipt IS NOT NULL") == 4)
        }

        // The migrated ledger posts on: an adjustment joins both chains, and the history reads them.
        let store = try SQLiteLedgerStore(database: database, clock: ManualWallClock(), limits: GatewayLimits())
        _ = try await store.adjust(
            member: MemberID(alice)!, points: Points(10), reason: "goodwill", by: "test", requestID: RequestID("op-1")!)
        let history = try await store.memberHistory(MemberID(alice)!, before: nil, limit: 10)
        #expect(history.map(\.kind) == ["adjust", "redeem", "earn", "enroll"])
        try await database.pool.read { (db: Database) throws in
            #expect(try LedgerChains.faults(db) == [])
            #expect(
                try Int64.fetchOne(
                    db, sql: "SELECT points FROM account_balances WHERE account = ?", arguments: ["member:\(alice)"])
                    == 260)
        }
        // The chain check sees a lot cut off its member's chain, and a transaction off its member's.
        try await database.pool.write { db in
            try db.execute(
                sql:
                    "UPDATE lots SET next_lot = NULL WHERE lot_number = (SELECT lots_head FROM members WHERE member_id = ?)",
                arguments: [alice])
            try db.execute(sql: "UPDATE transactions SET member_previous = NULL WHERE position = 2")
            #expect(
                try LedgerChains.faults(db) == [
                    "2 open lots are off their member's chain", "1 transactions link to the wrong previous one",
                ])
        }
    }
}
