// Goal (issue #15): several `coalition gateway serve` processes over one PostgreSQL ledger behave
// as one gateway. Online authorisations racing for a member's last points at two gateways: exactly
// one wins. Three edges pushing flat out while one gateway is killed with SIGKILL: the edges move to
// the other, every transaction is posted exactly once, the chain heads are intact and the ledger's
// invariants hold. Real processes, real TLS, a real PostgreSQL (scripts/with-postgres).
import Core
import Crypto
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import Logging
import NodeSupport
import PostgresNIO
import SwiftProtobuf
import Synchronization
import TestSupport
import Testing
import Wire

@Suite("Several gateways over one PostgreSQL ledger")
struct MultiGatewayTests {
    /// A `coalition gateway serve` process on the shared ledger, its log in the test's directory.
    final class GatewayProcess: Sendable {
        let process: SpawnedProcess
        let portFile: String

        init(config: String, name: String, directory: String) throws {
            portFile = directory + "/\(name).port"
            process = try SpawnedProcess(
                try #require(Binary.path), ["gateway", "serve", "--config", config, "--port-file", portFile],
                output: directory + "/\(name).log")
        }

        func port() async throws -> Int { try await GatewayProcessTests.waitForPort(portFile) }

        func kill() {
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        }

        deinit { kill() }
    }

    /// A gateway config on the test database, with the test program.
    static func configFile(_ directory: String, database: PostgresSettings, limits: [String: Int] = [:]) throws
        -> String
    {
        let path = directory + "/gateway.yaml"
        try """
        database: \(database)
        listen: 127.0.0.1:0
        ca_certificate: ca.pem
        certificate: gateway.pem
        private_key: gateway.key
        program_file: \(try Network.programFile(directory))
        limits:
          clock_skew_max_ms: 600000

        """.appending(limits.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)\n" }.joined())
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func authorize(
        _ sync: Coalition_Sync_V1_Sync.Client<HTTP2ClientTransport.Posix>, member: String, merchant: String,
        points: Int64, transaction: String
    ) async throws -> Coalition_Sync_V1_AuthorizeRedeemResponse {
        var request = Coalition_Sync_V1_AuthorizeRedeemRequest()
        request.protocolVersion = 1
        request.requestID = "A-\(transaction.suffix(8))"
        request.memberID = member
        request.merchantID = merchant
        request.points = points
        request.transactionID = transaction
        return try await sync.authorizeRedeem(request)
    }

    @Test("online authorisations racing for one member's last points at two gateway processes: exactly one wins")
    func racingAuthorisations() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "hotel-01"])
        try await TestPostgres.withDatabase { settings in
            let config = try Self.configFile(dir, database: settings)
            let first = try GatewayProcess(config: config, name: "gateway-a", directory: dir)
            let second = try GatewayProcess(config: config, name: "gateway-b", directory: dir)
            let (portA, portB) = (try await first.port(), try await second.port())
            #expect(portA != portB)
            try await RawSync.withClient(port: portA, certificates: certificates, certificate: "mall-01") { mall in
                try await RawSync.withClient(port: portB, certificates: certificates, certificate: "hotel-01") {
                    hotel in
                    let now = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
                    let enrolments = try RawSync.enrolments(merchant: "mall-fashion", count: 30, time: now)
                    #expect(try await mall.push(RawSync.push(enrolments)).status == .applied)
                    let members = try enrolments.map {
                        try Coalition_Sync_V1_LocalTransaction(serializedBytes: $0.payload).enrollment.memberID
                    }
                    var generator = SystemRandomNumberGenerator()
                    for member in members {
                        // Each member has its 200 sign-up points; both sites ask for all of them at once.
                        let atMall = TransactionID(time: now, using: &generator).description
                        let atHotel = TransactionID(time: now, using: &generator).description
                        async let one = Self.authorize(
                            mall, member: member, merchant: "mall-fashion", points: 200, transaction: atMall)
                        async let other = Self.authorize(
                            hotel, member: member, merchant: "hotel-rooms", points: 200, transaction: atHotel)
                        let answers = try await [one, other]
                        #expect(answers.filter(\.approved).count == 1, "\(member): \(answers.map(\.approved))")
                        #expect(answers.first(where: \.approved)?.availablePoints == 0)
                    }
                }
            }
            first.kill()
            second.kill()
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                let sql = LedgerSQL(client: database.client)
                #expect(try await sql.int("SELECT COUNT(*) FROM holds WHERE status = 'active'") == 30)
                // No member's active holds exceed its balance.
                #expect(
                    try await sql.int(
                        """
                        SELECT COUNT(*) FROM members m WHERE m.balance_points < (
                            SELECT COALESCE(SUM(h.points), 0) FROM holds h
                            WHERE h.member_id = m.member_id AND h.status = 'active')
                        """) == 0)
                try await sql.checkInvariants()
            }
        }
    }

    @Test("two sites pushing earns for the same members through two gateway processes: none is lost")
    func parallelPushesSameMembers() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "hotel-01"])
        try await TestPostgres.withDatabase { settings in
            let config = try Self.configFile(dir, database: settings)
            let first = try GatewayProcess(config: config, name: "gateway-a", directory: dir)
            let second = try GatewayProcess(config: config, name: "gateway-b", directory: dir)
            let (portA, portB) = (try await first.port(), try await second.port())
            let now = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
            let enrolments = try RawSync.enrolments(merchant: "mall-fashion", count: 10, time: now)
            let members = try enrolments.map {
                try Coalition_Sync_V1_LocalTransaction(serializedBytes: $0.payload).enrollment.memberID
            }
            // Each site pushes 15 batches of one earn per member, the two sites at once, each
            // through its own gateway; what each earn was posted with, per member.
            let answered = Answered()
            @Sendable func pushEarns(
                port: Int, site: String, merchant: String, first: UInt64, previous: Data,
                before: [Coalition_Sync_V1_OutboxTransaction]
            ) async throws {
                try await RawSync.withClient(port: port, certificates: certificates, certificate: site) { sync in
                    if !before.isEmpty { #expect(try await sync.push(RawSync.push(before)).status == .applied) }
                    var sequence = first
                    var chain = previous
                    for round in 0..<15 {
                        let earns = members.map {
                            RawSync.earn(
                                member: $0, merchant: merchant, amount: 10_000 + Int64(round), statedPoints: 0,
                                tier: "member", time: now)
                        }
                        let batch = try RawSync.chain(earns, first: sequence, previous: chain)
                        let response = try await sync.push(RawSync.push(batch))
                        #expect(response.status == .applied)
                        answered.posted.withLock { posted in
                            for (earn, result) in zip(earns, response.results) {
                                posted[earn.earn.memberID, default: 0] += result.postedPoints
                            }
                        }
                        sequence += UInt64(batch.count)
                        chain = Data(SHA256.hash(data: batch[batch.count - 1].payload))
                    }
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await pushEarns(
                        port: portA, site: "mall-01", merchant: "mall-fashion", first: 11,
                        previous: Data(SHA256.hash(data: enrolments[9].payload)), before: enrolments)
                }
                group.addTask {
                    // The hotel starts once the members exist.
                    try await Network.eventually("the members are enrolled") {
                        try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) {
                            try await LedgerSQL(client: $0.client).int("SELECT COUNT(*) FROM members") == 10
                        }
                    }
                    try await pushEarns(
                        port: portB, site: "hotel-01", merchant: "hotel-rooms", first: 1, previous: Data(count: 32),
                        before: [])
                }
                try await group.waitForAll()
            }
            first.kill()
            second.kill()
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                let sql = LedgerSQL(client: database.client)
                let expected = answered.posted.withLock { $0 }
                for member in members {
                    let points = try #require(expected[member])
                    #expect(points > 0)
                    #expect(
                        try await sql.int("SELECT balance_points FROM members WHERE member_id = ?", [member])
                            == 200 + points)
                }
                #expect(try await sql.int("SELECT COUNT(*) FROM transactions") == 10 + 2 * 15 * 10)
                try await sql.checkInvariants()
            }
        }
    }

    @Test("the same batch sent by one site to two gateway processes at once is applied once")
    func sameBatchTwice() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try await TestPostgres.withDatabase { settings in
            let config = try Self.configFile(dir, database: settings)
            let first = try GatewayProcess(config: config, name: "gateway-a", directory: dir)
            let second = try GatewayProcess(config: config, name: "gateway-b", directory: dir)
            let (portA, portB) = (try await first.port(), try await second.port())
            let now = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
            var previous = Data(count: 32)
            var sequence: UInt64 = 1
            for round in 0..<10 {
                let batch = try RawSync.enrolments(
                    merchant: "mall-fashion", count: 20, first: sequence, previous: previous, time: now)
                async let viaA = RawSync.withClient(port: portA, certificates: certificates, certificate: "mall-01") {
                    try await $0.push(RawSync.push(batch))
                }
                async let viaB = RawSync.withClient(port: portB, certificates: certificates, certificate: "mall-01") {
                    try await $0.push(RawSync.push(batch))
                }
                let answers = try await [viaA, viaB]
                #expect(
                    answers.map(\.status).sorted { $0.rawValue < $1.rawValue } == [.applied, .alreadyApplied],
                    "round \(round): \(answers.map(\.status))")
                #expect(answers[0].results == answers[1].results)
                sequence += 20
                previous = Data(SHA256.hash(data: batch[19].payload))
            }
            first.kill()
            second.kill()
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                let sql = LedgerSQL(client: database.client)
                #expect(try await sql.int("SELECT COUNT(*) FROM transactions") == 200)
                #expect(try await sql.int("SELECT high_water_mark FROM sites WHERE site_id = 'mall-01'") == 200)
                try await sql.checkInvariants()
            }
        }
    }

    /// What the tills were answered, per site.
    final class Answered: Sendable {
        let earns = Mutex<[String: Int]>([:])
        /// Points each member's earns were posted with.
        let posted = Mutex<[String: Int64]>([:])
        /// Transactions in the ledger when the gateway was killed.
        let atKill = Mutex<Int64>(-1)
    }

    @Test("three edges push flat out; one of two gateway processes is killed: each transaction is posted once")
    func failover() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let sites = [("mall-01", "mall-fashion"), ("hotel-01", "hotel-rooms"), ("park-01", "park-operator")]
        let certificates = try TestCertificates(directory: dir, sites: sites.map(\.0))
        try await TestPostgres.withDatabase { settings in
            let config = try Self.configFile(dir, database: settings)
            let doomed = try GatewayProcess(config: config, name: "gateway-a", directory: dir)
            let survivor = try GatewayProcess(config: config, name: "gateway-b", directory: dir)
            let (portA, portB) = (try await doomed.port(), try await survivor.port())
            // The edges run on the real clock, as the gateway processes do.
            let clock = ManualWallClock()
            clock.set(Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                let sql = LedgerSQL(client: database.client)
                let answered = Answered()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, (site, merchant)) in sites.enumerated() {
                        // Two edges reach the doomed gateway first, one the survivor.
                        var config = try Network.edgeConfiguration(
                            dir, site: site, certificates: certificates, gatewayPort: index == 1 ? portB : portA)
                        config.gateway?.alternates = [
                            GatewayLink.Alternate(host: "127.0.0.1", port: index == 1 ? portA : portB)
                        ]
                        config.gateway?.pushBatchMax = 20
                        group.addTask {
                            try await Network.withEdge(config, merchant: merchant, clock: clock) { edge in
                                let member = try await edge.points.enroll(
                                    Make.enroll("E-\(site)", phone: "+86138001380\(index)\(index)"),
                                    metadata: edge.auth
                                ).member.memberID
                                for earn in 1...150 {
                                    _ = try await edge.points.earn(
                                        Make.earn("R-\(site)-\(earn)", member: member, amount: 10_000),
                                        metadata: edge.auth)
                                    answered.earns.withLock { $0[site, default: 0] += 1 }
                                }
                                try await Network.eventually("\(site) synced") { try await Network.synced(edge) }
                                // What the edge holds of its own outbox is what the ledger posted, once.
                                let last = try await edge.node.ledger.database.pool.read { db in
                                    try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM outbox") ?? -1
                                }
                                #expect(last == 151)
                                #expect(
                                    try await sql.int(
                                        "SELECT COUNT(*) FROM transactions WHERE site_id = ?", [site]) == last)
                                #expect(
                                    try await sql.int("SELECT high_water_mark FROM sites WHERE site_id = ?", [site])
                                        == last)
                                #expect(
                                    try await sql.int(
                                        "SELECT balance_points FROM members WHERE member_id = ?", [member])
                                        == (try await edge.balance(member)))
                            }
                        }
                    }
                    // Kill the doomed gateway mid-push: once a third of the transactions are posted.
                    group.addTask {
                        try await Network.eventually("the ledger has posted a third of the transactions") {
                            try await sql.int("SELECT COUNT(*) FROM transactions") ?? 0 >= 150
                        }
                        doomed.kill()
                        let posted = try await sql.int("SELECT COUNT(*) FROM transactions") ?? -1
                        answered.atKill.withLock { $0 = posted }
                    }
                    try await group.waitForAll()
                }
                #expect(!doomed.process.isRunning)
                // Killed mid-push: the rest was posted through the survivor.
                let atKill = answered.atKill.withLock { $0 }
                #expect(atKill >= 150 && atKill < 3 * 151, "\(atKill) transactions when the gateway was killed")
                #expect(answered.earns.withLock { $0 } == Dictionary(uniqueKeysWithValues: sites.map { ($0.0, 150) }))
                // Every site's chain head is the hash of its last transaction's payload.
                #expect(
                    try await sql.int(
                        """
                        SELECT COUNT(*) FROM sites s JOIN transactions t
                            ON t.site_id = s.site_id AND t.site_sequence = s.high_water_mark
                        WHERE sha256(t.payload) = s.last_hash
                        """) == 3)
                #expect(try await sql.int("SELECT COUNT(DISTINCT transaction_id) FROM transactions") == 3 * 151)
                try await sql.checkInvariants()
            }
            survivor.kill()
        }
    }
}
