import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import LocalNetwork
import Logging
import NodeSupport
import TestSupport
import Testing
import Wire

/// Certificates of a test network (`LocalNetwork`), made in code and written as PEM files.
struct TestCertificates: @unchecked Sendable {
    // @unchecked: immutable once made (its CA and the files it wrote), only read afterwards.
    let network: LocalNetwork
    var ca: CertificateAuthority { network.authority }
    var directory: String { network.directory }

    init(directory: String, sites: [String]) throws {
        network = try LocalNetwork(directory: directory, sites: sites, caName: "Coalition test CA")
    }

    /// A certificate valid from an hour before `now` for `days`, by this network's CA or `authority`.
    @discardableResult
    func issue(
        _ identity: PeerIdentity, name: String, now: Date = Date(), days: Int = 30,
        by authority: CertificateAuthority? = nil
    ) throws -> CertificateAuthority.Issued {
        try network.issue(identity, name: name, now: now, days: days, by: authority)
    }

    func path(_ name: String) -> String { network.path(name) }
}

/// A running gateway, on either store.
struct GatewayHarness: Sendable {
    let node: GatewayNode
    let port: Int
    /// The SQLite store (tests that read its file; a gateway on PostgreSQL has none).
    var store: SQLiteLedgerStore { node.store }
    /// The ledger, whichever store it is on.
    var ledger: any LedgerStore { node.ledger }
    /// SQL reads of the ledger on either store.
    var sql: LedgerSQL { LedgerSQL(node: node) }

    /// A member's ledger balance.
    func balance(_ member: String) async throws -> Int64 {
        try await account("member:\(member)")
    }

    /// Member ids in the order they were enrolled.
    func memberIDs() async throws -> [String] {
        try await sql.strings("SELECT member_id FROM members ORDER BY enrolled_at_ms, changed_position")
    }

    /// Holds still active (neither consumed nor released; expiry not considered).
    func activeHolds() async throws -> Int {
        Int(try await sql.int("SELECT COUNT(*) FROM holds WHERE status = 'active'") ?? -1)
    }

    func account(_ key: String) async throws -> Int64 {
        try await sql.int("SELECT points FROM account_balances WHERE account = ?", [key]) ?? 0
    }

    func conflicts(kind: String) async throws -> [(site: String, points: Int64)] {
        try await sql.rows("SELECT site_id, points FROM conflicts WHERE kind = ? ORDER BY conflict_id", [kind]).map {
            ($0[0] ?? "", Int64($0[1] ?? "") ?? 0)
        }
    }

    func flags(_ site: String) async throws -> String {
        try await sql.strings("SELECT flags FROM sites WHERE site_id = ?", [site]).first ?? ""
    }

    /// The ledger's invariants (`LedgerSQL.checkInvariants`).
    func checkInvariants() async throws {
        try await sql.checkInvariants()
    }
}

extension LedgerSQL {
    /// Invariants: postings sum to zero per transaction and overall, the balance cache equals the
    /// postings, no member is below zero, each member's lots sum to its balance, the chains are whole.
    func checkInvariants(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let unbalanced = try await int(
            "SELECT COUNT(*) FROM (SELECT position FROM postings GROUP BY position HAVING SUM(points) != 0) AS u")
        #expect(unbalanced == 0, sourceLocation: sourceLocation)
        #expect(
            try await int("SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM postings") == 0,
            sourceLocation: sourceLocation)
        let drift = try await int(
            """
            SELECT COUNT(*) FROM account_balances b
            WHERE b.points != (SELECT COALESCE(SUM(points), 0) FROM postings p WHERE p.account = b.account)
            """)
        #expect(drift == 0, sourceLocation: sourceLocation)
        #expect(
            try await int("SELECT COUNT(*) FROM account_balances WHERE account LIKE 'member:%' AND points < 0") == 0,
            sourceLocation: sourceLocation)
        // Every point a member holds is in a lot: the lots of each member sum to their balance
        // plus what their active allowances have left (escrowed points are still theirs).
        let lotDrift = try await int(
            """
            SELECT COUNT(*) FROM account_balances b WHERE b.account LIKE 'member:%'
              AND b.points + (SELECT COALESCE(SUM(granted_points - spent_points - released_points), 0) FROM allowances a
                  WHERE 'member:' || a.member_id = b.account AND a.status = 'active')
                != (SELECT COALESCE(SUM(remaining_points), 0) FROM lots l WHERE 'member:' || l.member_id = b.account)
            """)
        #expect(lotDrift == 0, sourceLocation: sourceLocation)
        // Each site's escrow holds what its active allowances have left, and nothing else.
        let escrowDrift = try await int(
            """
            SELECT COUNT(*) FROM (
              SELECT 'escrow:' || site_id AS account, SUM(granted_points - spent_points - released_points) AS points
              FROM allowances WHERE status = 'active' GROUP BY site_id
            ) AS e FULL OUTER JOIN (SELECT account, points FROM account_balances WHERE account LIKE 'escrow:%') AS b
              ON b.account = e.account
            WHERE COALESCE(b.points, 0) != COALESCE(e.points, 0)
            """)
        #expect(escrowDrift == 0, sourceLocation: sourceLocation)
        #expect(
            try await int(
                "SELECT COUNT(*) FROM allowances WHERE spent_points < 0 OR released_points < 0 OR spent_points + released_points > granted_points OR (status != 'active' AND spent_points + released_points != granted_points)"
            ) == 0, sourceLocation: sourceLocation)
        #expect(try await LedgerChains.faults(self) == [], sourceLocation: sourceLocation)
    }
}

/// A running edge linked to the gateway, with a client on its POS API.
struct LinkedEdge: Sendable {
    let node: EdgeNode
    let points: Coalition_Edge_V1_Points.Client<HTTP2ClientTransport.Posix>
    let parking: Coalition_Edge_V1_Parking.Client<HTTP2ClientTransport.Posix>
    let vouchers: Coalition_Edge_V1_Vouchers.Client<HTTP2ClientTransport.Posix>
    let token: String

    var auth: Metadata { ["authorization": .string("Bearer \(token)")] }

    func balance(_ member: String) async throws -> Int64 {
        var request = Coalition_Edge_V1_GetBalanceRequest()
        request.memberID = member
        return try await points.getBalance(request, metadata: auth).member.balancePoints
    }
}

enum Network {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let phoneKey = Hex.bytes(String(repeating: "cd", count: 32))!

    /// The example program with a 100-point minimum redemption.
    static func programFile(_ directory: String) throws -> String {
        let path = directory + "/program.yaml"
        try Repository.exampleProgram(replacing: [("minimum_points: 500", "minimum_points: 100")])
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func gatewayConfiguration(_ directory: String, certificates: TestCertificates) throws -> GatewayConfiguration
    {
        var limits = GatewayLimits()
        limits.clockSkewMaxMilliseconds = 10 * 60 * 1000
        // The suite's parallel load on two cores can hold a client's TLS and HTTP/2 greeting up
        // for seconds; the tests of this limit set their own.
        limits.connections.handshakeTimeoutMilliseconds = 60_000
        return certificates.network.gatewayConfiguration(
            database: directory + "/gateway.sqlite", programFile: try programFile(directory), limits: limits)
    }

    /// Runs `body` with a gateway serving mTLS on a free loopback port, its ledger in `ledger`
    /// (PostgreSQL: a new database of the test server, dropped afterwards).
    static func withGateway<Result: Sendable>(
        _ configuration: GatewayConfiguration, clock: ManualWallClock, ledger: LedgerKind = .sqlite,
        _ body: (GatewayHarness) async throws -> Result
    ) async throws -> Result {
        guard ledger == .postgres, configuration.postgres == nil else {
            return try await LocalNetwork.withGateway(configuration, clock: clock, logger: quiet) { node, port in
                try #require(
                    (node.ledger is PostgresLedgerStore) == (configuration.postgres != nil),
                    "the gateway's ledger is on the configured store")
                return try await body(GatewayHarness(node: node, port: port))
            }
        }
        return try await withLedger(ledger, configuration) { configuration in
            try await withGateway(configuration, clock: clock, body)
        }
    }

    /// Runs `body` with `configuration` on a ledger of `ledger` that outlives gateways started and
    /// stopped inside it (PostgreSQL: a new database, dropped afterwards).
    static func withLedger<Result: Sendable>(
        _ ledger: LedgerKind, _ configuration: GatewayConfiguration,
        _ body: (GatewayConfiguration) async throws -> Result
    ) async throws -> Result {
        guard ledger == .postgres else { return try await body(configuration) }
        return try await TestPostgres.withDatabase { settings in
            var configuration = configuration
            configuration.postgres = settings
            return try await body(configuration)
        }
    }

    static func edgeConfiguration(
        _ directory: String, site: String, certificates: TestCertificates, gatewayPort: Int?,
        certificateName: String? = nil
    ) throws -> EdgeConfiguration {
        var configuration = try certificates.network.edgeConfiguration(
            site: site, database: directory + "/\(site).sqlite", programFile: try programFile(directory),
            phoneHashKey: phoneKey, gatewayPort: gatewayPort, certificate: certificateName)
        configuration.limits.connections.handshakeTimeoutMilliseconds = 60_000
        return configuration
    }

    /// Runs `body` with an edge serving on a free port, a terminal for `merchant`.
    static func withEdge<Result: Sendable>(
        _ configuration: EdgeConfiguration, merchant: String, clock: ManualWallClock,
        _ body: (LinkedEdge) async throws -> Result
    ) async throws -> Result {
        try await LocalNetwork.withEdge(configuration, clock: clock, logger: quiet, merchants: [merchant]) { edge in
            try await body(
                LinkedEdge(
                    node: edge.node, points: edge.points, parking: edge.parking,
                    vouchers: Coalition_Edge_V1_Vouchers.Client(wrapping: edge.client), token: edge.tokens[merchant]![0]
                ))
        }
    }

    /// Runs `body` with a gateway and one edge of `site` linked to it (a terminal for
    /// `merchant`), on one manual clock; `edit` changes the edge's configuration first.
    static func withLinkedEdge(
        site: String = "mall-01", merchant: String = "mall-fashion", edit: (inout EdgeConfiguration) -> Void = { _ in },
        ledger: LedgerKind = .sqlite, _ body: (GatewayHarness, LinkedEdge, ManualWallClock) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: [site])
        let clock = ManualWallClock()
        try await withGateway(try gatewayConfiguration(dir, certificates: certificates), clock: clock, ledger: ledger) {
            gateway in
            var config = try edgeConfiguration(dir, site: site, certificates: certificates, gatewayPort: gateway.port)
            edit(&config)
            try await withEdge(config, merchant: merchant, clock: clock) { edge in try await body(gateway, edge, clock)
            }
        }
    }

    /// A gateway config file in `directory` (certificates under `certificates`, relative to it),
    /// serving the test program on a free loopback port, with `limits` added; returns its path.
    static func gatewayConfigFile(
        _ directory: String, certificates: String = ".", limits: [String: Int] = [:]
    ) throws -> String {
        let path = directory + "/gateway.yaml"
        try
            ("""
        database_path: gateway.sqlite
        listen: 127.0.0.1:0
        ca_certificate: \(certificates)/ca.pem
        certificate: \(certificates)/gateway.pem
        private_key: \(certificates)/gateway.key
        program_file: \(try programFile(directory))

        """ + limitsYAML(limits)).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// An edge config file for mall-01 in `directory` with an owner-only `phone.key` beside it,
    /// linked to a gateway when `gatewayAddress` is given (the site's certificate under
    /// `certificates`), with `limits` added; returns its path.
    static func edgeConfigFile(
        _ directory: String, gatewayAddress: String? = nil, certificates: String = ".", limits: [String: Int] = [:]
    ) throws -> String {
        try PrivateFiles.write(String(repeating: "cd", count: 32), to: directory + "/phone.key")
        let path = directory + "/edge.yaml"
        var text = """
            site_id: mall-01
            database_path: mall-01.sqlite
            listen: 127.0.0.1:0
            program_file: \(Repository.exampleProgram.path)
            phone_hash_key_file: phone.key

            """
        if let gatewayAddress {
            text += """
                gateway:
                  address: \(gatewayAddress)
                  ca_certificate: \(certificates)/ca.pem
                  certificate: \(certificates)/mall-01.pem
                  private_key: \(certificates)/mall-01.key

                """
        }
        try (text + limitsYAML(limits)).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private static func limitsYAML(_ limits: [String: Int]) -> String {
        limits.isEmpty
            ? "" : "limits:\n" + limits.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)\n" }.joined()
    }

    /// Waits (at most 20 s) until `condition` holds; fails the test otherwise. Sync is
    /// asynchronous, so tests wait for convergence rather than assume a timing.
    static func eventually(
        _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async throws -> Bool
    ) async throws {
        var lastError: (any Error)?
        for _ in 0..<400 {
            do {
                if try await condition() { return }
            } catch {
                lastError = error  // not there yet (for example a member not pulled yet)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record(
            "timed out waiting for: \(what); last error: \(lastError.map { "\($0)" } ?? "none")",
            sourceLocation: sourceLocation)
    }

    /// The outbox of an edge is fully acknowledged.
    static func synced(_ edge: LinkedEdge) async throws -> Bool {
        try await edge.node.ledger.database.pool.read { db in
            let max = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM outbox") ?? 0
            let acked = try Int64.fetchOne(db, sql: "SELECT acknowledged_sequence FROM sync_state WHERE id = 1") ?? 0
            return max == acked
        }
    }
}

/// Request builders.
enum Make {
    static func enroll(_ id: String, phone: String) -> Coalition_Edge_V1_EnrollRequest {
        var request = Coalition_Edge_V1_EnrollRequest()
        request.requestID = id
        request.phone = phone
        return request
    }

    static func earn(_ id: String, member: String, amount: Int64) -> Coalition_Edge_V1_EarnRequest {
        var request = Coalition_Edge_V1_EarnRequest()
        request.requestID = id
        request.memberID = member
        request.amountMinor = amount
        return request
    }

    static func redeem(_ id: String, member: String, bill: Int64, points: Int64) -> Coalition_Edge_V1_RedeemRequest {
        var request = Coalition_Edge_V1_RedeemRequest()
        request.requestID = id
        request.memberID = member
        request.billAmountMinor = bill
        request.points = points
        return request
    }
}
