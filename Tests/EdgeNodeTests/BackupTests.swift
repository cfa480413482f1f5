// Goal: an online backup taken while tills are busy restores to a working edge that has every
// transaction acknowledged before the backup began, with its outbox chain intact.
import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Synchronization
import TestSupport
import Testing
import Wire

/// A value shared by the test's tasks.
final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result { value.withLock { body(&$0) } }
}

@Suite("Backup and restore")
struct BackupTests {
    @Test("a backup taken under traffic restores to a working node with every acknowledged transaction")
    func backupUnderTraffic() async throws {
        let directory = try TemporaryDirectory()
        let configuration = try EdgeFixture.configuration(directory: directory)
        let backupPath = directory.path("backup.sqlite")
        let (acknowledged, member) = try await EdgeFixture.withEdge(
            configuration: configuration, merchants: ["mall-fashion"]
        ) { edge in
            let member = try await edge.points.enroll(
                Requests.enroll("E-1", phone: "+8613800138000"), metadata: edge.auth("mall-fashion")
            ).member.memberID
            let answered = Shared<[String]>([])
            let stop = Shared(false)
            let acknowledged: [String] = try await withThrowingTaskGroup(of: Void.self) { group in
                for till in 0..<4 {
                    group.addTask {
                        var index = 0
                        while !stop.withLock({ $0 }) && index < 500 {
                            let response = try await edge.points.earn(
                                Requests.earn("T\(till)-\(index)", member: member, amount: 1_000),
                                metadata: edge.auth("mall-fashion"))
                            answered.withLock { $0.append(response.transactionID) }
                            index += 1
                        }
                    }
                }
                while answered.withLock({ $0.count }) < 100 { try await Task.sleep(for: .milliseconds(5)) }
                let before = answered.withLock { $0 }
                try edge.node.ledger.database.backup(to: backupPath)
                // Traffic goes on after the backup, then stops.
                let atBackup = answered.withLock { $0.count }
                while answered.withLock({ $0.count }) < atBackup + 50 { try await Task.sleep(for: .milliseconds(5)) }
                stop.withLock { $0 = true }
                try await group.waitForAll()
                return before
            }
            #expect(acknowledged.count >= 100)
            return (acknowledged, member)
        }
        #expect(throws: ConfigurationError.self) {
            try EdgeDatabase.open(
                path: backupPath, site: SiteID("mall-01")!, limits: EdgeLimits(), now: .init(milliseconds: 0)
            ).backup(to: backupPath)
        }

        // Restore: a node on the copy.
        var restored = configuration
        restored.databasePath = backupPath
        try await EdgeFixture.withEdge(configuration: restored, merchants: ["mall-fashion"]) { edge in
            let ids = Set(
                try await edge.node.ledger.database.pool.read { db in
                    try String.fetchAll(db, sql: "SELECT transaction_id FROM outbox")
                })
            #expect(Set(acknowledged).isSubset(of: ids))
            let count = try await edge.node.ledger.database.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0
            }
            try await ConcurrencyTests.checkOutbox(edge, expectedCount: count)
            let balance = try await edge.points.getBalance(
                Requests.balance(member), metadata: edge.auth("mall-fashion")
            ).member.balancePoints
            #expect(balance == Int64(200 + 10 * (count - 1)))
            let next = try await edge.points.earn(
                Requests.earn("AFTER", member: member, amount: 1_000), metadata: edge.auth("mall-fashion"))
            #expect(next.balanceAfterPoints == balance + 10)
        }
    }
}
