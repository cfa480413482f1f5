import Core
import Crypto
import Foundation
import GRPCCore
import Logging
import NodeSupport
import PostgresNIO
import Synchronization
import Wire
import _ConnectionPoolModule

/// The ledger on PostgreSQL, shared by any number of gateways (docs/scale.md). Concurrency is the
/// database's: a push locks its site's row, then the members it posts to in sorted order; an
/// authorisation locks its member; positions come in blocks claimed after those locks, and the
/// pull feed reads below the commit low-water mark (`PostgresPositions`). Nothing a gateway keeps
/// in memory can go stale: site status and revocations are read on every call, and the program
/// catalogue is reloaded whenever the database's latest version differs from the one held.
package final class PostgresLedgerStore: LedgerStore {
    package let database: PostgresLedgerDatabase
    let clock: any WallClock
    let limits: GatewayLimits
    /// The secret seeds of lottery periods: fresh random bytes (`LotterySeal.newSeed`); a
    /// deterministic simulation gives its own.
    let lotterySeeds: @Sendable () -> [UInt8]
    let logger: Logger
    private let catalogue: Mutex<ProgramCatalogue>
    let statistics = Mutex(PostingStatistics())
    /// Orders of the points mall take turns here (`order_transactions_max` at once): orders queued
    /// on one item's row wait in memory, not holding pool connections.
    let orderGate: AsyncGate

    var client: PostgresClient { database.client }
    /// How long a call waits for a pool connection (`database_wait_ms`).
    var databaseWait: Duration { .milliseconds(limits.databaseWaitMilliseconds) }

    /// Where the posting time went so far (each push is its own transaction here).
    package var postingStatistics: PostingStatistics {
        var statistics = self.statistics.withLock { $0 }
        statistics.commits = statistics.pushes
        return statistics
    }

    /// Opens the store on a migrated database and loads the published programs.
    package init(
        database: PostgresLedgerDatabase, clock: any WallClock, limits: GatewayLimits, logger: Logger,
        lotterySeeds: @escaping @Sendable () -> [UInt8] = LotterySeal.newSeed
    ) async throws {
        self.database = database
        self.clock = clock
        self.limits = limits
        self.lotterySeeds = lotterySeeds
        self.logger = logger
        orderGate = AsyncGate(permits: limits.orderTransactionsMax, waitersMax: limits.orderQueueMax)
        catalogue = Mutex(ProgramCatalogue(versions: []))
        try await guarded("loading the programs") {
            try await database.client.leased(waiting: databaseWait) { connection in
                _ = try await self.currentPrograms(connection)
            }
        }
    }

    /// The programs published so far, as last read from the database.
    package var programs: ProgramCatalogue { catalogue.withLock { $0 } }

    /// The store's current instant (the injected clock).
    package var clockNow: Timestamp { clock.now() }

    /// The catalogue as the database has it now: reloaded when another gateway published since.
    func currentPrograms(_ connection: PostgresConnection) async throws -> ProgramCatalogue {
        let latest =
            try await connection.value("SELECT MAX(version) FROM program_versions", as: Int64?.self, logger) ?? nil
        let held = programs
        if held.latest?.version == latest { return held }
        var versions: [ProgramCatalogue.Version] = []
        for row in try await connection.rows(
            "SELECT version, document, effective_at_ms FROM program_versions ORDER BY version", logger)
        {
            versions.append(
                ProgramCatalogue.Version(
                    version: try row.int("version"),
                    effectiveAt: Timestamp(milliseconds: try row.int("effective_at_ms")),
                    program: try ProgramDocumentParser.load(Array(try row.bytes("document")))))
        }
        let loaded = ProgramCatalogue(versions: versions)
        catalogue.withLock { held in
            if (held.latest?.version ?? 0) < (loaded.latest?.version ?? 0) { held = loaded }
        }
        return loaded
    }

    /// Runs `body`, turning a database that cannot be reached into UNAVAILABLE (edges keep serving
    /// offline and retry) and any other database error into a sentence naming what was being done;
    /// the store's own errors (a refusal, a protocol violation) come out as they went in.
    func guarded<Result>(_ doing: String, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch {
            throw translated(error, doing)
        }
    }

    private func translated(_ error: any Error, _ doing: String) -> any Error {
        if let failed = error as? PostgresTransactionError {
            // The closure's error is the cause; a failed BEGIN or COMMIT is the database's.
            return translated(failed.closureError ?? failed.commitError ?? failed.beginError ?? failed, doing)
        }
        if let error = error as? DatabaseWaitExceeded {
            return ServiceError(.unavailable, "the ledger database is unavailable (\(doing)): \(error)")
        }
        if let error = error as? ConnectionPoolError {
            // The pool cannot open connections (it stops trying for a while after failures).
            return ServiceError(
                .unavailable,
                "the ledger database is unavailable (\(doing)): cannot connect to \(database.settings) (\(error))")
        }
        guard let error = error as? PSQLError else { return error }
        let state = error.serverInfo?[.sqlState] ?? ""
        if state.isEmpty || state.hasPrefix("08") || state == "57P01" || state == "57P03" || state == "53300" {
            return ServiceError(
                .unavailable,
                "the ledger database is unavailable (\(doing)): "
                    + "\(PostgresLedgerDatabase.explain(error, settings: database.settings, doing: doing))")
        }
        return PostgresLedgerDatabase.explain(error, settings: database.settings, doing: doing)
    }

    /// Runs `body` in a transaction, again (at most `database_retries_max` times, after a short random pause)
    /// when the database chose it as a deadlock's victim or a serialisation failure (`40P01`,
    /// `40001`), or when another gateway committed a member with the same phone first (`23505` on
    /// `members_by_phone`): the second attempt reads what the other committed.
    func transaction<Result: Sendable>(
        _ doing: String, _ body: @escaping (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await guarded(doing) {
                    try await client.leased(waiting: databaseWait) { connection in
                        try await connection.run("BEGIN", logger)
                        do {
                            let result = try await body(connection)
                            try await connection.run("COMMIT", logger)
                            return result
                        } catch {
                            try? await connection.run("ROLLBACK", logger)
                            throw error
                        }
                    }
                }
            } catch let error as PostgresLedgerError where attempt < limits.databaseRetriesMax && error.transient {
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(10 * attempt))))
            }
        }
    }

    /// Validates and publishes a program document as the next version, unless it is byte for byte
    /// the latest one. Returns the version in force after the call.
    @discardableResult
    package func publish(document: [UInt8], effectiveAt: Timestamp? = nil, by publisher: String) async throws -> Int64 {
        _ = try ProgramDocumentParser.load(document)
        let now = clock.now()
        let hash = Hex.string(SHA256.hash(data: document))
        let version = try await transaction("publishing a program") { [logger] connection in
            // Publications are serialised on the counter of versions: the program_versions table.
            try await connection.run("LOCK TABLE program_versions IN EXCLUSIVE MODE", logger)
            for row in try await connection.rows(
                "SELECT version, sha256 FROM program_versions ORDER BY version DESC LIMIT 1", logger)
            where try row.text("sha256") == hash {
                return try row.int("version")
            }
            let next =
                (try await connection.value("SELECT MAX(version) FROM program_versions", as: Int64?.self, logger) ?? nil)
                .map { $0 + 1 } ?? 1
            let position = try await PostgresPositions.claim(
                self.database.claims, count: 1, now: now, logger: logger
            ).first
            try await connection.run(
                """
                INSERT INTO program_versions (version, document, sha256, effective_at_ms, published_at_ms, published_by,
                    changed_position)
                VALUES (\(next), \(Data(document)), \(hash), \((effectiveAt ?? now).milliseconds), \(now.milliseconds),
                    \(publisher), \(position))
                """, logger)
            try await PostgresPositions.endClaim(position, connection, logger: logger)
            return next
        }
        try await guarded("loading the programs") {
            try await self.client.leased(waiting: databaseWait) { connection in
                _ = try await self.currentPrograms(connection)
            }
        }
        return version
    }

    // MARK: Sites

    /// The site's status; every sync call asks it first, so it also brings the catalogue up to
    /// date (a program another gateway published, a site it added, is seen at once).
    package func siteStatus(_ site: SiteID) async throws -> SiteRecord? {
        try await guarded("reading the site") {
            try await client.leased(waiting: databaseWait) { connection in
                guard try await self.currentPrograms(connection).latest?.program.site(site) != nil else { return nil }
                if let known = try await Self.site(site, connection, logger) { return known }
                try await connection.run(
                    """
                    INSERT INTO sites (site_id, last_hash) VALUES (\(site.rawValue), \(Data(count: 32)))
                    ON CONFLICT (site_id) DO NOTHING
                    """, logger)
                guard let created = try await Self.site(site, connection, logger) else {
                    preconditionFailure("site row vanished")
                }
                return created
            }
        }
    }

    private static func site(_ site: SiteID, _ connection: PostgresConnection, _ logger: Logger) async throws
        -> SiteRecord?
    {
        for row in try await connection.rows(
            "SELECT status, high_water_mark, flags FROM sites WHERE site_id = \(site.rawValue)", logger)
        {
            return SiteRecord(
                site: site, revoked: try row.text("status") == "revoked", highWaterMark: try row.int("high_water_mark"),
                flags: try row.text("flags").split(separator: ",").map(String.init))
        }
        return nil
    }

    package func isRevoked(serial: String) async throws -> Bool {
        try await guarded("reading revocations") {
            try await client.leased(waiting: databaseWait) { connection in
                try await connection.value(
                    "SELECT TRUE FROM revoked_certificates WHERE serial = \(serial)", as: Bool.self, logger) ?? false
            }
        }
    }

    package func setSite(_ site: SiteID, revoked: Bool, by operatorName: String = "", reason: String = "")
        async throws
    {
        let now = clock.now()
        try await transaction("changing a site") { [logger] connection in
            try await connection.run(
                """
                INSERT INTO sites (site_id, last_hash, status) VALUES (\(site.rawValue), \(Data(count: 32)),
                    \(revoked ? "revoked" : "active"))
                ON CONFLICT (site_id) DO UPDATE SET status = excluded.status
                """, logger)
            try await Self.recordAction(
                connection, at: now, by: operatorName, action: revoked ? "revoke_site" : "reinstate_site",
                subject: site.rawValue, reason: reason, logger)
        }
    }

    @discardableResult
    package func revokeCertificate(serial: String, reason: String, by operatorName: String = "") async throws
        -> (certificate: RevokedCertificateRecord, alreadyRevoked: Bool)
    {
        let now = clock.now()
        return try await transaction("revoking a certificate") { [logger] connection in
            let inserted =
                try await connection.value(
                    """
                    INSERT INTO revoked_certificates (serial, revoked_at_ms, reason, revoked_by)
                    VALUES (\(serial), \(now.milliseconds), \(reason), \(operatorName))
                    ON CONFLICT (serial) DO NOTHING RETURNING TRUE
                    """, as: Bool.self, logger) ?? false
            if inserted {
                try await Self.recordAction(
                    connection, at: now, by: operatorName, action: "revoke_certificate", subject: serial,
                    reason: reason, logger)
            }
            guard
                let row = try await connection.rows(
                    "SELECT * FROM revoked_certificates WHERE serial = \(serial)", logger
                ).first
            else { preconditionFailure("revoked certificate row vanished") }
            return (try Self.revokedCertificate(row), !inserted)
        }
    }

    package func revokedCertificates() async throws -> [RevokedCertificateRecord] {
        try await guarded("reading revocations") {
            try await client.leased(waiting: databaseWait) { connection in
                try await connection.rows(
                    "SELECT * FROM revoked_certificates ORDER BY revoked_at_ms DESC, serial", logger
                ).map(Self.revokedCertificate)
            }
        }
    }

    private static func revokedCertificate(_ row: PostgresRandomAccessRow) throws -> RevokedCertificateRecord {
        RevokedCertificateRecord(
            serial: try row.text("serial"), revokedAt: Timestamp(milliseconds: try row.int("revoked_at_ms")),
            reason: try row.text("reason"), revokedBy: try row.text("revoked_by"))
    }

    package func recordRefusedCall(_ call: RefusedCall) async throws {
        let keep = Int64(limits.refusedCallsMax)
        try await transaction("recording a refused call") { [logger] connection in
            let newest =
                try await connection.value(
                    """
                    INSERT INTO refused_calls (at_ms, service, method, peer, address, kind, reason)
                    VALUES (\(call.at.milliseconds), \(call.service), \(call.method), \(call.peer), \(call.address),
                        \(call.kind), \(call.reason))
                    RETURNING call_id
                    """, as: Int64.self, logger) ?? 0
            if newest > keep {
                try await connection.run("DELETE FROM refused_calls WHERE call_id <= \(newest - keep)", logger)
            }
        }
    }

    package func refusedCalls(before: Int64?, limit: Int) async throws -> [RefusedCall] {
        try await guarded("reading refused calls") {
            try await client.leased(waiting: databaseWait) { connection in
                try await connection.rows(
                    """
                    SELECT * FROM refused_calls WHERE call_id < \(before ?? .max) ORDER BY call_id DESC
                    LIMIT \(Int64(limit))
                    """, logger
                ).map { row in
                    RefusedCall(
                        id: try row.int("call_id"), at: Timestamp(milliseconds: try row.int("at_ms")),
                        service: try row.text("service"), method: try row.text("method"), peer: try row.text("peer"),
                        address: try row.text("address"), kind: try row.text("kind"), reason: try row.text("reason"))
                }
            }
        }
    }

    static func recordAction(
        _ connection: PostgresConnection, at now: Timestamp, by operatorName: String, action: String, subject: String,
        reason: String, _ logger: Logger
    ) async throws {
        try await connection.run(
            """
            INSERT INTO operator_actions (at_ms, operator, action, subject, reason)
            VALUES (\(now.milliseconds), \(operatorName), \(action), \(subject), \(reason))
            """, logger)
    }

    package func conflicts(site: SiteID? = nil, kind: String? = nil, limit: Int = 1_000) async throws
        -> [ConflictRecord]
    {
        try await guarded("reading conflicts") {
            try await client.leased(waiting: databaseWait) { connection in
                try await connection.rows(
                    """
                    SELECT kind, site_id, transaction_id, member_id, resolution, points, detected_at_ms, detail
                    FROM conflicts WHERE (\(site?.rawValue)::text IS NULL OR site_id = \(site?.rawValue))
                        AND (\(kind)::text IS NULL OR kind = \(kind))
                    ORDER BY conflict_id LIMIT \(Int64(limit))
                    """, logger
                ).map { row in
                    ConflictRecord(
                        kind: try row.text("kind"), site: try row.textOrNil("site_id"),
                        transaction: try row.textOrNil("transaction_id"), member: try row.textOrNil("member_id"),
                        resolution: try row.text("resolution"), points: try row.int("points"),
                        detectedAt: Timestamp(milliseconds: try row.int("detected_at_ms")),
                        detail: try row.text("detail"))
                }
            }
        }
    }
}
