import Core
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import NodeSupport
import TestSupport
import Testing
import Wire

/// Goal: `/metrics` on a running gateway and edge answers a real HTTP client in Prometheus' text
/// format, and the documented series move by what the traffic did (counts and states checked
/// against the calls the test made, not only "present").
@Suite("Metrics") struct MetricsTests {
    static func scrape(_ port: Int) async throws -> PrometheusSamples {
        let answer = try await HTTPResult.get("http://127.0.0.1:\(port)/metrics")
        #expect(answer.status == 200)
        #expect(answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        return try PrometheusSamples(answer.body)
    }

    /// The base names of the series docs/grafana-dashboard.json queries and docs/operations.md's
    /// "Metrics" table lists.
    static func documentedSeries() throws -> Set<String> {
        let root = Repository.root
        let dashboard = try String(
            contentsOf: root.appendingPathComponent("docs/grafana-dashboard.json"), encoding: .utf8)
        let operations = try String(contentsOf: root.appendingPathComponent("docs/operations.md"), encoding: .utf8)
        let section =
            operations.components(separatedBy: "## Metrics").dropFirst().first?
            .components(separatedBy: "## Console").first ?? ""
        var names: Set<String> = []
        for text in [dashboard, section] {
            let pattern = try Regex(#"(coalition|grpc_server|process)_[a-z_]+"#)
            for match in text.matches(of: pattern) {
                var name = String(text[match.range])
                for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                    name = String(name.dropLast(suffix.count))
                }
                names.insert(name)
            }
        }
        return names
    }

    static let earnOK = [
        "grpc_service": "coalition.edge.v1.Points", "grpc_method": "Earn", "grpc_code": "OK",
    ]

    @Test(
        "gateway and edge /metrics count the calls, the commits, the sites and the outbox",
        arguments: LedgerKind.allCases)
    func scrapeBoth(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "office-01"])
        let clock = ManualWallClock()
        var gatewayConfiguration = try Network.gatewayConfiguration(dir, certificates: certificates)
        gatewayConfiguration.metrics = HTTPEndpointSettings(port: 0)
        try await Network.withGateway(gatewayConfiguration, clock: clock, ledger: ledger) { gateway in
            let gatewayMetrics = try await #require(gateway.node.metricsEndpoint).port.value
            var config = try Network.edgeConfiguration(
                dir, site: "mall-01", certificates: certificates, gatewayPort: gateway.port)
            config.metrics = HTTPEndpointSettings(port: 0)
            try await Network.withEdge(config, merchant: "mall-fashion", clock: clock) { mall in
                let edgeMetrics = try await #require(mall.node.metricsEndpoint).port.value
                let before = try await Self.scrape(edgeMetrics)
                let earnsBefore = before.value("grpc_server_handled_total", Self.earnOK) ?? 0

                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                for index in 0..<3 {
                    _ = try await mall.points.earn(
                        Make.earn("R-\(index)", member: member, amount: 10_000), metadata: mall.auth)
                }
                // A refused call is counted under its status.
                await #expect(throws: RPCError.self) {
                    _ = try await mall.points.earn(
                        Make.earn("R-9", member: member, amount: 10_000),
                        metadata: ["authorization": "Bearer not-a-token"])
                }
                try await Network.eventually("synced") { try await Network.synced(mall) }

                let edge = try await Self.scrape(edgeMetrics)
                #expect(edge.value("grpc_server_handled_total", Self.earnOK) == earnsBefore + 3)
                #expect(
                    edge.value(
                        "grpc_server_handled_total",
                        [
                            "grpc_service": "coalition.edge.v1.Points", "grpc_method": "Earn",
                            "grpc_code": "Unauthenticated",
                        ])
                        == 1)
                #expect(
                    edge.value(
                        "grpc_server_handling_seconds_count",
                        ["grpc_service": "coalition.edge.v1.Points", "grpc_method": "Earn"]) == earnsBefore + 4)
                #expect(edge.types["grpc_server_handling_seconds"] == "histogram")
                // Enrol and three earns, each committed in some group: 4 jobs over ≥ 1 batches.
                let batches = try #require(edge.value("coalition_group_commit_batch_size_count", ["writer": "edge"]))
                let jobs = try #require(edge.value("coalition_group_commit_batch_size_sum", ["writer": "edge"]))
                #expect(batches >= 1 && jobs >= 4)
                #expect(
                    (edge.value("coalition_group_commit_duration_seconds_count", ["writer": "edge"]) ?? 0) == batches)
                #expect(edge.value("coalition_edge_outbox_unacknowledged_transactions") == 0)
                #expect(edge.value("coalition_edge_outbox_oldest_unacknowledged_age_seconds") == 0)
                #expect(
                    edge.value("coalition_edge_gateway_last_contact_timestamp_seconds")
                        == Double(clock.now().milliseconds) / 1_000)
                #expect((edge.value("coalition_database_size_bytes") ?? 0) > 0)
                #expect((edge.value("process_resident_memory_bytes") ?? 0) > 1_000_000)

                let central = try await Self.scrape(gatewayMetrics)
                let pushes = central.value(
                    "grpc_server_handled_total",
                    ["grpc_service": "coalition.sync.v1.Sync", "grpc_method": "Push", "grpc_code": "OK"])
                #expect((pushes ?? 0) >= 1)
                #expect(
                    (central.value(
                        "grpc_server_handled_total",
                        ["grpc_service": "coalition.sync.v1.Sync", "grpc_method": "Pull", "grpc_code": "OK"]) ?? 0) >= 1
                )
                #expect(
                    central.value("coalition_site_last_seen_timestamp_seconds", ["site": "mall-01"])
                        == Double(clock.now().milliseconds) / 1_000)
                #expect(central.value("coalition_site_pushed_sequence", ["site": "mall-01"]) == 4)
                #expect(central.value("coalition_site_unsynced_exposure_points", ["site": "mall-01"]) == 0)
                #expect(central.value("coalition_site_offline_risk_points", ["site": "mall-01"]) == 0)
                #expect(central.value("coalition_holds_active") == 0)
                #expect((central.value("coalition_database_size_bytes") ?? 0) > 0)
                if ledger == .sqlite {
                    #expect((central.value("coalition_group_commit_batch_size_sum", ["writer": "push"]) ?? 0) >= 1)
                }
                // The example program's budgeted promotion, untouched by base-rate earns.
                let budgets = central.all("coalition_promotion_budget_left_points")
                #expect(!budgets.isEmpty)
                #expect(budgets.allSatisfy { $0.value > 0 })
                // The daily jobs ran once at start.
                #expect(central.value("coalition_job_runs_total", ["job": "expiry", "outcome": "ok"]) == 1)
                #expect(central.value("coalition_job_duration_seconds_count", ["job": "tier_benefits"]) == 1)

                // Conflicts: the counters move by what the ledger recorded, kind by kind.
                try await ConsoleBrowserTests.refundAfterSpend(gateway: gateway, certificates: certificates)
                let recorded = try await gateway.ledger.monitoringFigures().conflicts
                #expect(recorded.contains { $0.kind == "refund_after_spend" })
                let afterConflicts = try await Self.scrape(gatewayMetrics)
                for tally in recorded {
                    #expect(
                        afterConflicts.value("coalition_conflicts_total", ["kind": tally.kind]) == Double(tally.count))
                    #expect(
                        afterConflicts.value("coalition_conflict_points_total", ["kind": tally.kind])
                            == Double(tally.points.value))
                }
                #expect(afterConflicts.types["coalition_conflicts_total"] == "counter")
                // A second scrape with nothing new moves nothing.
                let again = try await Self.scrape(gatewayMetrics)
                for tally in recorded {
                    #expect(again.value("coalition_conflicts_total", ["kind": tally.kind]) == Double(tally.count))
                }
                // Every series the Grafana dashboard and docs/operations.md name is exported.
                let exported = Set(edge.types.keys).union(afterConflicts.types.keys)
                for name in try Self.documentedSeries() {
                    #expect(exported.contains(name), "\(name) is documented but not exported")
                }
            }
        }
    }

    @Test("an edge cut off from its gateway shows its unacknowledged outbox and the age of its oldest entry")
    func offlineOutbox() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        let clock = ManualWallClock()
        var config = try Network.edgeConfiguration(dir, site: "mall-01", certificates: certificates, gatewayPort: nil)
        config.metrics = HTTPEndpointSettings(port: 0)
        try await Network.withEdge(config, merchant: "mall-fashion", clock: clock) { mall in
            let port = try await #require(mall.node.metricsEndpoint).port.value
            let member = try await mall.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
            ).member.memberID
            _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 10_000), metadata: mall.auth)
            clock.advance(milliseconds: 90_000)
            _ = try await mall.points.earn(Make.earn("R-2", member: member, amount: 10_000), metadata: mall.auth)
            let edge = try await Self.scrape(port)
            #expect(edge.value("coalition_edge_outbox_unacknowledged_transactions") == 3)
            #expect(edge.value("coalition_edge_outbox_oldest_unacknowledged_age_seconds") == 90)
            #expect(edge.value("coalition_edge_gateway_last_contact_timestamp_seconds") == 0, "0: never in contact")
        }
    }

    @Test("the metrics listener answers unknown paths 404 and oversized heads 431, and keeps serving")
    func badRequests() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        var config = try Network.edgeConfiguration(dir, site: "mall-01", certificates: certificates, gatewayPort: nil)
        config.metrics = HTTPEndpointSettings(port: 0)
        try await Network.withEdge(config, merchant: "mall-fashion", clock: ManualWallClock()) { mall in
            let port = try await #require(mall.node.metricsEndpoint).port.value
            #expect(try await HTTPResult.get("http://127.0.0.1:\(port)/nothing").status == 404)
            #expect(try await HTTPResult.get("http://127.0.0.1:\(port)/metrics?%zz=1").status == 200)
            let huge = try? await HTTPResult.get(
                "http://127.0.0.1:\(port)/metrics", headers: ["x-padding": String(repeating: "a", count: 40_000)])
            #expect(huge.map { $0.status == 431 || $0.status == 400 } ?? true, "an oversized head is refused")
            #expect(try await HTTPResult.get("http://127.0.0.1:\(port)/metrics").status == 200)
        }
    }
}

/// Goal: the `metrics:` and `console:` maps are read as docs/operations.md says (defaults, ranges,
/// unknown keys refused with their path), and a gateway without a console says so to an operator.
@Suite("Metrics and console settings") struct ObservabilitySettingsTests {
    static func gatewayConfig(_ directory: String, certificates: TestCertificates, extra: String) throws -> String {
        let path = directory + "/gateway.yaml"
        try """
        database_path: gateway.sqlite
        listen: 127.0.0.1:0
        ca_certificate: \(certificates.path("ca.pem"))
        certificate: \(certificates.path("gateway.pem"))
        private_key: \(certificates.path("gateway.key"))
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("the gateway reads metrics and console maps, with their limits, and refuses what is wrong, naming it")
    func gatewayKeys() throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        let full = try GatewayConfiguration.load(
            file: try Self.gatewayConfig(
                dir, certificates: certificates,
                extra: """
                    metrics:
                      listen: 127.0.0.1:9464
                      header_bytes_max: 4096
                    console:
                      listen: "[::1]:8080"
                      public_url: https://console.example.com
                      port_file: console.port
                      session_ms: 3600000
                      login_link_ms: 60000
                      sessions_max: 10
                      refresh_ms: 0
                    """))
        #expect(full.metrics?.port == 9464 && full.metrics?.headerBytesMax == 4_096)
        #expect(full.metrics?.connectionsMax == 64)
        let console = try #require(full.console)
        #expect(console.endpoint.host == "::1" && console.endpoint.port == 8080)
        #expect(console.endpoint.portFile == dir + "/console.port")
        #expect(console.sessionMilliseconds == 3_600_000 && console.loginLinkMilliseconds == 60_000)
        #expect(console.sessionsMax == 10 && console.refreshMilliseconds == 0 && console.loginLinksMax == 64)
        #expect(console.baseURL(boundPort: 8080) == "https://console.example.com")
        var local = console
        local.publicURL = nil
        #expect(local.baseURL(boundPort: 8080) == "http://[::1]:8080")

        let off = try GatewayConfiguration.load(
            file: try Self.gatewayConfig(dir, certificates: certificates, extra: ""))
        #expect(off.metrics == nil && off.console == nil)

        for (extra, named) in [
            ("metrics:\n  listen: nowhere", "metrics.listen"),
            ("metrics:\n  listen: 127.0.0.1:1\n  colour: red", "metrics.colour"),
            ("console:\n  listen: 127.0.0.1:1\n  session_ms: 5", "console.session_ms"),
            ("console:\n  listen: 127.0.0.1:1\n  public_url: ftp://x", "console.public_url"),
            ("console:\n  port_file: x", "console.listen"),
        ] {
            #expect {
                _ = try GatewayConfiguration.load(
                    file: try Self.gatewayConfig(dir, certificates: certificates, extra: extra))
            } throws: { error in
                "\(error)".contains(named)
            }
        }
    }

    @Test("an edge reads its metrics map")
    func edgeKeys() throws {
        let directory = try TemporaryDirectory()
        let path = try Network.edgeConfigFile(directory.url.path)
        try (String(contentsOfFile: path, encoding: .utf8) + "\nmetrics:\n  listen: 127.0.0.1:0\n  port_file: m.port\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let configuration = try EdgeConfiguration.load(file: path)
        #expect(configuration.metrics?.port == 0)
        #expect(configuration.metrics?.portFile == directory.url.path + "/m.port")
    }

    @Test("a login link from a gateway that serves no console is FAILED_PRECONDITION CONSOLE_OFF")
    func consoleOff() async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        try certificates.issue(.operator("alice"), name: "alice")
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: ManualWallClock()
        ) { gateway in
            #expect(gateway.node.consoleEndpoint == nil)
            _ = try await OpsServiceTests.withOps(port: gateway.port, certificates: certificates, certificate: "alice")
            { ops in
                await expectStatus(.failedPrecondition, reason: "CONSOLE_OFF") {
                    _ = try await ops.createConsoleLogin(Coalition_Ops_V1_CreateConsoleLoginRequest())
                }
            }
        }
    }
}
