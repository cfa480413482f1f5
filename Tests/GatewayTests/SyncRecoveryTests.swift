// Goal: the failure cases of DESIGN §5-§6 end with every transaction posted exactly once: a lost
// push answer, a deleted edge database, an edge clock hours ahead, the same phone enrolled at two
// offline sites, and the same receipt submitted again after a recovery.
import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Sync failures and recovery")
struct SyncRecoveryTests {
    final class Setup {
        let directory: TemporaryDirectory
        let certificates: TestCertificates
        var dir: String { directory.url.path }

        init() throws {
            directory = try TemporaryDirectory()
            certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01", "hotel-01"])
        }
    }

    static func count(_ gateway: GatewayHarness, _ sql: String) async throws -> Int {
        Int(try await gateway.sql.int(sql) ?? -1)
    }

    @Test("a push whose answer was lost is resent and applied once", arguments: LedgerKind.allCases)
    func lostAnswer(ledger: LedgerKind) async throws {
        let setup = try Setup()
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(setup.dir, certificates: setup.certificates), clock: clock, ledger: ledger
        ) { gateway in
            let config = try Network.edgeConfiguration(
                setup.dir, site: "mall-01", certificates: setup.certificates, gatewayPort: gateway.port)
            try await Network.withEdge(config, merchant: "mall-fashion", clock: clock) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 50_000), metadata: mall.auth)
                try await Network.eventually("synced") { try await Network.synced(mall) }
                #expect(try await gateway.balance(member) == 700)
                // The gateway committed but the edge never heard: its acknowledgement is back to 0.
                try await mall.node.ledger.database.pool.write { db in
                    try db.execute(sql: "UPDATE sync_state SET acknowledged_sequence = 0")
                }
                try await Network.eventually("resent and acknowledged") { try await Network.synced(mall) }
                #expect(try await gateway.balance(member) == 700)
                #expect(try await Self.count(gateway, "SELECT COUNT(*) FROM transactions") == 2)
                try await gateway.checkInvariants()
            }
        }
    }

    @Test(
        "an edge whose database was deleted recovers its transactions and never reuses a sequence",
        arguments: LedgerKind.allCases)
    func deletedDatabase(ledger: LedgerKind) async throws {
        let setup = try Setup()
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(setup.dir, certificates: setup.certificates), clock: clock, ledger: ledger
        ) { gateway in
            let config = try Network.edgeConfiguration(
                setup.dir, site: "mall-01", certificates: setup.certificates, gatewayPort: gateway.port)
            let member: String = try await Network.withEdge(config, merchant: "mall-fashion", clock: clock) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                for index in 1...3 {
                    _ = try await mall.points.earn(
                        Make.earn("R-\(index)", member: member, amount: 10_000), metadata: mall.auth)
                }
                try await Network.eventually("synced") { try await Network.synced(mall) }
                return member
            }
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(atPath: config.databasePath + suffix)
            }
            try await Network.withEdge(config, merchant: "mall-fashion", clock: clock) { mall in
                let sequences = try await mall.node.ledger.database.pool.read { db in
                    try Int64.fetchAll(db, sql: "SELECT sequence FROM outbox ORDER BY sequence")
                }
                #expect(sequences == [1, 2, 3, 4])
                try await Network.eventually("the member is pulled back") { try await mall.balance(member) == 500 }
                let next = try await mall.points.earn(
                    Make.earn("R-9", member: member, amount: 10_000), metadata: mall.auth)
                #expect(next.balanceAfterPoints == 600)
                try await Network.eventually("synced") { try await Network.synced(mall) }
                let last = try await mall.node.ledger.database.pool.read { db in
                    try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM outbox")
                }
                #expect(last == 5)
                #expect(try await gateway.balance(member) == 600)
                #expect(try await gateway.flags("mall-01").isEmpty)
                // A receipt retried after the loss is a duplicate at the gateway; the edge's view is corrected.
                _ = try await mall.points.earn(Make.earn("R-2", member: member, amount: 10_000), metadata: mall.auth)
                try await Network.eventually("the duplicate is rejected and the view corrected") {
                    let synced = try await Network.synced(mall)
                    let balance = try await mall.balance(member)
                    return synced && balance == 600
                }
                #expect(try await gateway.conflicts(kind: "duplicate_receipt").count == 1)
                #expect(try await gateway.balance(member) == 600)
                try await gateway.checkInvariants()
            }
        }
    }

    @Test(
        "an edge clock 6 hours ahead keeps occurred_at, posts in gateway order, and flags the site",
        arguments: LedgerKind.allCases)
    func clockSkew(ledger: LedgerKind) async throws {
        let setup = try Setup()
        let gatewayClock = ManualWallClock()
        let edgeClock = ManualWallClock()
        edgeClock.advance(milliseconds: 6 * Timestamp.hour)
        try await Network.withGateway(
            try Network.gatewayConfiguration(setup.dir, certificates: setup.certificates), clock: gatewayClock,
            ledger: ledger
        ) { gateway in
            let config = try Network.edgeConfiguration(
                setup.dir, site: "mall-01", certificates: setup.certificates, gatewayPort: gateway.port)
            try await Network.withEdge(config, merchant: "mall-fashion", clock: edgeClock) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 10_000), metadata: mall.auth)
                try await Network.eventually("synced") { try await Network.synced(mall) }
                #expect(try await gateway.flags("mall-01").contains("clock_skew"))
                #expect(try await gateway.conflicts(kind: "clock_skew").count == 1)
                let rows = try await gateway.sql.rows(
                    "SELECT position, posted_at_ms FROM transactions ORDER BY position"
                ).map { (Int64($0[0] ?? "") ?? -1, Int64($0[1] ?? "") ?? -1) }
                #expect(rows.count == 2)
                #expect(rows.allSatisfy { $0.1 == gatewayClock.now().milliseconds })
                let occurred = try await gateway.sql.int(
                    "SELECT outbox_occurred_at_ms FROM transactions WHERE site_sequence = 2")
                #expect(occurred == edgeClock.now().milliseconds)
            }
        }
    }

    @Test(
        "the same phone enrolled at two offline sites ends as one member with the points of both, one sign-up bonus",
        arguments: LedgerKind.allCases)
    func samePhone(ledger: LedgerKind) async throws {
        let setup = try Setup()
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(setup.dir, certificates: setup.certificates), clock: clock, ledger: ledger
        ) { gateway in
            let online = { (site: String) in
                try Network.edgeConfiguration(
                    setup.dir, site: site, certificates: setup.certificates, gatewayPort: gateway.port)
            }
            let offline = { (site: String) in
                try Network.edgeConfiguration(
                    setup.dir, site: site, certificates: setup.certificates, gatewayPort: SyncIntegrationTests.deadPort)
            }
            // Both edges have met the gateway once, then lose it.
            for (site, merchant) in [("mall-01", "mall-fashion"), ("hotel-01", "hotel-rooms")] {
                try await Network.withEdge(try online(site), merchant: merchant, clock: clock) { _ in }
            }
            let atMall: String = try await Network.withEdge(
                try offline("mall-01"), merchant: "mall-fashion", clock: clock
            ) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 30_000), metadata: mall.auth)
                return member
            }
            let atHotel: String = try await Network.withEdge(
                try offline("hotel-01"), merchant: "hotel-rooms", clock: clock
            ) { hotel in
                let member = try await hotel.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: hotel.auth
                ).member.memberID
                _ = try await hotel.points.earn(Make.earn("R-1", member: member, amount: 50_000), metadata: hotel.auth)
                return member
            }
            #expect(atMall != atHotel)
            try await Network.withEdge(try online("mall-01"), merchant: "mall-fashion", clock: clock) { mall in
                try await Network.eventually("mall synced") { try await Network.synced(mall) }
                try await Network.withEdge(try online("hotel-01"), merchant: "hotel-rooms", clock: clock) { hotel in
                    try await Network.eventually("hotel synced") { try await Network.synced(hotel) }
                    // 200 + 300 at the mall, 500 at the hotel (its sign-up bonus is not paid twice:
                    // issue #13, item 10): one member with 1,000.
                    #expect(try await gateway.balance(atMall) == 1_000)
                    #expect(try await gateway.balance(atHotel) == 0)
                    #expect(try await gateway.conflicts(kind: "member_merge").count == 1)
                    var lookup = Coalition_Edge_V1_LookupMemberRequest()
                    lookup.phone = "+8613800138000"
                    for edge in [mall, hotel] {
                        try await Network.eventually("\(edge.node.configuration.siteID) shows one member with 1,000") {
                            let found = try await edge.points.lookupMember(lookup, metadata: edge.auth).member
                            return found.memberID == atMall && found.balancePoints == 1_000
                        }
                    }
                    // The hotel's old member id still works at its tills and means the merged member.
                    #expect(try await hotel.balance(atHotel) == 1_000)
                    try await gateway.checkInvariants()
                }
            }
        }
    }
}
