import Core
import EdgeNode
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import Logging
import NodeSupport
import Wire

/// A Coalition network on this machine, for the demo, the benchmarks and the tests: a CA and the
/// certificates of a gateway, sites and operators written as PEM files in one folder, and the
/// nodes started on loopback ports chosen by the system and stopped (gracefully) when the body
/// that uses them returns or throws.
///
/// File names in the folder: `ca.pem` (and `ca.key`), `gateway.pem`/`.key` (for 127.0.0.1),
/// `SITE.pem`/`.key` per site, `operator-NAME.pem`/`.key` per operator, `voucher-1.key` (the
/// gateway's voucher signing key, id 1).
package struct LocalNetwork: Sendable {
    package let directory: String
    package let authority: CertificateAuthority

    /// Creates the CA and writes the certificates of the gateway, `sites` and `operators`.
    package init(directory: String, sites: [String], operators: [String] = [], caName: String = "Coalition CA")
        throws
    {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        authority = try CertificateAuthority.create(name: caName)
        try write(authority.certificatePEM, "ca.pem")
        try write(authority.privateKeyPEM, "ca.key")
        try issue(.gateway("127.0.0.1"), name: "gateway")
        for site in sites {
            guard let id = SiteID(site) else { throw ConfigurationError("'\(site)' is not a site id") }
            try issue(.site(id), name: site)
        }
        for name in operators { try issue(.operator(name), name: "operator-\(name)") }
        try write(VoucherSeal.newKeyText(), "voucher-1.key")
    }

    /// The path of `name` in the folder.
    package func path(_ name: String) -> String { directory + "/" + name }

    /// Issues a certificate for `identity` (by this network's CA unless another is given) and
    /// writes it as NAME.pem / NAME.key.
    @discardableResult
    package func issue(
        _ identity: PeerIdentity, name: String, now: Date? = nil, days: Int = CertificateAuthority.leafValidityDays,
        by other: CertificateAuthority? = nil
    ) throws -> CertificateAuthority.Issued {
        let authority = other ?? self.authority
        let issued =
            if let now {
                try authority.issue(
                    identity, now: now, validityDays: days, notValidBefore: now.addingTimeInterval(-3600))
            } else {
                try authority.issue(identity, validityDays: days)
            }
        try write(issued.certificatePEM, "\(name).pem")
        try write(issued.privateKeyPEM, "\(name).key")
        return issued
    }

    /// Writes `text` to `name` in the folder (creating subfolders); a `.key` file is private
    /// (0600 from its first byte), as a node requires.
    package func write(_ text: String, _ name: String) throws {
        try Self.write(text, to: path(name))
    }

    /// Writes `text` to the file at `path` (creating its folder); a `.key` file is private.
    package static func write(_ text: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if path.hasSuffix(".key") {
            try PrivateFiles.write(text, to: path)
        } else {
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
    }

    // MARK: Configurations

    /// A gateway on a free loopback port with this network's certificates.
    package func gatewayConfiguration(
        database: String, programFile: String?, limits: GatewayLimits = GatewayLimits()
    ) -> GatewayConfiguration {
        var configuration = GatewayConfiguration(
            databasePath: database, caCertificatePath: path("ca.pem"), certificatePath: path("gateway.pem"),
            privateKeyPath: path("gateway.key"), programFile: programFile, limits: limits)
        configuration.voucherKey = try? VoucherSigningKey(
            id: 1, text: String(contentsOfFile: path("voucher-1.key"), encoding: .utf8))
        return configuration
    }

    /// An edge of `site`, linked to the gateway at `gatewayPort` (none: standalone) with the
    /// certificate `certificate` (the site's own by default). The link syncs every 50 ms and backs
    /// off from 50 ms to 500 ms, so a local network converges in moments.
    package func edgeConfiguration(
        site: String, database: String, programFile: String, phoneHashKey: [UInt8], gatewayPort: Int?,
        certificate: String? = nil
    ) throws -> EdgeConfiguration {
        guard let id = SiteID(site) else { throw ConfigurationError("'\(site)' is not a site id") }
        var configuration = EdgeConfiguration(
            siteID: id, databasePath: database, programFile: programFile, phoneHashKey: phoneHashKey)
        if let gatewayPort {
            let name = certificate ?? site
            var link = GatewayLink(
                host: "127.0.0.1", port: gatewayPort, caCertificatePath: path("ca.pem"),
                certificatePath: path("\(name).pem"), privateKeyPath: path("\(name).key"))
            link.syncIntervalMilliseconds = 50
            link.backoffInitialMilliseconds = 50
            link.backoffMaxMilliseconds = 500
            configuration.gateway = link
        }
        return configuration
    }

    // MARK: Running nodes

    /// Runs `body` with a gateway serving on its (free) port (with `extraServices` beside its own);
    /// stops it gracefully afterwards.
    package static func withGateway<Result: Sendable>(
        _ configuration: GatewayConfiguration, clock: any WallClock, logger: Logger,
        extraServices: [any RegistrableRPCService] = [], _ body: (GatewayNode, Int) async throws -> Result
    ) async throws -> Result {
        try await GatewayNode.with(
            configuration: configuration, clock: clock, logger: logger, extraServices: extraServices
        ) { node in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await node.run() }
                do {
                    let result = try await body(node, try await node.listeningPort)
                    node.beginGracefulShutdown()
                    try await group.waitForAll()
                    return result
                } catch {
                    node.beginGracefulShutdown()
                    try? await group.waitForAll()
                    throw error
                }
            }
        }
    }

    /// Runs `body` with an edge serving on its (free) port, `terminalsPerMerchant` terminal tokens
    /// for each of `merchants`, and `connections` clients to its POS API, each its own connection
    /// (TLS trusting `trustRoots` when the edge serves TLS, plaintext otherwise); stops them all
    /// gracefully afterwards.
    package static func withEdge<Result: Sendable>(
        _ configuration: EdgeConfiguration, clock: any WallClock, logger: Logger, merchants: [String],
        terminalsPerMerchant: Int = 1, connections: Int = 1, trustRoots: String? = nil,
        extraServices: [any RegistrableRPCService] = [], _ body: (RunningEdge) async throws -> Result
    ) async throws -> Result {
        let node = try EdgeNode(
            configuration: configuration, clock: clock, logger: logger, extraServices: extraServices)
        var tokens: [String: [String]] = [:]
        for merchant in merchants {
            guard let id = MerchantID(merchant) else { throw ConfigurationError("'\(merchant)' is not a merchant id") }
            tokens[merchant] = try (0..<terminalsPerMerchant).map { index in
                try node.terminals.issue(
                    merchant: id, terminalID: "\(merchant)-\(index)-\(UUID().uuidString.prefix(8))")
            }
        }
        let issued = tokens
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await node.run() }
            let port = try await node.listeningPort
            let security: HTTP2ClientTransport.Posix.TransportSecurity =
                if let trustRoots {
                    .tls { $0.trustRoots = .certificates([.file(path: trustRoots, format: .pem)]) }
                } else {
                    .plaintext
                }
            let clients = try (0..<max(1, connections)).map { _ in
                GRPCClient(
                    transport: try .http2NIOPosix(
                        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: security))
            }
            for client in clients {
                group.addTask {
                    // A body that returns at once may stop the client before its connections start.
                    do { try await client.runConnections() } catch let error as RuntimeError
                        where error.code == .clientIsStopped
                    {}
                }
            }
            let edge = RunningEdge(node: node, port: port, clients: clients, tokens: issued)
            do {
                let result = try await body(edge)
                clients.forEach { $0.beginGracefulShutdown() }
                node.beginGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                clients.forEach { $0.beginGracefulShutdown() }
                node.beginGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}

/// An edge node serving, with a client to its POS API and terminal tokens.
package struct RunningEdge: Sendable {
    package let node: EdgeNode
    package let port: Int
    /// Clients to the POS API, each its own connection.
    package let clients: [GRPCClient<HTTP2ClientTransport.Posix>]
    /// Terminal tokens by merchant.
    package let tokens: [String: [String]]

    /// The first client.
    package var client: GRPCClient<HTTP2ClientTransport.Posix> { clients[0] }

    package var points: Coalition_Edge_V1_Points.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    package var parking: Coalition_Edge_V1_Parking.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    package var vouchers: Coalition_Edge_V1_Vouchers.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }

    /// The metadata of a call from `merchant`'s terminal number `terminal`.
    package func auth(_ merchant: String, terminal: Int = 0) -> Metadata {
        ["authorization": .string("Bearer \(tokens[merchant]?[terminal] ?? "")")]
    }

    /// A member's balance as the edge shows it to `merchant`.
    package func balance(_ member: String, as merchant: String) async throws -> Int64 {
        var request = Coalition_Edge_V1_GetBalanceRequest()
        request.memberID = member
        return try await points.getBalance(request, metadata: auth(merchant)).member.balancePoints
    }
}
