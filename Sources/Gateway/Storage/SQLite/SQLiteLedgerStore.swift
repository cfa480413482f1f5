import Core
import CoreMetrics
import Crypto
import Foundation
import GRDB
import NodeSupport
import Synchronization
import Wire

/// The ledger on one SQLite file: single writer, so positions commit in order and every page
/// an edge pulls is below the commit point by construction.
package final class SQLiteLedgerStore: LedgerStore {
    package let database: GatewayDatabase
    let clock: any WallClock
    let limits: GatewayLimits
    /// The secret seeds of lottery periods: fresh random bytes (`LotterySeal.newSeed`); a
    /// deterministic simulation gives its own.
    let lotterySeeds: @Sendable () -> [UInt8]
    private let catalogue: Mutex<ProgramCatalogue>
    /// Pushes of several sites arriving together are written in one transaction (one fsync).
    let pushWriter: GroupCommitter
    /// Orders of the points mall arriving together are written in one transaction too, in a queue
    /// of their own so that a flash sale does not crowd out the sites' pushes.
    let orderWriter: GroupCommitter
    let statistics = Mutex(PostingStatistics())

    /// Where the posting writer's time went so far.
    package var postingStatistics: PostingStatistics {
        var statistics = self.statistics.withLock { $0 }
        statistics.commits = pushWriter.statistics.batches
        return statistics
    }

    /// Opens the store and loads the published programs. Its writers' batch sizes and commit times
    /// are recorded through `metrics`.
    package init(
        database: GatewayDatabase, clock: any WallClock, limits: GatewayLimits,
        lotterySeeds: @escaping @Sendable () -> [UInt8] = LotterySeal.newSeed,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) throws {
        self.database = database
        self.clock = clock
        self.limits = limits
        self.lotterySeeds = lotterySeeds
        pushWriter = GroupCommitter(
            pool: database.pool, batchMax: limits.pushGroupMax, queueMax: limits.pushQueueMax, selfDriven: true,
            metrics: metrics, writer: "push")
        orderWriter = GroupCommitter(
            pool: database.pool, batchMax: limits.orderGroupMax, queueMax: limits.orderQueueMax, selfDriven: true,
            metrics: metrics, writer: "order")
        let rows = try database.pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT version, document, effective_at_ms FROM program_versions ORDER BY version"
            )
            .map { row -> (Int64, Data, Int64) in (row["version"], row["document"], row["effective_at_ms"]) }
        }
        var versions: [ProgramCatalogue.Version] = []
        for (version, document, effective) in rows {
            versions.append(
                ProgramCatalogue.Version(
                    version: version, effectiveAt: Timestamp(milliseconds: effective),
                    program: try ProgramDocumentParser.load(Array(document))))
        }
        catalogue = Mutex(ProgramCatalogue(versions: versions))
    }

    /// The programs published so far.
    package var programs: ProgramCatalogue { catalogue.withLock { $0 } }

    /// The store's current instant (the injected clock).
    package var clockNow: Timestamp { clock.now() }

    /// Validates and publishes a program document as the next version, unless it is byte for byte
    /// the latest one. Returns the version in force after the call.
    @discardableResult
    package func publish(document: [UInt8], effectiveAt: Timestamp? = nil, by publisher: String) throws -> Int64 {
        let program = try ProgramDocumentParser.load(document)
        let now = clock.now()
        let hash = Hex.string(SHA256.hash(data: document))
        let version: Int64 = try database.pool.write { db in
            if let latest = try Row.fetchOne(
                db, sql: "SELECT version, sha256 FROM program_versions ORDER BY version DESC LIMIT 1"),
                (latest["sha256"] as String) == hash
            {
                return latest["version"]
            }
            let next = (try Int64.fetchOne(db, sql: "SELECT MAX(version) FROM program_versions") ?? 0) + 1
            let position = try LedgerWriter(db: db).nextPosition()
            try db.cachedStatement(
                sql:
                    "INSERT INTO program_versions (version, document, sha256, effective_at_ms, published_at_ms, published_by, changed_position) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [
                next, Data(document), hash, (effectiveAt ?? now).milliseconds, now.milliseconds, publisher, position,
            ])
            return next
        }
        catalogue.withLock { catalogue in
            if !catalogue.versions.contains(where: { $0.version == version }) {
                catalogue.versions.append(
                    ProgramCatalogue.Version(version: version, effectiveAt: effectiveAt ?? now, program: program))
            }
        }
        return version
    }

    // MARK: Sites

    package func siteStatus(_ site: SiteID) async throws -> SiteRecord? {
        guard let program = programs.latest?.program, program.site(site) != nil else { return nil }
        @Sendable func record(_ db: Database) throws -> SiteRecord? {
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT status, high_water_mark, flags FROM sites WHERE site_id = ?"),
                arguments: [site.rawValue]
            )
            .map { row in
                SiteRecord(
                    site: site, revoked: (row["status"] as String) == "revoked", highWaterMark: row["high_water_mark"],
                    flags: (row["flags"] as String).split(separator: ",").map(String.init))
            }
        }
        // Every sync call asks this: a read, and a write only on the site's first contact.
        if let known = try await database.pool.read({ db in try record(db) }) { return known }
        return try await database.pool.write { db in
            try db.cachedStatement(
                sql: "INSERT INTO sites (site_id, last_hash) VALUES (?, ?) ON CONFLICT (site_id) DO NOTHING"
            ).execute(arguments: [site.rawValue, Data(count: 32)])
            guard let created = try record(db) else { preconditionFailure("site row vanished") }
            return created
        }
    }

    package func isRevoked(serial: String) async throws -> Bool {
        try await database.pool.read { db in
            try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT 1 FROM revoked_certificates WHERE serial = ?"), arguments: [serial])
                ?? false
        }
    }

    /// Revokes or reinstates a site, recording who and why.
    package func setSite(_ site: SiteID, revoked: Bool, by operatorName: String = "", reason: String = "")
        async throws
    {
        let now = clock.now()
        try await database.pool.write { db in
            try db.cachedStatement(
                sql:
                    "INSERT INTO sites (site_id, last_hash, status) VALUES (?, ?, ?) ON CONFLICT (site_id) DO UPDATE SET status = excluded.status"
            ).execute(arguments: [site.rawValue, Data(count: 32), revoked ? "revoked" : "active"])
            try Self.recordAction(
                db, at: now, by: operatorName, action: revoked ? "revoke_site" : "reinstate_site",
                subject: site.rawValue, reason: reason)
        }
    }

    /// Revokes one certificate by serial number; the first revocation stands. Returns it, and
    /// whether it had been revoked before.
    @discardableResult
    package func revokeCertificate(serial: String, reason: String, by operatorName: String = "") async throws
        -> (certificate: RevokedCertificateRecord, alreadyRevoked: Bool)
    {
        let now = clock.now()
        return try await database.pool.write { db in
            try db.cachedStatement(
                sql:
                    "INSERT OR IGNORE INTO revoked_certificates (serial, revoked_at_ms, reason, revoked_by) VALUES (?, ?, ?, ?)"
            ).execute(arguments: [serial, now.milliseconds, reason, operatorName])
            let inserted = db.changesCount > 0
            if inserted {
                try Self.recordAction(
                    db, at: now, by: operatorName, action: "revoke_certificate", subject: serial, reason: reason)
            }
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM revoked_certificates WHERE serial = ?", arguments: [serial])
            else { preconditionFailure("revoked certificate row vanished") }
            return (Self.revokedCertificate(row), !inserted)
        }
    }

    /// Every revoked certificate, newest first.
    package func revokedCertificates() async throws -> [RevokedCertificateRecord] {
        try await database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM revoked_certificates ORDER BY revoked_at_ms DESC, serial")
                .map(Self.revokedCertificate)
        }
    }

    private static func revokedCertificate(_ row: Row) -> RevokedCertificateRecord {
        RevokedCertificateRecord(
            serial: row["serial"], revokedAt: Timestamp(milliseconds: row["revoked_at_ms"]), reason: row["reason"],
            revokedBy: row["revoked_by"])
    }

    /// Keeps a refused call, dropping the oldest beyond `limits.refusedCallsMax`.
    package func recordRefusedCall(_ call: RefusedCall) async throws {
        let keep = limits.refusedCallsMax
        try await database.pool.write { db in
            try db.execute(
                sql:
                    "INSERT INTO refused_calls (at_ms, service, method, peer, address, kind, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    call.at.milliseconds, call.service, call.method, call.peer, call.address, call.kind, call.reason,
                ])
            let newest = db.lastInsertedRowID
            if newest > Int64(keep) {
                try db.execute(sql: "DELETE FROM refused_calls WHERE call_id <= ?", arguments: [newest - Int64(keep)])
            }
        }
    }

    /// Refused calls, newest first, older than `before` (an id) when given.
    package func refusedCalls(before: Int64?, limit: Int) async throws -> [RefusedCall] {
        try await database.pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM refused_calls WHERE (? IS NULL OR call_id < ?) ORDER BY call_id DESC LIMIT ?",
                arguments: [before, before, limit]
            ).map { row in
                RefusedCall(
                    id: row["call_id"], at: Timestamp(milliseconds: row["at_ms"]), service: row["service"],
                    method: row["method"], peer: row["peer"], address: row["address"], kind: row["kind"],
                    reason: row["reason"])
            }
        }
    }

    private static func recordAction(
        _ db: Database, at now: Timestamp, by operatorName: String, action: String, subject: String, reason: String
    ) throws {
        try db.execute(
            sql: "INSERT INTO operator_actions (at_ms, operator, action, subject, reason) VALUES (?, ?, ?, ?, ?)",
            arguments: [now.milliseconds, operatorName, action, subject, reason])
    }

    /// Conflicts in the order they were found, optionally of one site or kind.
    package func conflicts(site: SiteID? = nil, kind: String? = nil, limit: Int = 1_000) async throws
        -> [ConflictRecord]
    {
        try await database.pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT kind, site_id, transaction_id, member_id, resolution, points, detected_at_ms, detail FROM conflicts
                        WHERE (? IS NULL OR site_id = ?) AND (? IS NULL OR kind = ?) ORDER BY conflict_id LIMIT ?
                        """),
                arguments: [site?.rawValue, site?.rawValue, kind, kind, limit]
            ).map { row in
                ConflictRecord(
                    kind: row["kind"], site: row["site_id"], transaction: row["transaction_id"],
                    member: row["member_id"],
                    resolution: row["resolution"], points: row["points"],
                    detectedAt: Timestamp(milliseconds: row["detected_at_ms"]),
                    detail: row["detail"])
            }
        }
    }
}
