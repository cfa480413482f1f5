// Goal (issue #12, item 5): an edge at `database_bytes_max` does not refuse writes for good. Its WAL
// counts against the cap (before, 5.6 MB sat on disk under a 1.5 MB cap), and once the gateway has
// acknowledged its transactions and they are older than `outbox_retention_ms`, they are pruned and
// the till is served again, with every balance unchanged. Before, the outbox was never pruned: a
// full edge stayed full after everything was acknowledged.
import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Edge storage cap")
struct EdgeStorageCapTests {
    @Test("a full edge serves again once acknowledged transactions pass the retention; the WAL counts")
    func prunedWhenAcknowledged() async throws {
        let cap: Int64 = 512 * 1024
        try await Network.withLinkedEdge(edit: {
            $0.limits.databaseBytesMax = cap
            $0.limits.outboxRetentionMilliseconds = 60_000
            $0.limits.storageCheckMilliseconds = 200
        }) { gateway, mall, clock in
            var stage = "enrol"
            do {
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                // Every earn is the same size (a long request id of fixed length makes rows big),
                // so that what fills the store is what is asked of it afterwards.
                func id(_ number: Int) -> String {
                    "F" + String(format: "%08d", number) + String(repeating: "x", count: 48)
                }
                var number = 0
                var earned: Int64 = 0
                var full = false
                for index in 1...20_000 where !full {
                    do {
                        earned += try await mall.points.earn(
                            Make.earn(
                                "FILL-\(index)-" + String(repeating: "x", count: 48), member: member, amount: 2_000),
                            metadata: mall.auth
                        ).points
                    } catch let error as RPCError {
                        #expect(error.code == .resourceExhausted, "\(error.message)")
                        #expect(
                            error.metadata[stringValues: "coalition-reason"].first(where: { _ in true })
                                == "STORAGE_FULL")
                        full = true
                    }
                }
                #expect(full, "20,000 earns did not fill a 512 KiB store")
                // The file and its WAL together stay within the cap.
                let onDisk = mall.node.ledger.database.bytesOnDisk
                #expect(onDisk <= cap, "\(onDisk) bytes on disk under a cap of \(cap)")
                try await Network.eventually("the gateway acknowledges every transaction") {
                    try await Network.synced(mall)
                }
                try await Network.eventually("the gateway holds what the till was told") {
                    try await gateway.balance(member) == 200 + earned
                }
                // Acknowledged but younger than the retention: kept, so the store fills again at once.
                var refill = 0
                while refill < 1_000 {
                    number += 1
                    do {
                        earned += try await mall.points.earn(
                            Make.earn(id(number), member: member, amount: 2_000), metadata: mall.auth
                        ).points
                        refill += 1
                    } catch {
                        break
                    }
                }
                #expect(refill < 1_000, "the store did not fill again")
                try await Network.eventually("the gateway acknowledges the refill") {
                    try await Network.synced(mall)
                }
                clock.advance(milliseconds: 61_000)
                stage = "after pruning"
                try await Network.eventually("an earn is accepted again after pruning") {
                    number += 1
                    do {
                        earned += try await mall.points.earn(
                            Make.earn(id(number), member: member, amount: 2_000), metadata: mall.auth
                        ).points
                        return true
                    } catch {
                        return false
                    }
                }
                // And not one that squeezed into a corner: another 100 of the same size fit (the
                // store held about 350 when full; without pruning not one more fits).
                stage = "100 more"
                for _ in 0..<100 {
                    number += 1
                    earned += try await mall.points.earn(
                        Make.earn(id(number), member: member, amount: 2_000), metadata: mall.auth
                    ).points
                }
                // Nothing a member holds was lost with the pruned rows.
                #expect(try await mall.balance(member) == 200 + earned)
                try await Network.eventually("the gateway posts the new earn") {
                    try await gateway.balance(member) == 200 + earned
                }
                #expect(mall.node.ledger.database.bytesOnDisk <= cap)
            } catch {
                let counts = try await mall.node.ledger.database.pool.read { db in
                    try Row.fetchOne(
                        db,
                        sql:
                            "SELECT (SELECT COUNT(*) FROM outbox) AS outbox, (SELECT COUNT(*) FROM member_delta) AS deltas, (SELECT acknowledged_sequence FROM sync_state) AS acked, (SELECT snapshot_site_sequence FROM members LIMIT 1) AS snapshot"
                    ).map { "\($0)" } ?? ""
                }
                Issue.record("at \(stage): \(error); \(counts)")
            }
            try await gateway.checkInvariants()
        }
    }
}
