import ArgumentParser
import Core
import EdgeNode
import Foundation
import Logging
import NodeSupport
import ServiceLifecycle
import UnixSignals
import Wire

/// `coalition edge …`: run and administer a property's edge node.
struct EdgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge",
        abstract: "Run a property's edge node and manage its terminals.",
        subcommands: [Serve.self, TerminalCommand.self, Backup.self]
    )

    /// Options shared by the edge commands.
    struct ConfigOptions: ParsableArguments {
        @Option(name: .long, help: "The edge config file (YAML; keys in docs/edge.md).")
        var config: String

        @Option(help: "Override database_path.")
        var database: String?

        func load() throws -> EdgeConfiguration {
            do {
                var configuration = try EdgeConfiguration.load(file: config)
                if let database { configuration.databasePath = database }
                return configuration
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            }
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the POS and barrier API until SIGTERM or SIGINT (graceful shutdown).")

        @OptionGroup var options: ConfigOptions

        @Option(help: "Override listen (host:port; port 0 picks a free one).")
        var listen: String?

        @Option(help: "Override port_file: write the bound port here once listening.")
        var portFile: String?

        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: String = "info"

        func run() async throws {
            var configuration = try options.load()
            if let listen {
                do {
                    (configuration.listenHost, configuration.listenPort) = try Address.parse(listen, key: "--listen")
                } catch let error as ConfigurationError {
                    throw ValidationError(error.description)
                }
            }
            if let portFile { configuration.portFile = portFile }
            guard let level = Logger.Level(rawValue: logLevel) else {
                throw ValidationError("--log-level: unknown level '\(logLevel)'")
            }
            let logger = Logging.makeRootLogger(label: "coalition.edge", level: level)
            let node: EdgeNode
            do {
                node = try EdgeNode(configuration: configuration, clock: SystemWallClock(), logger: logger)
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            }
            try await NodeServer.run(
                node, logger: logger, shutdownMilliseconds: configuration.limits.shutdownMilliseconds)
        }
    }

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the edge's database with SQLite's online backup (safe while it serves).",
            discussion: "Restore: stop the node, put the copy in place of database_path, start it again.")

        @OptionGroup var options: ConfigOptions
        @Option(help: "The new file to write.") var to: String

        func run() async throws {
            let configuration = try options.load()
            do {
                let database = try EdgeDatabase.open(
                    path: configuration.databasePath, site: configuration.siteID, limits: configuration.limits,
                    now: SystemWallClock().now())
                try database.backup(to: to)
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            }
            print("backup of \(configuration.databasePath) written to \(to)")
        }
    }

    struct TerminalCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "terminal",
            abstract: "Issue, list and revoke the tokens POS terminals and barriers use.",
            subcommands: [Add.self, List.self, Revoke.self]
        )

        /// Opens the edge's store without serving (works while the node runs).
        static func registry(_ options: ConfigOptions) throws -> (TerminalRegistry, EdgeConfiguration, EdgeNode) {
            let configuration = try options.load()
            do {
                let node = try EdgeNode(
                    configuration: configuration, clock: SystemWallClock(),
                    logger: Logger(label: "coalition.edge.admin"))
                return (node.terminals, configuration, node)
            } catch let error as ConfigurationError {
                throw CommandFailure(error.description)
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Issue a token for a terminal of one merchant; it is printed once and stored hashed.")

            @OptionGroup var options: ConfigOptions
            @Option(help: "The merchant the terminal acts for (a merchant of this site).") var merchant: String
            @Option(help: "A name for the terminal, unique at this edge (default: MERCHANT-N).") var name: String?

            func run() async throws {
                let (registry, configuration, node) = try TerminalCommand.registry(options)
                guard let merchantID = MerchantID(merchant) else { throw ValidationError("--merchant: \(Slug.rule)") }
                guard let owner = node.ledger.program.program.merchant(merchantID),
                    owner.site.id == configuration.siteID
                else {
                    throw CommandFailure("merchant '\(merchant)' is not a merchant of site '\(configuration.siteID)'")
                }
                let existing = try registry.list().filter { $0.merchant == merchantID }.count
                let terminalName = name ?? "\(merchant)-\(existing + 1)"
                guard !terminalName.isEmpty, terminalName.count <= 64 else {
                    throw ValidationError("--name: 1 to 64 characters")
                }
                let token: String
                do {
                    token = try registry.issue(merchant: merchantID, terminalID: terminalName)
                } catch let error as ConfigurationError {
                    throw CommandFailure(error.description)
                }
                print(token)
                FileHandle.standardError.write(
                    Data(
                        "terminal '\(terminalName)' for merchant '\(merchant)': keep this token, it is not shown again\n"
                            .utf8))
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the terminals (never their tokens).")

            @OptionGroup var options: ConfigOptions

            func run() async throws {
                let (registry, _, _) = try TerminalCommand.registry(options)
                for terminal in try registry.list() {
                    let status = terminal.revokedAt == nil ? "active" : "revoked"
                    print("\(terminal.id)\t\(terminal.merchant)\t\(status)")
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a terminal's token.")

            @OptionGroup var options: ConfigOptions
            @Argument(help: "The terminal's name.") var name: String

            func run() async throws {
                let (registry, _, _) = try TerminalCommand.registry(options)
                guard try registry.revoke(terminalID: name) else {
                    throw CommandFailure("no active terminal named '\(name)'")
                }
                print("revoked \(name)")
            }
        }
    }
}

/// The root logger; only the executable creates one (STYLE: only `main` bootstraps logging).
enum Logging {
    static func makeRootLogger(label: String, level: Logger.Level) -> Logger {
        LoggingBootstrap.once
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}

private enum LoggingBootstrap {
    static let once: Void = LoggingSystem.bootstrap(StreamLogHandler.standardError)
}
