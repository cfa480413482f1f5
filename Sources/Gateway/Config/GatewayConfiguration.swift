import Core
import Crypto
import Foundation
import NodeSupport
import Wire

/// Everything a gateway needs to run, validated (keys in docs/protocol.md).
package struct GatewayConfiguration: Sendable {
    /// The SQLite ledger file (`database_path`); empty when the ledger is on PostgreSQL.
    package var databasePath: String
    /// The PostgreSQL ledger (`database: postgres://…`), when the config names one.
    package var postgres: PostgresSettings?
    package var listenHost: String
    package var listenPort: Int
    package var portFile: String?
    /// The network CA every client certificate must chain to.
    package var caCertificatePath: String
    /// The gateway's own server certificate and key.
    package var certificatePath: String
    package var privateKeyPath: String
    /// Published as a new version at start when it differs from the latest one.
    package var programFile: String?
    /// The network's phone-hash key (as the edges'), for operators' lookups by phone; optional.
    package var phoneHashKey: [UInt8]?
    /// The key the gateway signs the points mall's vouchers with (`voucher_key_file`,
    /// `voucher_key_id`); without it, items that issue vouchers cannot be ordered.
    package var voucherKey: VoucherSigningKey?
    package var limits: GatewayLimits
    /// Where `/metrics` is served over plain HTTP (`metrics:`); nil serves none.
    package var metrics: HTTPEndpointSettings?
    /// The web console (`console:`); nil serves none.
    package var console: ConsoleSettings?

    package init(
        databasePath: String, listenHost: String = "127.0.0.1", listenPort: Int = 0, portFile: String? = nil,
        caCertificatePath: String, certificatePath: String, privateKeyPath: String, programFile: String?,
        limits: GatewayLimits = GatewayLimits()
    ) {
        self.databasePath = databasePath
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.portFile = portFile
        self.caCertificatePath = caCertificatePath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.programFile = programFile
        self.limits = limits
    }

    /// Reads and validates a YAML config file; unknown keys are refused, relative paths are
    /// relative to the file.
    package static func load(file path: String) throws -> GatewayConfiguration {
        let url = URL(fileURLWithPath: path)
        let document: DocumentNode
        do {
            document = try ProgramDocumentParser.parse(Array(try ReadableFile.contents(of: path)))
        } catch let failure as ReadableFile.Failure {
            throw ConfigurationError("\(failure)")
        } catch {
            throw ConfigurationError("cannot read \(path): \(error)")
        }
        let base = url.deletingLastPathComponent()
        func resolve(_ value: String) -> String {
            value.hasPrefix("/") ? value : base.appendingPathComponent(value).path
        }
        let diagnostics = DocumentDiagnostics()
        guard let root = MapReader(document, at: .root, diagnostics: diagnostics) else {
            throw ConfigurationError("\(path): expected a mapping of keys")
        }
        let database = root.string("database_path", required: false, lengthMax: 4096)
        let postgresURL = root.string("database", required: false, lengthMax: 1024)
        let passwordFile = root.string("database_password_file", required: false, lengthMax: 4096)
        let databaseTLS = root.string("database_tls", required: false, lengthMax: 16)
        let listen = root.string("listen", lengthMax: 300)
        let portFile = root.string("port_file", required: false, lengthMax: 4096)
        let ca = root.string("ca_certificate", lengthMax: 4096)
        let certificate = root.string("certificate", lengthMax: 4096)
        let key = root.string("private_key", lengthMax: 4096)
        let program = root.string("program_file", required: false, lengthMax: 4096)
        let phoneKeyFile = root.string("phone_hash_key_file", required: false, lengthMax: 4096)
        let voucherKeyFile = root.string("voucher_key_file", required: false, lengthMax: 4096)
        let voucherKeyID = root.integer("voucher_key_id", in: 1...255, required: voucherKeyFile != nil)
        let metrics = root.map("metrics", required: false).flatMap { map in
            HTTPEndpointSettings.read(map, address: { try? Address.parse($0) }, resolve: resolve)
        }
        let console = root.map("console", required: false).flatMap { map in
            ConsoleSettings.read(map, address: { try? Address.parse($0) }, resolve: resolve)
        }
        var limits = GatewayLimits()
        if let l = root.map("limits", required: false) {
            func int(_ key: String, _ range: ClosedRange<Int64>, _ target: inout Int) {
                if let value = l.integer(key, in: range, required: false) { target = Int(value) }
            }
            func long(_ key: String, _ range: ClosedRange<Int64>, _ target: inout Int64) {
                if let value = l.integer(key, in: range, required: false) { target = value }
            }
            int("push_transactions_max", 1...10_000, &limits.pushTransactionsMax)
            int("push_bytes_max", 1024...67_108_864, &limits.pushBytesMax)
            int("pull_page_max", 1...10_000, &limits.pullPageMax)
            int("push_group_max", 1...64, &limits.pushGroupMax)
            int("push_queue_max", 1...10_000, &limits.pushQueueMax)
            int("recover_page_max", 1...10_000, &limits.recoverPageMax)
            long("hold_ms", 1_000...86_400_000, &limits.holdMilliseconds)
            long("clock_skew_max_ms", 1_000...86_400_000, &limits.clockSkewMaxMilliseconds)
            long("program_grace_ms", 0...604_800_000, &limits.programGraceMilliseconds)
            int("request_bytes_max", 1024...67_108_864, &limits.requestBytesMax)
            int("busy_timeout_ms", 1...600_000, &limits.busyTimeoutMilliseconds)
            long("maintenance_check_ms", 1_000...86_400_000, &limits.maintenanceCheckMilliseconds)
            int("allowance_reclaims_max", 1...100_000, &limits.allowanceReclaimsMax)
            int("home_site_allowances_max", 0...10_000_000, &limits.homeSiteAllowancesMax)
            int("shutdown_ms", 100...600_000, &limits.shutdownMilliseconds)
            int("refused_calls_max", 100...10_000_000, &limits.refusedCallsMax)
            int("refused_calls_per_minute_max", 1...100_000, &limits.refusedCallsPerMinuteMax)
            int("database_connections_max", 1...1_000, &limits.databaseConnectionsMax)
            int("database_connect_timeout_ms", 100...600_000, &limits.databaseConnectTimeoutMilliseconds)
            int("database_wait_ms", 100...600_000, &limits.databaseWaitMilliseconds)
            int("database_claim_connections", 1...16, &limits.databaseClaimConnections)
            int("database_retries_max", 1...20, &limits.databaseRetriesMax)
            int("account_entries_max", 100...1_000_000, &limits.accountEntriesMax)
            int("order_group_max", 1...1_000, &limits.orderGroupMax)
            int("order_queue_max", 1...1_000_000, &limits.orderQueueMax)
            int("order_transactions_max", 1...64, &limits.orderTransactionsMax)
            long("order_wait_ms", 100...600_000, &limits.orderWaitMilliseconds)
            long("position_claim_max_ms", 1_000...3_600_000, &limits.positionClaimMaxMilliseconds)
            long("settlement_close_wait_ms", 100...600_000, &limits.settlementCloseWaitMilliseconds)
            long("job_lease_ms", 10_000...86_400_000, &limits.jobLeaseMilliseconds)
            limits.connections.read(l)
            l.finish()
        }
        root.finish()
        var address: (String, Int)?
        if let listen {
            do {
                address = try Address.parse(listen, key: "listen")
            } catch {
                diagnostics.fail(DocumentPath.root.key("listen"), "must be host:port, for example 0.0.0.0:7443")
            }
        }
        var phoneKey: [UInt8]?
        if let phoneKeyFile {
            let text = try? String(contentsOf: URL(fileURLWithPath: resolve(phoneKeyFile)), encoding: .utf8)
            phoneKey = text.flatMap { Hex.bytes($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if phoneKey?.count != 32 {
                diagnostics.fail(
                    DocumentPath.root.key("phone_hash_key_file"),
                    "cannot read 64 hexadecimal characters from \(resolve(phoneKeyFile))")
            }
            do {
                try PrivateFiles.requirePrivate(resolve(phoneKeyFile), what: "the phone-hash key")
            } catch {
                diagnostics.fail(DocumentPath.root.key("phone_hash_key_file"), "\(error)")
            }
        }
        var voucherKey: VoucherSigningKey?
        if let voucherKeyFile, let voucherKeyID {
            do {
                try PrivateFiles.requirePrivate(resolve(voucherKeyFile), what: "the voucher key")
                let text = String(decoding: try ReadableFile.contents(of: resolve(voucherKeyFile)), as: UTF8.self)
                voucherKey = try VoucherSigningKey(id: UInt8(voucherKeyID), text: text)
            } catch {
                diagnostics.fail(DocumentPath.root.key("voucher_key_file"), "\(error)")
            }
        }
        var postgres: PostgresSettings?
        if database != nil, postgresURL != nil {
            diagnostics.fail(
                DocumentPath.root.key("database"), "give database_path (SQLite) or database (PostgreSQL), not both")
        } else if database == nil, postgresURL == nil {
            diagnostics.fail(
                DocumentPath.root.key("database_path"),
                "is required (a SQLite file), unless database names a PostgreSQL ledger (postgres://USER@HOST:PORT/DB)")
        }
        if let postgresURL {
            switch PostgresSettings.parse(postgresURL) {
            case .failure(let problem): diagnostics.fail(DocumentPath.root.key("database"), "\(problem)")
            case .success(var settings):
                settings.connectionsMax = limits.databaseConnectionsMax
                settings.connectTimeoutMilliseconds = limits.databaseConnectTimeoutMilliseconds
                settings.claimConnections = limits.databaseClaimConnections
                switch databaseTLS ?? "disable" {
                case "disable": settings.tls = .disable
                case "require": settings.tls = .require
                default:
                    diagnostics.fail(
                        DocumentPath.root.key("database_tls"), "must be 'disable' (the default) or 'require'")
                }
                if let passwordFile {
                    do {
                        try PrivateFiles.requirePrivate(resolve(passwordFile), what: "the database password")
                        settings.password = String(
                            decoding: try ReadableFile.contents(of: resolve(passwordFile)), as: UTF8.self
                        )
                        .trimmingCharacters(in: .newlines)
                    } catch {
                        diagnostics.fail(DocumentPath.root.key("database_password_file"), "\(error)")
                    }
                } else if let password = ProcessInfo.processInfo.environment["COALITION_DATABASE_PASSWORD"] {
                    settings.password = password
                }
                postgres = settings
            }
        }
        guard diagnostics.errors.isEmpty, database != nil || postgres != nil, let address, let ca, let certificate,
            let key
        else {
            throw ConfigurationError(
                "\(path) is not a valid gateway configuration:\n"
                    + diagnostics.errors.map { "  \($0.path): \($0.message)" }.joined(separator: "\n"))
        }
        var configuration = GatewayConfiguration(
            databasePath: database.map(resolve) ?? "", listenHost: address.0, listenPort: address.1,
            portFile: portFile.map(resolve),
            caCertificatePath: resolve(ca), certificatePath: resolve(certificate), privateKeyPath: resolve(key),
            programFile: program.map(resolve), limits: limits)
        configuration.phoneHashKey = phoneKey
        configuration.voucherKey = voucherKey
        configuration.postgres = postgres
        configuration.metrics = metrics
        configuration.console = console
        return configuration
    }
}

/// The gateway's voucher signing key and its id (docs/member-api.md, "Voucher codes").
package struct VoucherSigningKey: Sendable {
    package let id: UInt8
    package let privateKey: Curve25519.Signing.PrivateKey

    /// The key in a voucher key file's text (64 hex digits), under `id` (1 to 255).
    package init(id: UInt8, text: String) throws {
        guard id >= 1 else { throw VoucherKeyError("a voucher key id is 1 to 255") }
        self.id = id
        privateKey = try VoucherSeal.privateKey(fromText: text)
    }

    /// The raw 32 bytes of its public key, as edges receive it.
    package var publicKey: [UInt8] { Array(privateKey.publicKey.rawRepresentation) }

    /// Signs a claim made with this key's id.
    package func sign(_ claim: VoucherClaim) throws -> VoucherCode {
        precondition(claim.keyID == id, "a claim names key \(claim.keyID), not \(id)")
        return try VoucherSeal.sign(claim, with: privateKey)
    }
}
