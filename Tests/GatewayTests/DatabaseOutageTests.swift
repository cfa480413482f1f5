// Goal (issue #15, "Bad input and faults"): a PostgreSQL ledger that goes away under a serving
// gateway. Sync calls are answered UNAVAILABLE within `database_wait_ms` (never INTERNAL, never a
// hang), the edge serves offline, and when the database is back everything approved posts once.
// A real `coalition gateway serve` process, a real PostgreSQL behind a real TCP proxy that is
// killed with SIGKILL and started again on the same port.
import Core
import EdgeNode
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import Logging
import NodeSupport
import TestSupport
import Testing
import Wire

@Suite("A PostgreSQL ledger that goes away")
struct DatabaseOutageTests {
    /// `Tests/Interop/tcp_proxy.py` in front of the test server: killing it cuts the gateway off
    /// its database.
    final class Proxy: @unchecked Sendable {
        // @unchecked: touched only by the owning test, one step at a time.
        var process: SpawnedProcess?
        let portFile: String

        init(portFile: String) { self.portFile = portFile }

        func start(listen: Int, target: Int) async throws -> Int {
            try? FileManager.default.removeItem(atPath: portFile)
            self.process = try SpawnedProcess(
                "/usr/bin/env",
                [
                    "python3", Repository.root.appendingPathComponent("Tests/Interop/tcp_proxy.py").path, "\(listen)",
                    "\(target)", portFile,
                ])
            return try await GatewayProcessTests.waitForPort(portFile)
        }

        func kill() {
            if let process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        }

        deinit { kill() }
    }

    @Test("the database goes away: sync calls fail as unavailable, the edge serves offline; back, nothing is lost")
    func outage() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try await TestPostgres.withDatabase { settings in
            let proxy = Proxy(portFile: dir + "/proxy.port")
            defer { proxy.kill() }
            let port = try await proxy.start(listen: 0, target: settings.port)
            var proxied = settings
            proxied.port = port
            let config = try MultiGatewayTests.configFile(dir, database: proxied, limits: ["database_wait_ms": 1_000])
            let gateway = try MultiGatewayTests.GatewayProcess(config: config, name: "gateway", directory: dir)
            defer { gateway.kill() }
            let gatewayPort = try await gateway.port()
            let clock = ManualWallClock()
            clock.set(Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                let sql = LedgerSQL(client: database.client)
                var edgeConfiguration = try Network.edgeConfiguration(
                    dir, site: "mall-01", certificates: certificates, gatewayPort: gatewayPort)
                edgeConfiguration.gateway?.authorizeDeadlineMilliseconds = 500
                try await Network.withEdge(edgeConfiguration, merchant: "mall-fashion", clock: clock) { mall in
                    let member = try await mall.points.enroll(
                        Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                    ).member.memberID
                    _ = try await mall.points.earn(
                        Make.earn("R-1", member: member, amount: 80_000), metadata: mall.auth)
                    try await Network.eventually("synced") { try await Network.synced(mall) }
                    #expect(
                        try await sql.int("SELECT points FROM account_balances WHERE account = 'member:\(member)'")
                            == 1_000)

                    // The database goes away.
                    proxy.kill()
                    try await RawSync.withClient(port: gatewayPort, certificates: certificates, certificate: "mall-01")
                    { sync in
                        var pull = Coalition_Sync_V1_PullRequest()
                        pull.protocolVersion = 1
                        pull.pageSize = 10
                        // The gateway answers UNAVAILABLE once database_wait_ms (1 s here) passes
                        // without a connection, well before the call's own deadline.
                        var options = CallOptions.defaults
                        options.timeout = .seconds(10)
                        do {
                            _ = try await sync.pull(pull, options: options)
                            Issue.record("a pull was answered with the database away")
                        } catch let error as RPCError {
                            #expect(error.code == .unavailable, "\(error)")
                            #expect(error.message.contains("ledger database is unavailable"), "\(error)")
                        }
                    }
                    // The edge serves offline: earns and a redemption within the floor limit.
                    for index in 2...6 {
                        _ = try await mall.points.earn(
                            Make.earn("R-\(index)", member: member, amount: 10_000), metadata: mall.auth)
                    }
                    _ = try await mall.points.redeem(
                        Make.redeem("X-1", member: member, bill: 10_000, points: 100), metadata: mall.auth)
                    let atEdge = try await mall.balance(member)
                    #expect(try await !Network.synced(mall))

                    // Back: everything approved reaches the ledger, once.
                    #expect(try await proxy.start(listen: port, target: settings.port) == port)
                    try await Network.eventually("synced after the outage") { try await Network.synced(mall) }
                    #expect(
                        try await sql.int("SELECT points FROM account_balances WHERE account = 'member:\(member)'")
                            == atEdge)
                    #expect(try await sql.int("SELECT COUNT(*) FROM transactions WHERE site_id = 'mall-01'") == 8)
                    try await sql.checkInvariants()
                }
            }
        }
    }
}
