import ArgumentParser
import EdgeNode
import Foundation
import Gateway
import Logging
import NodeSupport
import ServiceLifecycle
import UnixSignals
import Wire

/// `coalition gateway …`: run the central gateway.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the central gateway (the ledger and sync with every edge).",
        subcommands: [Serve.self, Migrate.self, Backup.self]
    )

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the ledger's migrations and nothing else (SQLite or PostgreSQL), then exit.",
            discussion: """
                With database: postgres://USER@HOST:PORT/DB the migrations run in one transaction that holds the
                migrations table locked, so two gateways (or two migrate runs) at once apply them once; an unbound
                database is bound to this network's CA. A database of another network, one migrated by a newer
                gateway, or a read-only one is refused with nothing written (docs/scale.md).
                """)

        @Option(help: "The gateway config file.") var config: String

        func run() async throws {
            let configuration: GatewayConfiguration
            do {
                configuration = try GatewayConfiguration.load(file: config)
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            }
            guard let postgres = configuration.postgres else {
                _ = try GatewayDatabase.open(
                    path: configuration.databasePath,
                    busyTimeoutMilliseconds: configuration.limits.busyTimeoutMilliseconds)
                print("\(configuration.databasePath): migrated")
                return
            }
            do {
                let fingerprint = try CertificateFingerprint.sha256(ofPEMFile: configuration.caCertificatePath)
                var logger = Logger(label: "coalition.gateway")
                logger.logLevel = .warning
                let applied = try await PostgresLedgerDatabase.with(postgres, logger: logger) { database in
                    try await database.migrate(caFingerprint: fingerprint, now: SystemWallClock().now())
                }
                print(
                    applied.isEmpty
                        ? "\(postgres): up to date, nothing to apply"
                        : "\(postgres): applied \(applied.joined(separator: ", "))")
            } catch let error as PostgresLedgerError {
                throw CommandFailure(error.description)
            }
        }
    }

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the gateway's ledger with SQLite's online backup (safe while it serves).",
            discussion: "Restore: stop the gateway, put the copy in place of database_path, start it again.")

        @Option(help: "The gateway config file.") var config: String
        @Option(help: "The new file to write.") var to: String

        func run() async throws {
            do {
                let configuration = try GatewayConfiguration.load(file: config)
                let database = try GatewayDatabase.open(
                    path: configuration.databasePath,
                    busyTimeoutMilliseconds: configuration.limits.busyTimeoutMilliseconds)
                try database.backup(to: to)
                print("backup of \(configuration.databasePath) written to \(to)")
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            }
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve sync over mutual TLS until SIGTERM or SIGINT (graceful shutdown).")

        @Option(help: "The gateway config file (YAML; keys in docs/protocol.md).") var config: String
        @Option(help: "Override listen (host:port; port 0 picks a free one).") var listen: String?
        @Option(help: "Override port_file.") var portFile: String?
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String = "info"

        func run() async throws {
            var configuration: GatewayConfiguration
            do {
                configuration = try GatewayConfiguration.load(file: config)
                if let listen { (configuration.listenHost, configuration.listenPort) = try Address.parse(listen) }
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            }
            if let portFile { configuration.portFile = portFile }
            guard let level = Logger.Level(rawValue: logLevel) else {
                throw ValidationError("--log-level: unknown level '\(logLevel)'")
            }
            let logger = Logging.makeRootLogger(label: "coalition.gateway", level: level)
            do {
                try await GatewayNode.with(configuration: configuration, clock: SystemWallClock(), logger: logger) {
                    node in
                    try await NodeServer.run(
                        node, logger: logger, shutdownMilliseconds: configuration.limits.shutdownMilliseconds)
                }
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            } catch let error as PostgresLedgerError {
                throw CommandFailure(error.description)
            }
        }
    }
}
