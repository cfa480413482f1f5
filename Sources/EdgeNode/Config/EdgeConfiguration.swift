import Core
import Foundation
import NodeSupport
import Wire

/// Everything an edge node needs to run, validated. Built from a config file
/// (`EdgeConfiguration.load(file:)`, keys in docs/edge.md) or in code by tests and the demo.
package struct EdgeConfiguration: Sendable {
    /// The site this node serves; its database refuses to open for any other site.
    package var siteID: SiteID
    /// The SQLite file (created when missing).
    package var databasePath: String
    /// Where the POS API listens. Port 0 picks a free port (see `portFile`).
    package var listenHost: String
    package var listenPort: Int
    /// When set, the bound port is written here once listening (for scripts and tests).
    package var portFile: String?
    /// The program file used while no program has arrived from the gateway (standalone use).
    package var programFile: String?
    /// The network's key for phone-number hashes (32 bytes). Edges store only HMAC-SHA-256(key,
    /// phone); the gateway holds the same key.
    package var phoneHashKey: [UInt8]
    package var limits: EdgeLimits
    /// The link to the gateway; nil runs the edge standalone (every redemption offline).
    package var gateway: GatewayLink?
    /// TLS for the POS API (server certificate and key, PEM); nil serves plaintext (a till LAN
    /// the site controls).
    package var tls: ServerTLSFiles?
    /// Where `/metrics` is served over plain HTTP (`metrics:`); nil serves none.
    package var metrics: HTTPEndpointSettings?

    package init(
        siteID: SiteID, databasePath: String, listenHost: String = "127.0.0.1", listenPort: Int = 0,
        portFile: String? = nil, programFile: String? = nil, phoneHashKey: [UInt8], limits: EdgeLimits = EdgeLimits(),
        gateway: GatewayLink? = nil
    ) {
        self.siteID = siteID
        self.databasePath = databasePath
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.portFile = portFile
        self.programFile = programFile
        self.phoneHashKey = phoneHashKey
        self.limits = limits
        self.gateway = gateway
    }
}

/// How an edge reaches the gateway: mutual TLS with the site's certificate, and the sync timings.
package struct GatewayLink: Sendable, Equatable {
    /// The most gateway addresses a link lists.
    package static let addressesMax = 8

    package var host: String
    package var port: Int
    /// Further gateways sharing the same ledger, tried in turn after `host:port` when a call fails
    /// (`gateway.addresses`; docs/edge.md).
    package var alternates: [Alternate] = []

    package struct Alternate: Sendable, Equatable {
        package var host: String
        package var port: Int

        package init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// Every address, the first one first.
    package var addresses: [Alternate] { [Alternate(host: host, port: port)] + alternates }
    package var caCertificatePath: String
    package var certificatePath: String
    package var privateKeyPath: String
    /// How long a redemption waits for the gateway's authorisation before going offline.
    package var authorizeDeadlineMilliseconds = 300
    /// Most transactions per push (the gateway's limit is 500 by default).
    package var pushBatchMax = 500
    /// Changes asked per pull.
    package var pullPageSize = 500
    /// Time between sync rounds when there is nothing to do.
    package var syncIntervalMilliseconds = 1_000
    /// First and largest wait after a failed round (doubling in between).
    package var backoffInitialMilliseconds = 200
    package var backoffMaxMilliseconds = 30_000
    /// Deadline of one push, pull or recover call.
    package var callTimeoutMilliseconds = 10_000

    package init(host: String, port: Int, caCertificatePath: String, certificatePath: String, privateKeyPath: String) {
        self.host = host
        self.port = port
        self.caCertificatePath = caCertificatePath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }
}

/// The edge node's limits; every one is a documented config key under `limits:` (docs/edge.md).
package struct EdgeLimits: Sendable, Equatable {
    /// Most requests written in one group commit.
    package var groupCommitBatchMax = 256
    /// Most requests waiting for the writer; beyond it a request is RESOURCE_EXHAUSTED.
    package var writeQueueMax = 10_000
    /// Largest request message accepted, in bytes.
    package var requestBytesMax = 64 * 1024
    /// How long a connection waits for SQLite's write lock, in milliseconds.
    package var busyTimeoutMilliseconds = 5_000
    /// How long a graceful shutdown (SIGTERM) may take to answer the calls in flight and write what
    /// they queued before they are cancelled, in milliseconds.
    package var shutdownMilliseconds = 10_000
    /// Most local transactions not yet acknowledged by the gateway; beyond it new transactions
    /// are refused (RESOURCE_EXHAUSTED) until sync catches up.
    package var unacknowledgedTransactionsMax = 1_000_000
    /// Largest page of member history.
    package var historyPageSizeMax = 100
    /// How long a verified terminal token is trusted before it is looked up again, in
    /// milliseconds; a revoked terminal stops working within this time.
    package var terminalCacheMilliseconds = 10_000
    /// Wrong terminal tokens: how many a peer address may send before its failing calls are
    /// delayed, the longest delay and the window they are counted in.
    package var tokenFailures = TokenFailures.Settings()
    /// Largest SQLite file with its WAL, in bytes (0 = no limit); past it writes fail with
    /// STORAGE_FULL.
    package var databaseBytesMax: Int64 = 0
    /// How long transactions the gateway has acknowledged are kept (for History, refunds and
    /// retries at the till) before they are deleted, in milliseconds.
    package var outboxRetentionMilliseconds: Int64 = 30 * 24 * 3_600_000
    /// How often the edge prunes, checkpoints and checks its size against the cap, in
    /// milliseconds.
    package var storageCheckMilliseconds = 60_000
    /// How often the edge gives back what allowances whose stop instant has passed have left, in
    /// milliseconds (docs/protocol.md, "Allowances").
    package var allowanceCheckMilliseconds = 10_000
    /// Connections and calls on the POS port (docs/operations.md, "Connections"). A call must
    /// deliver its request within 10 s here (tills send small requests on a LAN).
    package var connections: ConnectionLimits = {
        var limits = ConnectionLimits()
        limits.requestTimeoutMilliseconds = 10_000
        return limits
    }()

    package init() {}
}

extension EdgeConfiguration {
    /// Reads and validates a YAML config file (keys in docs/edge.md). Every problem is reported
    /// with its key; unknown keys are refused. Relative paths in it are relative to the file.
    package static func load(file path: String) throws -> EdgeConfiguration {
        let url = URL(fileURLWithPath: path)
        let bytes: [UInt8]
        do {
            bytes = Array(try ReadableFile.contents(of: path))
        } catch {
            throw ConfigurationError("\(error)")
        }
        let document: DocumentNode
        do {
            document = try ProgramDocumentParser.parse(bytes)
        } catch {
            throw ConfigurationError("\(path): \(error)")
        }
        let base = url.deletingLastPathComponent()
        func resolve(_ value: String) -> String {
            value.hasPrefix("/") ? value : base.appendingPathComponent(value).path
        }
        let diagnostics = DocumentDiagnostics()
        guard let root = MapReader(document, at: .root, diagnostics: diagnostics) else {
            throw ConfigurationError("\(path): \(diagnostics.errors.map(\.description).joined(separator: "; "))")
        }
        let site = root.slug("site_id", as: SiteID.self)
        let database = root.string("database_path", lengthMax: 4096)
        let listen = root.string("listen", lengthMax: 300)
        let portFile = root.string("port_file", required: false, lengthMax: 4096)
        let programFile = root.string("program_file", required: false, lengthMax: 4096)
        let keyFile = root.string("phone_hash_key_file", lengthMax: 4096)
        var gateway: GatewayLink?
        if let g = root.map("gateway", required: false) {
            let single = g.string("address", required: false, lengthMax: 300)
            var listed: [String] = []
            if let list = g.list("addresses", required: false) {
                if list.count > GatewayLink.addressesMax || list.isEmpty {
                    diagnostics.fail(
                        DocumentPath.root.key("gateway").key("addresses"),
                        "must list 1 to \(GatewayLink.addressesMax) addresses")
                }
                for item in list {
                    if let text = MapReader.scalar(item.node, at: item.path, diagnostics: diagnostics) {
                        listed.append(text)
                    }
                }
            }
            if single != nil, !listed.isEmpty {
                diagnostics.fail(
                    DocumentPath.root.key("gateway").key("addresses"), "give address or addresses, not both")
            } else if single == nil, listed.isEmpty {
                diagnostics.fail(
                    DocumentPath.root.key("gateway").key("address"),
                    "is required (host:port), or addresses: a list of gateways sharing one ledger")
            }
            let address = single ?? listed.first
            let ca = g.string("ca_certificate", lengthMax: 4096)
            let certificate = g.string("certificate", lengthMax: 4096)
            let key = g.string("private_key", lengthMax: 4096)
            var timings: [String: Int] = [:]
            for (name, range) in [
                ("authorize_deadline_ms", 1...60_000), ("push_batch_max", 1...10_000), ("pull_page_size", 1...10_000),
                ("sync_interval_ms", 10...3_600_000), ("backoff_initial_ms", 1...600_000),
                ("backoff_max_ms", 1...3_600_000),
                ("call_timeout_ms", 100...600_000),
            ] as [(String, ClosedRange<Int64>)] {
                if let value = g.integer(name, in: range, required: false) { timings[name] = Int(value) }
            }
            g.finish()
            if let address, let ca, let certificate, let key {
                do {
                    let (host, port) = try Address.parse(address, key: "gateway.address")
                    var link = GatewayLink(
                        host: host, port: port, caCertificatePath: resolve(ca), certificatePath: resolve(certificate),
                        privateKeyPath: resolve(key))
                    link.authorizeDeadlineMilliseconds =
                        timings["authorize_deadline_ms"] ?? link.authorizeDeadlineMilliseconds
                    link.pushBatchMax = timings["push_batch_max"] ?? link.pushBatchMax
                    link.pullPageSize = timings["pull_page_size"] ?? link.pullPageSize
                    link.syncIntervalMilliseconds = timings["sync_interval_ms"] ?? link.syncIntervalMilliseconds
                    link.backoffInitialMilliseconds = timings["backoff_initial_ms"] ?? link.backoffInitialMilliseconds
                    link.backoffMaxMilliseconds = timings["backoff_max_ms"] ?? link.backoffMaxMilliseconds
                    link.callTimeoutMilliseconds = timings["call_timeout_ms"] ?? link.callTimeoutMilliseconds
                    for (index, text) in listed.enumerated().dropFirst() {
                        guard let (host, port) = try? Address.parse(text, key: "gateway.addresses") else {
                            diagnostics.fail(
                                DocumentPath.root.key("gateway").key("addresses").index(index),
                                "must be host:port, for example gateway-2.example:7443 (found '\(text.prefix(100))')")
                            continue
                        }
                        link.alternates.append(GatewayLink.Alternate(host: host, port: port))
                    }
                    gateway = link
                } catch {
                    diagnostics.fail(
                        DocumentPath.root.key("gateway").key("address"),
                        "must be host:port, for example gateway.example:7443")
                }
            }
        }
        var tls: ServerTLSFiles?
        if let t = root.map("tls", required: false) {
            let certificate = t.string("certificate", lengthMax: 4096)
            let key = t.string("private_key", lengthMax: 4096)
            t.finish()
            if let certificate, let key {
                tls = ServerTLSFiles(certificatePath: resolve(certificate), privateKeyPath: resolve(key))
            }
        }
        let metrics = root.map("metrics", required: false).flatMap { map in
            HTTPEndpointSettings.read(map, address: { try? Address.parse($0) }, resolve: resolve)
        }
        var limits = EdgeLimits()
        if let l = root.map("limits", required: false) {
            func int(_ key: String, _ range: ClosedRange<Int64>, _ target: inout Int) {
                if let value = l.integer(key, in: range, required: false) { target = Int(value) }
            }
            int("group_commit_batch_max", 1...10_000, &limits.groupCommitBatchMax)
            int("write_queue_max", 1...1_000_000, &limits.writeQueueMax)
            int("request_bytes_max", 1024...16_777_216, &limits.requestBytesMax)
            int("busy_timeout_ms", 1...600_000, &limits.busyTimeoutMilliseconds)
            int("shutdown_ms", 100...600_000, &limits.shutdownMilliseconds)
            int("unacknowledged_transactions_max", 1...100_000_000, &limits.unacknowledgedTransactionsMax)
            int("history_page_size_max", 1...1_000, &limits.historyPageSizeMax)
            int("terminal_cache_ms", 0...3_600_000, &limits.terminalCacheMilliseconds)
            int("token_failures_before_delay", 0...1_000_000, &limits.tokenFailures.failuresBeforeDelay)
            int("token_failure_delay_max_ms", 0...60_000, &limits.tokenFailures.delayMaxMilliseconds)
            if let window = l.integer("token_failure_window_ms", in: 1_000...86_400_000, required: false) {
                limits.tokenFailures.windowMilliseconds = window
            }
            if let bytes = l.integer("database_bytes_max", in: 0...Int64.max, required: false) {
                limits.databaseBytesMax = bytes
            }
            if let retention = l.integer("outbox_retention_ms", in: 60_000...3_153_600_000_000, required: false) {
                limits.outboxRetentionMilliseconds = retention
            }
            int("storage_check_ms", 100...86_400_000, &limits.storageCheckMilliseconds)
            int("allowance_check_ms", 100...3_600_000, &limits.allowanceCheckMilliseconds)
            limits.connections.read(l)
            l.finish()
        }
        root.finish()
        var address: (String, Int)?
        if let listen {
            do {
                address = try Address.parse(listen, key: "listen")
            } catch {
                diagnostics.fail(DocumentPath.root.key("listen"), "must be host:port, for example 127.0.0.1:7001")
            }
        }
        var key: [UInt8]?
        if let keyFile {
            let text = try? String(contentsOf: URL(fileURLWithPath: resolve(keyFile)), encoding: .utf8)
            key = text.flatMap { Hex.bytes($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if key?.count != 32 {
                diagnostics.fail(
                    DocumentPath.root.key("phone_hash_key_file"),
                    "cannot read 64 hexadecimal characters (32 bytes) from \(resolve(keyFile))")
            }
            do {
                try PrivateFiles.requirePrivate(resolve(keyFile), what: "the phone-hash key")
            } catch {
                diagnostics.fail(DocumentPath.root.key("phone_hash_key_file"), "\(error)")
            }
        }
        guard diagnostics.errors.isEmpty, let site, let database, let address, let key else {
            throw ConfigurationError(
                "\(path) is not a valid edge configuration:\n"
                    + diagnostics.errors.map { "  \($0.path): \($0.message)" }.joined(separator: "\n"))
        }
        var configuration = EdgeConfiguration(
            siteID: site, databasePath: resolve(database), listenHost: address.0, listenPort: address.1,
            portFile: portFile.map(resolve), programFile: programFile.map(resolve), phoneHashKey: key, limits: limits,
            gateway: gateway)
        configuration.tls = tls
        configuration.metrics = metrics
        return configuration
    }
}
