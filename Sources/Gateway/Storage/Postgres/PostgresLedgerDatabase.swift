import Core
import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// Why a PostgreSQL ledger cannot be used, in words an operator acts on.
package struct PostgresLedgerError: Error, Equatable, CustomStringConvertible {
    package var description: String
    /// A failure another attempt of the same transaction may not meet: the database chose it as a
    /// deadlock's victim or a serialisation failure (`40P01`, `40001`), or another gateway committed
    /// a member with the same id or phone first (`23505` on `members`).
    package var transient = false

    package init(_ description: String, transient: Bool = false) {
        self.description = description
        self.transient = transient
    }
}

/// A gateway's ledger database on PostgreSQL (docs/scale.md): a connection pool with named limits
/// (`database_connections_max`, `database_connect_timeout_ms`), versioned migrations applied under
/// a table lock, and the network it belongs to (the fingerprint of the CA it was first migrated
/// for: a gateway of another network is refused before it writes anything).
package final class PostgresLedgerDatabase: Sendable {
    package let settings: PostgresSettings
    package let client: PostgresClient
    /// Connections of their own for claiming ledger positions (`PostgresPositions`), which a
    /// posting transaction does while it holds one of `client`'s: drawn from the same pool, a burst
    /// of transactions waiting on one member's lock could hold every connection while the one
    /// holding the lock waits for a connection to claim with. A claim waits on nothing but other
    /// claims, so this pool always moves.
    package let claims: PostgresClient
    let logger: Logger

    private init(settings: PostgresSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        var tls = PostgresClient.Configuration.TLS.disable
        if settings.tls == .require { tls = .require(.makeClientConfiguration()) }
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.user, password: settings.password,
            database: settings.database, tls: tls)
        configuration.options.maximumConnections = settings.connectionsMax
        configuration.options.connectTimeout = .milliseconds(Int64(settings.connectTimeoutMilliseconds))
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        configuration.options.maximumConnections = settings.claimConnections
        configuration.options.minimumConnections = 0
        claims = PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    /// Runs `body` with the database's connection pool, which stops when `body` returns. The
    /// database is reached first: one that is down, refuses the user or does not exist is an error
    /// naming the problem, within `connectTimeoutMilliseconds`.
    @discardableResult
    package static func with<Result: Sendable>(
        _ settings: PostgresSettings, logger: Logger, _ body: (PostgresLedgerDatabase) async throws -> Result
    ) async throws -> Result {
        let database = PostgresLedgerDatabase(settings: settings, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.client.run() }
            group.addTask { await database.claims.run() }
            defer { group.cancelAll() }
            try await database.reach()
            return try await body(database)
        }
    }

    /// One round trip, bounded by the connect timeout.
    private func reach() async throws {
        let timeout = Duration.milliseconds(settings.connectTimeoutMilliseconds)
        let settings = self.settings
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                // One connection of its own, not the pool's: the pool retries a failed connection
                // quietly, where the first attempt's answer (no such database, a refused user) is
                // what the operator needs to read.
                do {
                    var tls = PostgresConnection.Configuration.TLS.disable
                    if settings.tls == .require {
                        tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
                    }
                    var configuration = PostgresConnection.Configuration(
                        host: settings.host, port: settings.port, username: settings.user,
                        password: settings.password, database: settings.database, tls: tls)
                    // The connection's own bound is the setting too (postgres-nio's default is 10 s).
                    configuration.options.connectTimeout = .milliseconds(Int64(settings.connectTimeoutMilliseconds))
                    let connection = try await PostgresConnection.connect(
                        configuration: configuration, id: 0, logger: self.logger)
                    do {
                        try await connection.query("SELECT 1", logger: self.logger)
                    } catch {
                        try? await connection.close()
                        throw error
                    }
                    try await connection.close()
                } catch {
                    throw Self.explain(error, settings: settings, doing: "connecting")
                }
                return true
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let reached = try await group.next() ?? false
            group.cancelAll()
            guard reached else {
                throw PostgresLedgerError(
                    "cannot reach PostgreSQL at \(settings): no answer within database_connect_timeout_ms "
                        + "(\(settings.connectTimeoutMilliseconds)); is it running and listening there?")
            }
        }
    }

    /// The migrations applied, in order.
    package func appliedMigrations() async throws -> [String] {
        do {
            var names: [String] = []
            let exists = try await client.query("SELECT to_regclass('coalition_migrations') IS NOT NULL")
            for try await present in exists.decode(Bool.self) where !present { return [] }
            for try await name in try await client.query("SELECT name FROM coalition_migrations ORDER BY name").decode(
                String.self)
            {
                names.append(name)
            }
            return names
        } catch let error as PostgresLedgerError {
            throw error
        } catch {
            throw Self.explain(error, settings: settings, doing: "reading the migrations")
        }
    }

    /// Applies the migrations this gateway knows and the database lacks, in one transaction that
    /// holds `coalition_migrations` locked (a second gateway starting at once waits, then finds
    /// nothing to do), and binds an unbound database to the network of `caFingerprint`. Returns the
    /// migrations it applied. Refuses, writing nothing: a database migrated by a newer gateway
    /// (a migration this one does not know), a database of another network, a read-only one.
    @discardableResult
    package func migrate(caFingerprint: String, now: Timestamp) async throws -> [String] {
        do {
            // Two gateways creating the table at once can collide in the catalog; the loser
            // finds it there on its second try.
            for attempt in 1...2 {
                do {
                    try await client.query(
                        "CREATE TABLE IF NOT EXISTS coalition_migrations (name TEXT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)"
                    )
                    break
                } catch let error as PSQLError
                    where attempt == 1 && ["23505", "42P07"].contains(error.serverInfo?[.sqlState] ?? "")
                {
                    continue
                }
            }
            let known = PostgresSchema.migrations
            return try await client.withTransaction(logger: logger) { connection in
                try await connection.query("LOCK TABLE coalition_migrations IN ACCESS EXCLUSIVE MODE", logger: logger)
                var applied: Set<String> = []
                for try await name in try await connection.query(
                    "SELECT name FROM coalition_migrations", logger: logger
                ).decode(String.self) {
                    applied.insert(name)
                }
                if let unknown = applied.subtracting(known.map(\.name)).min() {
                    throw Self.newerSchema(unknown)
                }
                var done: [String] = []
                for migration in known where !applied.contains(migration.name) {
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        "INSERT INTO coalition_migrations (name, applied_at_ms) VALUES (\(migration.name), \(now.milliseconds))",
                        logger: logger)
                    done.append(migration.name)
                }
                try await Self.bind(connection, caFingerprint: caFingerprint, now: now, logger: logger)
                return done
            }
        } catch let error as PostgresLedgerError {
            throw error
        } catch {
            throw Self.explain(error, settings: settings, doing: "migrating")
        }
    }

    /// Checks that the database is migrated to exactly this gateway's schema and belongs to the
    /// network of `caFingerprint`, writing nothing.
    package func check(caFingerprint: String) async throws {
        let applied = try await appliedMigrations()
        let known = PostgresSchema.migrations.map(\.name)
        if let unknown = Set(applied).subtracting(known).min() {
            throw Self.newerSchema(unknown)
        }
        if let missing = known.first(where: { !applied.contains($0) }) {
            throw PostgresLedgerError(
                "the database lacks migration '\(missing)': run `coalition gateway migrate --config FILE`")
        }
        do {
            for try await bound in try await client.query("SELECT ca_fingerprint FROM coalition_network").decode(
                String.self)
            where bound != caFingerprint {
                throw PostgresLedgerError(Self.otherNetwork(bound: bound, ours: caFingerprint))
            }
        } catch let error as PostgresLedgerError {
            throw error
        } catch {
            throw Self.explain(error, settings: settings, doing: "checking the network")
        }
    }

    private static func bind(_ connection: PostgresConnection, caFingerprint: String, now: Timestamp, logger: Logger)
        async throws
    {
        var bound: String?
        for try await fingerprint in try await connection.query(
            "SELECT ca_fingerprint FROM coalition_network", logger: logger
        ).decode(String.self) {
            bound = fingerprint
        }
        if let bound {
            guard bound == caFingerprint else {
                throw PostgresLedgerError(otherNetwork(bound: bound, ours: caFingerprint))
            }
            return
        }
        try await connection.query(
            "INSERT INTO coalition_network (singleton, ca_fingerprint, bound_at_ms) VALUES (TRUE, \(caFingerprint), \(now.milliseconds))",
            logger: logger)
    }

    /// A database with a migration this gateway does not know: a newer gateway migrated it.
    private static func newerSchema(_ unknown: String) -> PostgresLedgerError {
        PostgresLedgerError(
            "the database's schema is newer than this gateway (it has migration '\(unknown)', which this version "
                + "does not know): run the newer gateway, or restore a matching backup")
    }

    private static func otherNetwork(bound: String, ours: String) -> String {
        "the database belongs to another network: it was set up for the CA with SHA-256 fingerprint "
            + "\(bound.prefix(16))…, this gateway's CA is \(ours.prefix(16))…; point database at this network's ledger"
    }

    /// An error of the driver as a sentence naming the database and what was being done.
    static func explain(_ error: any Error, settings: PostgresSettings, doing: String) -> PostgresLedgerError {
        guard let error = error as? PSQLError else {
            return PostgresLedgerError("PostgreSQL at \(settings), \(doing): \(error)")
        }
        let state = error.serverInfo?[.sqlState] ?? ""
        let message = error.serverInfo?[.message] ?? "\(error.code)"
        switch state {
        case "40P01", "40001":
            return PostgresLedgerError("PostgreSQL at \(settings), \(doing): \(message)", transient: true)
        case "23505"
        where (error.serverInfo?[.constraintName] ?? "").hasPrefix("members")
            || (error.serverInfo?[.constraintName] ?? "").hasPrefix("mall_orders")
            || (error.serverInfo?[.constraintName] ?? "").hasPrefix("lottery_"):
            return PostgresLedgerError("PostgreSQL at \(settings), \(doing): \(message)", transient: true)
        case "25006":
            return PostgresLedgerError(
                "the database at \(settings) is read-only (a standby, or default_transaction_read_only): "
                    + "nothing was written; point database at the primary")
        case "28P01", "28000":
            return PostgresLedgerError("PostgreSQL at \(settings) refused the user '\(settings.user)': \(message)")
        case "3D000":
            return PostgresLedgerError(
                "PostgreSQL at \(settings) has no database '\(settings.database)': create it first")
        case "":
            let cause = error.underlying.map { "\($0)" } ?? "\(error.code)"
            return PostgresLedgerError("cannot reach PostgreSQL at \(settings) (\(doing)): \(cause)")
        default:
            return PostgresLedgerError("PostgreSQL at \(settings), \(doing): \(message) (SQLSTATE \(state))")
        }
    }
}
