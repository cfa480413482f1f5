// Goal (DESIGN §11): a real `coalition edge serve` process linked to a gateway over mutual TLS,
// killed with SIGKILL under till load while it pushes, and frozen with SIGSTOP past the online
// authorisation deadline. Checked from the outside (the POS API and the gateway's ledger): every
// answered request is kept and answers its retry the same way, nothing is posted twice.
import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import NodeSupport
import Synchronization
import TestSupport
import Testing
import Wire

@Suite("Edge process faults")
struct EdgeProcessFaultTests {
    /// What the tills sent and what they were answered, shared by the till tasks.
    final class Record: Sendable {
        let answered = Mutex<[String: String]>([:])
        let sent = Mutex<Set<String>>([])
    }

    /// Writes an edge config for `mall-01` linked to the gateway at `port`.
    static func edgeConfig(_ directory: String, gatewayPort: Int, pushBatchMax: Int = 25) throws -> String {
        try PrivateFiles.write(String(repeating: "cd", count: 32), to: directory + "/phone.key")
        let path = directory + "/edge.yaml"
        try """
        site_id: mall-01
        database_path: mall-01.sqlite
        listen: 127.0.0.1:0
        program_file: program.yaml
        phone_hash_key_file: phone.key
        gateway:
          address: 127.0.0.1:\(gatewayPort)
          ca_certificate: ca.pem
          certificate: mall-01.pem
          private_key: mall-01.key
          authorize_deadline_ms: 300
          push_batch_max: \(pushBatchMax)
          sync_interval_ms: 20
          backoff_initial_ms: 20
          backoff_max_ms: 200
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs `body` with an in-process gateway on a free port, an edge config for `mall-01` linked to
    /// it, and a terminal token (made with the CLI) for `mall-fashion`.
    static func withGatewayAndEdgeConfig(
        pushBatchMax: Int, _ body: (GatewayHarness, String, String, Metadata) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        _ = try Network.programFile(dir)
        // The edge process runs on the real clock; the gateway's starts at the same instant.
        let clock = ManualWallClock()
        clock.set(Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
        try await Network.withGateway(try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock) {
            gateway in
            let config = try edgeConfig(dir, gatewayPort: gateway.port, pushBatchMax: pushBatchMax)
            let token = try await Binary.run([
                "edge", "terminal", "add", "--config", config, "--merchant", "mall-fashion", "--name", "till-1",
            ])
            .trimmingCharacters(in: .whitespacesAndNewlines)
            try await body(gateway, dir, config, ["authorization": .string("Bearer \(token)")])
        }
    }

    /// Runs `body` with a Points client on the edge process's port.
    static func withPoints<Result: Sendable>(
        _ edge: EdgeProcess,
        _ body: (Coalition_Edge_V1_Points.Client<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        let port = try await edge.port()
        return try await withGRPCClient(
            transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
        ) { client in
            try await body(Coalition_Edge_V1_Points.Client(wrapping: client))
        }
    }

    static func siteHighWater(_ gateway: GatewayHarness) async throws -> Int64 {
        try await gateway.store.database.pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT high_water_mark FROM sites WHERE site_id = 'mall-01'") ?? 0
        }
    }

    static func outbox(_ path: String) async throws -> (last: Int64, acknowledged: Int64) {
        let database = try DatabaseQueue(path: path)
        return try await database.read { db in
            (
                try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM outbox") ?? -1,
                try Int64.fetchOne(db, sql: "SELECT acknowledged_sequence FROM sync_state") ?? -1
            )
        }
    }

    @Test(
        "SIGKILL of an edge under till load while it pushes: answered earns are kept and retried alike; each is posted once"
    )
    func killUnderLoadDuringPush() async throws {
        try await Self.withGatewayAndEdgeConfig(pushBatchMax: 2) { gateway, dir, config, auth in
            var edge = try EdgeProcess(config: config, directory: dir)
            let member = try await Self.withPoints(edge) { points in
                try await points.enroll(Make.enroll("E-1", phone: "+8613800138000"), metadata: auth).member.memberID
            }
            // Four tills earn as fast as they can; the edge is killed while it is pushing.
            let record = Record()
            try await Self.withPoints(edge) { points in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for till in 0..<4 {
                        group.addTask {
                            for index in 0..<10_000 {
                                let id = "T\(till)-\(index)"
                                record.sent.withLock { _ = $0.insert(id) }
                                do {
                                    let answer = try await points.earn(
                                        Make.earn(id, member: member, amount: 1_000), metadata: auth)
                                    record.answered.withLock { $0[id] = answer.transactionID }
                                } catch {
                                    return  // the edge is gone
                                }
                            }
                        }
                    }
                    try await Network.eventually("the edge is pushing under load") {
                        try await Self.siteHighWater(gateway) >= 20
                    }
                    edge.signal(SIGKILL)
                    _ = try await edge.waitForExit()
                    try await group.waitForAll()
                }
            }
            let killedAt = try await Self.outbox(dir + "/mall-01.sqlite")
            #expect(
                killedAt.acknowledged < killedAt.last,
                "the kill should land with a backlog still to push (acknowledged \(killedAt.acknowledged) of \(killedAt.last))"
            )
            // Restart on the same file: every request sent is retried; an answered one gets its answer again.
            edge = try EdgeProcess(config: config, directory: dir)
            let approved = try await Self.withPoints(edge) { points in
                var approved: Set<String> = []
                for id in record.sent.withLock({ $0 }).sorted() {
                    let answer = try await points.earn(Make.earn(id, member: member, amount: 1_000), metadata: auth)
                    if let first = record.answered.withLock({ $0[id] }) {
                        #expect(answer.transactionID == first, "\(id) changed its answer")
                    }
                    approved.insert(answer.transactionID)
                }
                return approved
            }
            #expect(approved.count == record.sent.withLock { $0.count })
            let last = try await Self.outbox(dir + "/mall-01.sqlite").last
            try await Network.eventually("the gateway holds the whole outbox") {
                try await Self.siteHighWater(gateway) == last
            }
            // The gateway commits before it answers: the edge records the acknowledgement a moment later.
            try await Network.eventually("the edge has its acknowledgement") {
                try await Self.outbox(dir + "/mall-01.sqlite").acknowledged == last
            }
            edge.signal(SIGTERM)
            #expect(try await edge.waitForExit() == 0)
            let (earns, distinct, balance) = try await gateway.store.database.pool.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM transactions WHERE kind = 'earn'") ?? -1,
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(DISTINCT transaction_id) FROM transactions WHERE kind = 'earn'") ?? -1,
                    try Int64.fetchOne(
                        db, sql: "SELECT points FROM account_balances WHERE account = ?",
                        arguments: ["member:\(member)"]) ?? -1
                )
            }
            #expect(earns == approved.count)
            #expect(distinct == approved.count)
            #expect(balance == 200 + Int64(approved.count) * 10)
            #expect(try await Self.outbox(dir + "/mall-01.sqlite").acknowledged == last)
            try await gateway.checkInvariants()
        }
    }

    @Test("SIGSTOP of an edge past the authorisation deadline: the till's retry gets one answer, posted once")
    func stopPastDeadline() async throws {
        try await Self.withGatewayAndEdgeConfig(pushBatchMax: 25) { gateway, dir, config, auth in
            let edge = try EdgeProcess(config: config, directory: dir)
            try await Self.withPoints(edge) { points in
                let member = try await points.enroll(Make.enroll("E-1", phone: "+8613800138000"), metadata: auth).member
                    .memberID
                _ = try await points.earn(Make.earn("R-1", member: member, amount: 100_000), metadata: auth)
                try await Network.eventually("the gateway knows the member") {
                    try await gateway.balance(member) == 1_200
                }
                // The till gives up after 200 ms; the edge is frozen for 1.5 s in the middle of the call.
                var redeem = Make.redeem("P-1", member: member, bill: 50_000, points: 500)
                redeem.merchantID = "mall-fashion"
                var options = CallOptions.defaults
                options.timeout = .milliseconds(200)
                async let first: Coalition_Edge_V1_RedeemResponse = points.redeem(
                    redeem, metadata: auth, options: options)
                try await Task.sleep(for: .milliseconds(5))
                edge.signal(SIGSTOP)
                try await Task.sleep(for: .milliseconds(1_500))
                edge.signal(SIGCONT)
                let firstAnswer = try? await first
                // The retry gets an answer; a second retry the same one.
                let retry = try await points.redeem(redeem, metadata: auth)
                if let firstAnswer { #expect(retry.transactionID == firstAnswer.transactionID) }
                #expect(try await points.redeem(redeem, metadata: auth).transactionID == retry.transactionID)
                #expect(retry.points == 500)
                try await Network.eventually("the redemption is posted") { try await gateway.balance(member) == 700 }
                let redemptions = try await gateway.store.database.pool.read { db in
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM transactions WHERE kind = 'redeem'") ?? -1
                }
                #expect(redemptions == 1)
            }
            edge.signal(SIGTERM)
            #expect(try await edge.waitForExit() == 0)
            try await gateway.checkInvariants()
        }
    }
}

/// #14 item 13: a new edge waiting for its first contact with the gateway stops at SIGTERM and
/// SIGINT like a serving one (before, it logged "shutting down" and kept retrying for minutes).
@Suite("A new edge waiting for the gateway")
struct EdgeWaitingTests {
    @Test(
        "SIGTERM or SIGINT while a new edge waits for its first contact: it stops and exits 0",
        arguments: [SIGTERM, SIGINT])
    func stopsWhileWaiting(_ signal: Int32) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        _ = try TestCertificates(directory: dir, sites: ["mall-01"])
        let config = try Network.edgeConfigFile(dir, gatewayAddress: "127.0.0.1:\(SyncIntegrationTests.deadPort)")
        let edge = try EdgeProcess(config: config, directory: dir)
        try await Network.eventually("the edge waits for the gateway") {
            edge.log.contains("a new edge waits for the gateway before serving")
        }
        edge.signal(signal)
        #expect(try await edge.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: edge.portFile))
    }
}
