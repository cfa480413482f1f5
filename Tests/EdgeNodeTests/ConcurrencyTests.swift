import Core
import Crypto
import EdgeNode
import Foundation
import GRDB
import GRPCCore
// Goal: under concurrent load the edge never approves more than the member has, every approved
// transaction is in the outbox exactly once, and the outbox stays a gap-free hash chain.
import NodeSupport
import TestSupport
import Testing
import Wire

@Suite("Concurrency")
struct ConcurrencyTests {
    /// The example program with a 100-point minimum so 100-point redemptions are valid.
    static let program = { () -> String in
        // The replacement is checked by Repository.exampleProgram(replacing:).
        (try? Repository.exampleProgram(replacing: [("minimum_points: 500", "minimum_points: 100")])) ?? ""
    }()

    @Test("100 concurrent redemptions of 100 points against 1,000: exactly 10 approved, balance 0, outbox gap-free")
    func concurrentRedemptions() async throws {
        try await EdgeFixture.withEdge(programText: Self.program) { edge in
            let member = try await edge.points.enroll(
                Requests.enroll("E-1", phone: "+8613800138000"), metadata: edge.auth("mall-fashion")
            ).member.memberID
            let earn = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 80_000), metadata: edge.auth("mall-fashion"))
            #expect(earn.balanceAfterPoints == 1_000)

            let outcomes = await withTaskGroup(of: Result<Int64, any Error>.self) { group in
                for index in 0..<100 {
                    group.addTask {
                        do {
                            let response = try await edge.points.redeem(
                                Requests.redeem("P-\(index)", member: member, bill: 1_000, points: 100),
                                metadata: edge.auth("mall-cafe"))
                            return .success(response.points)
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                var results: [Result<Int64, any Error>] = []
                for await result in group { results.append(result) }
                return results
            }
            let approved = outcomes.filter { if case .success = $0 { true } else { false } }
            #expect(approved.count == 10)
            for case .failure(let error) in outcomes {
                let refused = status(of: error)
                #expect(refused.code == .failedPrecondition)
                #expect(refused.reason == "INSUFFICIENT_POINTS")
            }
            let balance = try await edge.points.getBalance(Requests.balance(member), metadata: edge.auth("mall-cafe"))
            #expect(balance.member.balancePoints == 0)
            try await Self.checkOutbox(edge, expectedCount: 12)
        }
    }

    @Test("jobs waiting for the writer are committed together, and each gets its own result")
    func groupCommit() async throws {
        let directory = try TemporaryDirectory()
        let database = try EdgeDatabase.open(
            path: directory.path("edge.sqlite"), site: SiteID("mall-01")!, limits: EdgeLimits(),
            now: ManualWallClock.tuesdayNoon)
        let committer = GroupCommitter(pool: database.pool, batchMax: 256, queueMax: 1_000)
        try await database.pool.write { db in try db.execute(sql: "CREATE TABLE t (v INTEGER NOT NULL UNIQUE)") }
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for value in 0..<50 {
                group.addTask {
                    do {
                        // Value 7 is written twice: the second violates UNIQUE and fails alone.
                        try await committer.submit { db in
                            try db.execute(sql: "INSERT INTO t (v) VALUES (?)", arguments: [value == 8 ? 7 : value])
                        }
                        return (value, true)
                    } catch {
                        return (value, false)
                    }
                }
            }
            // Let every job queue before the writer starts.
            while committer.pending < 50 { await Task.yield() }
            group.addTask {
                await committer.run()
                return (-1, true)
            }
            var outcomes: [Int: Bool] = [:]
            for await (value, ok) in group where value >= 0 {
                outcomes[value] = ok
                if outcomes.count == 50 { committer.close() }
            }
            return outcomes
        }
        #expect(results.values.filter { !$0 }.count == 1)
        #expect(results[7] != results[8])
        #expect(committer.statistics.jobs == 50)
        // A failed job aborts its batch only if it is a database error; it was, so the batch was
        // retried job by job, and all 49 good rows are there.
        let count = try await database.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") }
        #expect(count == 49)
    }

    @Test("jobs that fail with a domain error leave the rest of their batch in one commit")
    func domainFailure() async throws {
        let directory = try TemporaryDirectory()
        let database = try EdgeDatabase.open(
            path: directory.path("edge.sqlite"), site: SiteID("mall-01")!, limits: EdgeLimits(),
            now: ManualWallClock.tuesdayNoon)
        let committer = GroupCommitter(pool: database.pool, batchMax: 256, queueMax: 1_000)
        try await database.pool.write { db in try db.execute(sql: "CREATE TABLE t (v INTEGER NOT NULL)") }
        struct Refused: Error {}
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for value in 0..<20 {
                group.addTask {
                    do {
                        try await committer.submit { db in
                            try db.execute(sql: "INSERT INTO t (v) VALUES (?)", arguments: [value])
                            if value % 5 == 0 { throw Refused() }  // after writing: the savepoint must undo it
                        }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            while committer.pending < 20 { await Task.yield() }
            group.addTask {
                await committer.run()
                return true
            }
            var results: [Bool] = []
            for await ok in group {
                results.append(ok)
                if results.count == 20 { committer.close() }
            }
            return results
        }
        #expect(outcomes.filter { !$0 }.count == 4)
        #expect(committer.statistics.batches == 1)
        let values = try await database.pool.read { db in try Int.fetchAll(db, sql: "SELECT v FROM t ORDER BY v") }
        #expect(values == (0..<20).filter { $0 % 5 != 0 })
    }

    /// The outbox is 1...n without gaps, each row's previous hash is the hash of the row before.
    static func checkOutbox(_ edge: EdgeHarness, expectedCount: Int) async throws {
        let rows = try await edge.node.ledger.database.pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT sequence, previous_hash, payload_hash, payload FROM outbox ORDER BY sequence"
            )
            .map { row -> (Int64, Data, Data, Data) in
                (row["sequence"], row["previous_hash"], row["payload_hash"], row["payload"])
            }
        }
        #expect(rows.count == expectedCount)
        var previous = Data(count: 32)
        for (index, (sequence, previousHash, hash, payload)) in rows.enumerated() {
            #expect(sequence == Int64(index + 1))
            #expect(previousHash == previous)
            #expect(Data(SHA256.hash(data: payload)) == hash)
            previous = hash
        }
    }
}
