// Goal (#18, Done when: "a budgeted promotion run from three offline sites never exceeds its
// budget"): three real `coalition edge serve` processes (a mall, a hotel, a car park) pull their
// quotas of a 3,000-point dinner bonus, lose their link to the gateway (a TCP proxy process,
// killed), and each serves ten dinners offline. Each gives the bonus only within its quota (a
// third of the budget: no site had used it), so after healing the ledger holds exactly the
// receipts' bonuses, 3,000 points, with nothing cut and no conflict.
import Core
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import NodeSupport
import TestSupport
import Testing
import Wire

@Suite("Promotion quotas and three offline edge processes")
struct PromotionQuotaProcessTests {
    static let sites = [("mall-01", "mall-fashion"), ("hotel-01", "hotel-restaurant"), ("park-01", "park-operator")]

    @Test("three edges cut off give the dinner bonus within their quotas: the budget holds, nothing is cut")
    func threeOfflineSites() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: Self.sites.map(\.0))
        let configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        try PromotionQuotaTests.threeSites(budget: 3_000)(dir)
        // The edge processes run on the real clock; the gateway's starts at the same instant.
        let clock = ManualWallClock()
        clock.set(Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
        try await Network.withGateway(configuration, clock: clock) { gateway in
            let proxy = DatabaseOutageTests.Proxy(portFile: dir + "/proxy.port")
            defer { proxy.kill() }
            let proxyPort = try await proxy.start(listen: 0, target: gateway.port)
            try PrivateFiles.write(String(repeating: "cd", count: 32), to: dir + "/phone.key")
            var edges: [(site: String, process: EdgeProcess, auth: Metadata)] = []
            defer { for edge in edges { edge.process.signal(SIGKILL) } }
            for (site, merchant) in Self.sites {
                let config = dir + "/\(site).yaml"
                try """
                site_id: \(site)
                database_path: \(site).sqlite
                listen: 127.0.0.1:0
                program_file: program.yaml
                phone_hash_key_file: phone.key
                gateway:
                  address: 127.0.0.1:\(proxyPort)
                  ca_certificate: ca.pem
                  certificate: \(site).pem
                  private_key: \(site).key
                  sync_interval_ms: 50
                  backoff_initial_ms: 20
                  backoff_max_ms: 200
                """.write(toFile: config, atomically: true, encoding: .utf8)
                let token = try await Binary.run([
                    "edge", "terminal", "add", "--config", config, "--merchant", merchant, "--name", "till-1",
                ]).trimmingCharacters(in: .whitespacesAndNewlines)
                edges.append(
                    (
                        site, try EdgeProcess(config: config, directory: dir),
                        ["authorization": .string("Bearer \(token)")]
                    ))
            }
            func withPoints<R: Sendable>(
                _ edge: EdgeProcess,
                _ body: (Coalition_Edge_V1_Points.Client<HTTP2ClientTransport.Posix>) async throws -> R
            ) async throws -> R {
                let port = try await edge.port()
                return try await withGRPCClient(
                    transport: .http2NIOPosix(
                        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
                ) { try await body(.init(wrapping: $0)) }
            }
            // Each site enrols a member, and pulls its quota (read from its database file).
            var members: [String: String] = [:]
            for (index, edge) in edges.enumerated() {
                members[edge.site] = try await withPoints(edge.process) { points in
                    try await points.enroll(
                        Make.enroll("E-\(index)", phone: "+861380013800\(index)"), metadata: edge.auth
                    ).member.memberID
                }
            }
            for edge in edges {
                let file = try DatabaseQueue(path: dir + "/\(edge.site).sqlite")
                try await Network.eventually("\(edge.site) holds its quota") {
                    try await file.read { db in
                        try Int64.fetchOne(db, sql: "SELECT points_left FROM promotion_budgets") == 1_000
                            && Int64.fetchOne(db, sql: "SELECT promotion_quota_issue FROM sync_state") ?? 0 > 0
                    }
                }
                try file.close()
            }
            proxy.kill()
            // Offline: ten ¥100 dinners at each site. A third of the budget each (no site had used
            // it): six full bonuses of 150, then the 100 left, then none.
            var bonuses: [String: [Int64]] = [:]
            for edge in edges {
                bonuses[edge.site] = try await withPoints(edge.process) { points in
                    var given: [Int64] = []
                    for index in 1...10 {
                        let earned = try await points.earn(
                            Make.earn("D-\(edge.site)-\(index)", member: members[edge.site]!, amount: 10_000),
                            metadata: edge.auth)
                        given.append(
                            earned.breakdown.components.filter { $0.kind == .promotion }.reduce(0) { $0 + $1.points })
                    }
                    return given
                }
            }
            for site in Self.sites.map(\.0) {
                #expect(bonuses[site] == [150, 150, 150, 150, 150, 150, 100, 0, 0, 0], "\(site)")
            }
            // Healed: every dinner reaches the ledger, with the bonus its receipt showed.
            #expect(try await proxy.start(listen: proxyPort, target: gateway.port) == proxyPort)
            try await Network.eventually("every dinner is posted") {
                try await gateway.sql.int("SELECT COUNT(*) FROM transactions WHERE kind = 'earn'") == 30
            }
            var posted: Int64 = 0
            for (_, merchant) in Self.sites { posted -= try await gateway.account("bonus:\(merchant)") }
            #expect(posted == bonuses.values.joined().reduce(0, +))
            #expect(posted == 3_000)
            #expect(try await gateway.conflicts(kind: "promotion_budget").isEmpty)
            for edge in edges {
                edge.process.signal(SIGTERM)
                #expect(try await edge.process.waitForExit() == 0)
            }
            edges = []
            try await gateway.checkInvariants()
        }
    }
}
