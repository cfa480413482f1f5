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
        subcommands: [Serve.self, Backup.self]
    )

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
            let node: GatewayNode
            do {
                node = try GatewayNode(configuration: configuration, clock: SystemWallClock(), logger: logger)
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            }
            try await NodeServer.run(
                node, logger: logger, shutdownMilliseconds: configuration.limits.shutdownMilliseconds)
        }
    }
}
