// Goal: the gateway process killed with SIGKILL while an edge pushes a backlog loses nothing and
// doubles nothing: after a restart on the same port every outbox transaction is posted once.
import Core
import EdgeNode
import Foundation
import GRDB
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Gateway process faults")
struct GatewayProcessTests {
    /// A `coalition gateway serve` process.
    final class GatewayProcess: Sendable {
        let process: SpawnedProcess

        init(config: String, listen: String, portFile: String) throws {
            try? FileManager.default.removeItem(atPath: portFile)
            process = try SpawnedProcess(
                try #require(Binary.path),
                ["gateway", "serve", "--config", config, "--listen", listen, "--port-file", portFile])
        }
    }

    /// The port a starting gateway wrote, waiting up to 2 minutes (a loaded CI machine applying
    /// PostgreSQL migrations beside other suites has taken over 30 s).
    static func waitForPort(_ file: String) async throws -> Int {
        for _ in 0..<2_400 {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return port
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProcessFailure("the gateway did not start")
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    /// A protobuf JSON integer (64-bit values are strings, smaller ones numbers).
    static func integer(_ value: Any?) -> Int64? {
        if let text = value as? String { return Int64(text) }
        return (value as? NSNumber)?.int64Value
    }

    @Test("SIGKILL of the gateway during a backlog push: every transaction posted exactly once after restart")
    func killDuringPush() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        let config = try Network.gatewayConfigFile(dir)
        let portFile = directory.path("gateway.port")
        var gateway: GatewayProcess? = try GatewayProcess(config: config, listen: "127.0.0.1:0", portFile: portFile)
        let port = try await Self.waitForPort(portFile)
        let clock = ManualWallClock()
        var online = try Network.edgeConfiguration(dir, site: "mall-01", certificates: certificates, gatewayPort: port)
        online.gateway?.pushBatchMax = 25
        let offline = try Network.edgeConfiguration(
            dir, site: "mall-01", certificates: certificates, gatewayPort: SyncIntegrationTests.deadPort)

        // Meet the gateway once, then build a backlog offline.
        try await Network.withEdge(online, merchant: "mall-fashion", clock: clock) { _ in }
        let member: String = try await Network.withEdge(offline, merchant: "mall-fashion", clock: clock) { mall in
            let member = try await mall.points.enroll(Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth)
                .member.memberID
            for index in 1...300 {
                _ = try await mall.points.earn(
                    Make.earn("R-\(index)", member: member, amount: 1_000), metadata: mall.auth)
            }
            return member
        }
        try await Network.withEdge(online, merchant: "mall-fashion", clock: clock) { mall in
            // Kill the gateway while the backlog is being pushed.
            try await Network.eventually("part of the backlog acknowledged") {
                try await mall.node.ledger.unacknowledgedCount() < 280
            }
            if let process = gateway?.process {
                kill(process.processIdentifier, SIGKILL)
                try await ChildProcess.waitForExit(process)
            }
            gateway = nil
            gateway = try GatewayProcess(config: config, listen: "127.0.0.1:\(port)", portFile: portFile)
            _ = try await Self.waitForPort(portFile)
            try await Network.eventually("the backlog is acknowledged after the restart") {
                try await Network.synced(mall)
            }
            try await Network.eventually("the edge shows the gateway's balance") {
                try await mall.balance(member) == 200 + 300 * 10
            }
        }
        // From the outside, through the operator CLI against the restarted process.
        try certificates.issue(.operator("alice"), name: "alice")
        let admin = directory.path("admin.yaml")
        try """
        gateway_port_file: \(portFile)
        ca_certificate: \(certificates.path("ca.pem"))
        certificate: \(certificates.path("alice.pem"))
        private_key: \(certificates.path("alice.key"))
        """.write(toFile: admin, atomically: true, encoding: .utf8)
        let sites = try Self.json(try await Binary.run(["admin", "sites", "--config", admin, "--json"]))
        let mall = (sites["sites"] as? [[String: Any]])?.first {
            ($0["siteId"] ?? $0["site_id"]) as? String == "mall-01"
        }
        #expect(Self.integer(mall?["highWaterMark"] ?? mall?["high_water_mark"]) == 301)
        let shown = try Self.json(
            try await Binary.run(["admin", "member", "show", member, "--config", admin, "--json"]))
        #expect(Self.integer(shown["balancePoints"] ?? shown["balance_points"]) == 3_200)
        if let process = gateway?.process {
            process.terminate()
            #expect(try await ChildProcess.waitForExit(process))
        }
        // Outside the process: the ledger holds each of the 301 transactions exactly once.
        let ledger = try GatewayDatabase.open(path: directory.path("gateway.sqlite"))
        let (count, distinct, balance) = try await ledger.pool.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM transactions") ?? -1,
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(DISTINCT transaction_id) FROM transactions WHERE site_sequence IS NOT NULL")
                    ?? -1,
                try Int64.fetchOne(
                    db, sql: "SELECT points FROM account_balances WHERE account = ?", arguments: ["member:\(member)"])
                    ?? -1
            )
        }
        #expect(count == 301)
        #expect(distinct == 301)
        #expect(balance == 3_200)
    }
}

/// #14 items 16 and 17: the first things a newcomer sees say what the tool is and what is wrong.
@Suite("First contact with the binary")
struct FirstContactTests {
    @Test("a missing or unreadable file is named with the reason, not a Foundation error dump")
    func unreadableFiles() async throws {
        let directory = try TemporaryDirectory()
        let missing = directory.path("missing.yaml")
        for command in [["gateway", "serve", "--config", missing], ["edge", "serve", "--config", missing]] {
            let failure = await #expect(throws: ProcessFailure.self) { try await Binary.run(command) }
            let text = failure?.description ?? ""
            #expect(text.contains("cannot read \(missing): no such file"), "\(text)")
            #expect(!text.contains("NSCocoaErrorDomain"), "\(text)")
        }
        let folder = await #expect(throws: ProcessFailure.self) {
            try await Binary.run(["program", "check", directory.url.path])
        }
        #expect(folder?.description.contains("it is a directory, not a file") == true)
    }

    @Test("coalition --help says what the tool is and how to start")
    func help() async throws {
        let help = try await Binary.run(["--help"])
        #expect(help.contains("coalition demo"))
        #expect(!help.contains("arrive with their issues"))
    }
}
