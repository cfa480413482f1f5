// Goal: a PostgreSQL ledger is prepared safely, against a real server (scripts/with-postgres starts
// a throwaway one; CI always does): migrations applied once however many gateways start at once,
// the same tables and columns as the SQLite ledger, and a database of another network, one migrated
// by a newer gateway, a read-only one, or one that is down refused with a sentence naming the
// problem and nothing written.
import Core
import Foundation
import GRDB
import Gateway
import Logging
import PostgresNIO
import TestSupport
import Testing
import Wire

/// The test server: `COALITION_TEST_POSTGRES` (scripts/with-postgres sets it). Never skipped: a
/// run without it fails, naming the script.
enum TestPostgres {
    static func admin() throws -> PostgresSettings {
        guard let text = ProcessInfo.processInfo.environment["COALITION_TEST_POSTGRES"] else {
            throw ProcessFailure(
                "COALITION_TEST_POSTGRES is not set: run the tests with scripts/with-postgres "
                    + "(the README's test command does), which starts a throwaway PostgreSQL")
        }
        switch PostgresSettings.parse(text) {
        case .success(var settings):
            // The whole suite runs in one process on two cores: connecting can wait on a loaded
            // machine far longer than a gateway would in production (a test sets its own when it
            // measures this limit).
            settings.connectTimeoutMilliseconds = 60_000
            return settings
        case .failure(let problem): throw ProcessFailure("COALITION_TEST_POSTGRES \(problem)")
        }
    }

    static let logger: Logger = {
        var logger = Logger(label: "coalition.test.postgres")
        logger.logLevel = .error
        return logger
    }()

    /// Runs `body` with a new, empty database of the test server, dropped afterwards.
    static func withDatabase<Result>(_ body: (PostgresSettings) async throws -> Result) async throws -> Result {
        let admin = try admin()
        let name = "coalition_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await sql(admin, "CREATE DATABASE \(name)")
        var settings = admin
        settings.database = name
        let result: Result
        do {
            result = try await body(settings)
        } catch {
            try? await sql(admin, "DROP DATABASE \(name) WITH (FORCE)")
            throw error
        }
        try await sql(admin, "DROP DATABASE \(name) WITH (FORCE)")
        return result
    }

    /// Runs one statement of test setup.
    static func sql(_ settings: PostgresSettings, _ statement: String) async throws {
        try await PostgresLedgerDatabase.with(settings, logger: logger) { database in
            try await database.client.query(PostgresQuery(unsafeSQL: statement))
        }
    }

    /// The rows of a one-column text query.
    static func strings(_ settings: PostgresSettings, _ statement: String) async throws -> [String] {
        try await PostgresLedgerDatabase.with(settings, logger: logger) { database in
            var values: [String] = []
            for try await value in try await database.client.query(PostgresQuery(unsafeSQL: statement)).decode(
                String.self)
            {
                values.append(value)
            }
            return values
        }
    }
}

@Suite("PostgreSQL ledger")
struct PostgresLedgerTests {
    static let network = String(repeating: "ab", count: 32)
    static let now = Timestamp(milliseconds: 1_795_000_000_000)

    @Test(
        "a PostgreSQL URL is read, and what is not one is named",
        arguments: [
            ("postgres://coalition@db.internal:6543/ledger", "postgres://coalition@db.internal:6543/ledger"),
            ("postgresql://me@127.0.0.1/ledger", "postgres://me@127.0.0.1:5432/ledger"),
            ("postgres://me:secret@127.0.0.1/ledger", "must not hold a password"),
            ("postgres://127.0.0.1/ledger", "names no user"),
            ("postgres://me@127.0.0.1/", "names no database"),
            ("mysql://me@127.0.0.1/ledger", "must be postgres://"),
        ])
    func urls(_ text: String, _ expected: String) {
        switch PostgresSettings.parse(text) {
        case .success(let settings): #expect(settings.description == expected)
        case .failure(let problem): #expect("\(problem)".contains(expected), "\(problem)")
        }
    }

    @Test("a gateway config names one database: SQLite or PostgreSQL, with a private password file")
    func configuration() throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let config = directory.url.path + "/gateway.yaml"
        func load(_ database: String) throws -> GatewayConfiguration {
            try """
            \(database)
            listen: 127.0.0.1:0
            ca_certificate: \(certificates.path("ca.pem"))
            certificate: \(certificates.path("gateway.pem"))
            private_key: \(certificates.path("gateway.key"))
            """.write(toFile: config, atomically: true, encoding: .utf8)
            return try GatewayConfiguration.load(file: config)
        }
        let password = directory.url.path + "/db.password"
        try "s3cret\n".write(toFile: password, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: password)
        let postgres = try load(
            "database: postgres://coalition@127.0.0.1:5432/ledger\ndatabase_password_file: \(password)\ndatabase_tls: require"
        )
        #expect(postgres.postgres?.password == "s3cret" && postgres.postgres?.tls == .require)
        #expect(postgres.databasePath.isEmpty)
        // The database's limits are named settings, read and bounded.
        let limited = try load(
            """
            database: postgres://coalition@127.0.0.1:5432/ledger
            database_password_file: \(password)
            limits:
              database_wait_ms: 1500
              database_claim_connections: 3
              database_retries_max: 7
              settlement_close_wait_ms: 2500
              job_lease_ms: 120000
            """)
        #expect(limited.limits.databaseWaitMilliseconds == 1_500 && limited.postgres?.claimConnections == 3)
        #expect(limited.limits.databaseRetriesMax == 7 && limited.limits.settlementCloseWaitMilliseconds == 2_500)
        #expect(limited.limits.jobLeaseMilliseconds == 120_000)
        do {
            _ = try load("database: postgres://coalition@127.0.0.1/ledger\nlimits:\n  database_claim_connections: 0")
            Issue.record("a pool of no claim connections was accepted")
        } catch {
            #expect("\(error)".contains("database_claim_connections"), "\(error)")
        }
        #expect(throws: ConfigurationError.self) {
            try load("database: postgres://coalition@127.0.0.1/ledger\ndatabase_path: gateway.sqlite")
        }
        #expect(throws: ConfigurationError.self) { try load("database_tls: require") }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: password)
        do {
            _ = try load("database: postgres://coalition@127.0.0.1/ledger\ndatabase_password_file: \(password)")
            Issue.record("a world-readable password file was accepted")
        } catch {
            #expect("\(error)".contains("database_password_file"), "\(error)")
        }
    }

    @Test("two gateways migrating at once apply each migration once")
    func concurrentMigrations() async throws {
        try await TestPostgres.withDatabase { settings in
            let applied = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) {
                            try await $0.migrate(caFingerprint: Self.network, now: Self.now)
                        }
                    }
                }
                return try await group.reduce(into: [[String]]()) { $0.append($1) }
            }
            // Exactly one of them applied the ledger's migrations; the others found nothing to do.
            #expect(applied.filter { !$0.isEmpty }.count == 1)
            #expect(applied.flatMap { $0 }.count == Set(applied.flatMap { $0 }).count)
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                #expect(try await database.appliedMigrations() == applied.flatMap { $0 }.sorted())
                try await database.check(caFingerprint: Self.network)
            }
        }
    }

    @Test("the PostgreSQL ledger has the SQLite ledger's tables and columns")
    func sameTables() async throws {
        let directory = try TemporaryDirectory()
        let sqlite = try GatewayDatabase.open(
            path: directory.url.path + "/gateway.sqlite", busyTimeoutMilliseconds: 1_000)
        let sqliteColumns = try await sqlite.pool.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT m.name || '.' || p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
                    WHERE m.type IN ('table', 'view') AND m.name NOT IN ('grdb_migrations', 'sqlite_sequence')
                    """)
        }
        try await TestPostgres.withDatabase { settings in
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) {
                try await $0.migrate(caFingerprint: Self.network, now: Self.now)
            }
            let columns = try await TestPostgres.strings(
                settings,
                """
                SELECT table_name || '.' || column_name FROM information_schema.columns
                WHERE table_schema = 'public'
                    AND table_name NOT IN (
                        'coalition_migrations', 'coalition_network', 'position_claims', 'job_leases')
                """)
            #expect(Set(columns) == Set(sqliteColumns))
            #expect(columns.count > 100)
        }
    }

    @Test("another network's database, a newer schema and a read-only database are refused, nothing written")
    func refusals() async throws {
        try await TestPostgres.withDatabase { settings in
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                try await database.migrate(caFingerprint: Self.network, now: Self.now)
                let other = String(repeating: "cd", count: 32)
                await #expect {
                    try await database.migrate(caFingerprint: other, now: Self.now)
                } throws: {
                    "\($0)".contains("belongs to another network") && "\($0)".contains("cdcdcdcd")
                }
                await #expect {
                    try await database.check(caFingerprint: other)
                } throws: {
                    "\($0)".contains("belongs to another network")
                }
            }
            // A migration this gateway does not know: a newer gateway migrated the database.
            try await TestPostgres.sql(
                settings, "INSERT INTO coalition_migrations (name, applied_at_ms) VALUES ('2099-01-01 future', 0)")
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                await #expect {
                    try await database.migrate(caFingerprint: Self.network, now: Self.now)
                } throws: {
                    "\($0)".contains("newer than this gateway") && "\($0)".contains("2099-01-01 future")
                }
                await #expect {
                    try await database.check(caFingerprint: Self.network)
                } throws: {
                    "\($0)".contains("newer than this gateway")
                }
            }
        }
        try await TestPostgres.withDatabase { settings in
            try await TestPostgres.sql(
                settings, "ALTER DATABASE \(settings.database) SET default_transaction_read_only = on")
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                await #expect {
                    try await database.migrate(caFingerprint: Self.network, now: Self.now)
                } throws: {
                    "\($0)".contains("is read-only")
                }
            }
            let tables = try await TestPostgres.strings(
                settings, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            #expect(tables.isEmpty)
        }
    }

    /// docs/scale.md, "the commit low-water mark": a transaction that commits late with an earlier
    /// position is never skipped by a reader of the feed.
    @Test("the feed's bound stays below a committer held open while a later one commits")
    func lowWaterMark() async throws {
        try await TestPostgres.withDatabase { settings in
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                try await database.migrate(caFingerprint: Self.network, now: Self.now)
                let client = database.client
                let logger = TestPostgres.logger
                func bound() async throws -> Int64 {
                    try await PostgresPositions.committedBelow(
                        client, now: Self.now, claimMaxMilliseconds: 60_000, logger: logger)
                }
                func insert(_ position: Int64, _ connection: PostgresConnection) async throws {
                    try await connection.query(
                        """
                        INSERT INTO transactions (position, transaction_id, points, amount_minor, occurred_at_ms,
                            posted_at_ms, program_version)
                        VALUES (\(position), \("T\(position)"), 0, 0, 0, 0, 1)
                        """, logger: logger)
                }
                func served(below bound: Int64) async throws -> [Int64] {
                    var positions: [Int64] = []
                    for try await position in try await client.query(
                        "SELECT position FROM transactions WHERE position < \(bound) ORDER BY position"
                    ).decode(Int64.self) {
                        positions.append(position)
                    }
                    return positions
                }
                #expect(try await bound() == 1)
                // A claims a block and posts at its first position, and stays open…
                let a = try await PostgresPositions.claim(client, count: 3, now: Self.now, logger: logger).first
                let b = try await client.withTransaction(logger: logger) { connection in
                    try await insert(a, connection)
                    // … while B claims the next block, posts, and commits.
                    let b = try await PostgresPositions.claim(client, count: 2, now: Self.now, logger: logger).first
                    try await client.withTransaction(logger: logger) { other in
                        try await insert(b, other)
                        try await PostgresPositions.endClaim(b, other, logger: logger)
                    }
                    #expect(a == 1 && b == a + 3)
                    // B's row is committed, but the feed stops below A's claim: it must not pass A.
                    let held = try await bound()
                    #expect(held == a)
                    #expect(try await served(below: held).isEmpty)
                    try await PostgresPositions.endClaim(a, connection, logger: logger)
                    return b
                }
                let released = try await bound()
                #expect(released == b + 2)
                #expect(try await served(below: released) == [a, b])

                // A claim whose gateway died is dropped after claimMax; its transaction, if it
                // still runs, cannot commit behind the reader.
                let stale = try await PostgresPositions.claim(client, count: 1, now: Self.now, logger: logger).first
                #expect(try await bound() == stale)
                let later = Timestamp(milliseconds: Self.now.milliseconds + 60_001)
                #expect(
                    try await PostgresPositions.committedBelow(
                        client, now: later, claimMaxMilliseconds: 60_000, logger: logger) > stale)
                await #expect {
                    try await client.withTransaction(logger: logger) { connection in
                        try await insert(stale, connection)
                        try await PostgresPositions.endClaim(stale, connection, logger: logger)
                    }
                } throws: {
                    "\($0)".contains("expired before its transaction committed")
                }
                #expect(try await served(below: Int64.max) == [a, b])
            }
        }
    }

    /// docs/scale.md: a daily job of a period runs once however many gateways run.
    @Test("of gateways racing for a period's job one holds the lease; a dead holder's lease is taken over")
    func leases() async throws {
        try await TestPostgres.withDatabase { settings in
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                try await database.migrate(caFingerprint: Self.network, now: Self.now)
                let client = database.client
                let logger = TestPostgres.logger
                let lease: Int64 = 30_000
                let claims = try await withThrowingTaskGroup(of: PostgresLeases.Claim.self) { group in
                    for holder in ["gw-a", "gw-b", "gw-c", "gw-d"] {
                        group.addTask {
                            try await PostgresLeases.claim(
                                client, job: "expiry", period: "2026-11-30", holder: holder, now: Self.now,
                                leaseMilliseconds: lease, logger: logger)
                        }
                    }
                    return try await group.reduce(into: [PostgresLeases.Claim]()) { $0.append($1) }
                }
                let holders = claims.filter { if case .held = $0 { true } else { false } }
                #expect(holders.count == 1)
                var winner = ""
                for claim in claims {
                    if case .heldElsewhere(let holder) = claim { winner = holder }
                }
                #expect(["gw-a", "gw-b", "gw-c", "gw-d"].contains(winner))
                // Another period is another lease.
                #expect(
                    try await PostgresLeases.claim(
                        client, job: "expiry", period: "2026-12-01", holder: "gw-x", now: Self.now,
                        leaseMilliseconds: lease, logger: logger)
                        == .held(until: Timestamp(milliseconds: Self.now.milliseconds + lease)))
                // The winner dies: after its lease, another takes the job over; the dead one cannot
                // renew or finish it any more.
                let later = Timestamp(milliseconds: Self.now.milliseconds + lease + 1)
                #expect(
                    try await PostgresLeases.claim(
                        client, job: "expiry", period: "2026-11-30", holder: "gw-z", now: later,
                        leaseMilliseconds: lease, logger: logger)
                        == .held(until: Timestamp(milliseconds: later.milliseconds + lease)))
                #expect(
                    try await !PostgresLeases.renew(
                        client, job: "expiry", period: "2026-11-30", holder: winner, now: later,
                        leaseMilliseconds: lease, logger: logger))
                #expect(
                    try await !PostgresLeases.finish(
                        client, job: "expiry", period: "2026-11-30", holder: winner, logger: logger))
                #expect(
                    try await PostgresLeases.finish(
                        client, job: "expiry", period: "2026-11-30", holder: "gw-z", logger: logger))
                // Done is done, for everyone, even once the lease time has passed.
                let muchLater = Timestamp(milliseconds: later.milliseconds + 10 * lease)
                #expect(
                    try await PostgresLeases.claim(
                        client, job: "expiry", period: "2026-11-30", holder: "gw-a", now: muchLater,
                        leaseMilliseconds: lease, logger: logger) == .done)
            }
        }
    }

    @Test("a database that is down, or that does not exist, is named in the error")
    func unreachable() async throws {
        var down = try TestPostgres.admin()
        down.port = 1  // nothing listens on port 1 of loopback
        down.connectTimeoutMilliseconds = 2_000
        await #expect {
            try await PostgresLedgerDatabase.with(down, logger: TestPostgres.logger) { _ in }
        } throws: {
            "\($0)".contains("PostgreSQL at postgres://") && "\($0)".contains(":1/")
        }
        var missing = try TestPostgres.admin()
        missing.database = "coalition_no_such_database"
        await #expect {
            try await PostgresLedgerDatabase.with(missing, logger: TestPostgres.logger) { _ in }
        } throws: {
            "\($0)".contains("has no database 'coalition_no_such_database'")
        }
    }

    @Test("coalition gateway migrate prepares a PostgreSQL ledger once; serve opens it and wants a program")
    func migrateCommand() async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        try await TestPostgres.withDatabase { settings in
            let config = directory.url.path + "/gateway.yaml"
            try """
            database: \(settings)
            listen: 127.0.0.1:0
            ca_certificate: \(certificates.path("ca.pem"))
            certificate: \(certificates.path("gateway.pem"))
            private_key: \(certificates.path("gateway.key"))
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let first = try await Binary.run(["gateway", "migrate", "--config", config])
            #expect(
                first.contains("applied 2026-12-02 ledger v1, 2026-12-02 ledger positions v1, 2026-12-02 job leases v1")
            )
            let second = try await Binary.run(["gateway", "migrate", "--config", config])
            #expect(second.contains("up to date, nothing to apply"))
            let fingerprint = try CertificateFingerprint.sha256(ofPEMFile: certificates.path("ca.pem"))
            #expect(
                try await TestPostgres.strings(settings, "SELECT ca_fingerprint FROM coalition_network") == [
                    fingerprint
                ])
            // Serve reaches the ledger, finds it migrated and bound to this network, and refuses to
            // serve without a program (none in the config, none published).
            let serve = try await ChildProcess.run(try #require(Binary.path), ["gateway", "serve", "--config", config])
            #expect(serve.status != 0)
            #expect(serve.errors.contains("no program: set program_file"), "\(serve.errors)")
        }
    }
}
