// Goal: the edge's SQLite file is configured for durability exactly as DESIGN §4 says (read back,
// not assumed), is migrated by name, and refuses to serve another site's data.
import Core
import EdgeNode
import Foundation
import GRDB
import NodeSupport
import TestSupport
import Testing
import Wire

@Suite("Edge store")
struct EdgeStoreTests {
    @Test("the writer runs with synchronous=FULL in WAL mode, a busy timeout and foreign keys on")
    func pragmas() throws {
        let directory = try TemporaryDirectory()
        var limits = EdgeLimits()
        limits.busyTimeoutMilliseconds = 4321
        let database = try EdgeDatabase.open(
            path: directory.path("edge.sqlite"), site: SiteID("mall-01")!, limits: limits,
            now: ManualWallClock.tuesdayNoon)
        let writer = try database.pool.write { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA synchronous"), try String.fetchOne(db, sql: "PRAGMA journal_mode"),
                try Int.fetchOne(db, sql: "PRAGMA busy_timeout"), try Int.fetchOne(db, sql: "PRAGMA foreign_keys")
            )
        }
        #expect(writer.0 == 2)  // FULL
        #expect(writer.1 == "wal")
        #expect(writer.2 == 4321)
        #expect(writer.3 == 1)
        let reader = try database.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        #expect(reader == 2)
    }

    @Test("migrations are applied by name, once")
    func migrations() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("edge.sqlite")
        _ = try EdgeDatabase.open(
            path: path, site: SiteID("mall-01")!, limits: EdgeLimits(), now: ManualWallClock.tuesdayNoon)
        let reopened = try EdgeDatabase.open(
            path: path, site: SiteID("mall-01")!, limits: EdgeLimits(), now: ManualWallClock.tuesdayNoon)
        let names = try reopened.pool.read { db in
            try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        }
        #expect(
            names == [
                "2026-11-23 edge v1", "2026-11-23 edge sync v1", "2026-11-23 edge merged index v1",
                "2026-11-30 edge snapshot position v1", "2026-11-30 edge promotion budgets v1",
                "2026-12-03 edge vouchers v1", "2026-12-08 edge outbox member index v1",
                "2026-12-09 edge allowances v1", "2026-12-10 edge promotion quotas v1",
            ])
    }

    @Test("a database of one site does not open for another")
    func siteBinding() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("edge.sqlite")
        _ = try EdgeDatabase.open(
            path: path, site: SiteID("mall-01")!, limits: EdgeLimits(), now: ManualWallClock.tuesdayNoon)
        #expect(throws: ConfigurationError.self) {
            try EdgeDatabase.open(
                path: path, site: SiteID("hotel-01")!, limits: EdgeLimits(), now: ManualWallClock.tuesdayNoon)
        }
    }

    @Test("a config file is read with its keys, and mistakes are named")
    func configFile() throws {
        let directory = try TemporaryDirectory()
        try PrivateFiles.write(EdgeFixture.phoneKeyHex + "\n", to: directory.path("phone.key"))
        try """
        site_id: mall-01
        database_path: data/mall.sqlite
        listen: "[::1]:7001"
        phone_hash_key_file: phone.key
        tls:
          certificate: certs/pos.pem
          private_key: certs/pos.key
        limits:
          group_commit_batch_max: 64
          terminal_cache_ms: 0
        """.write(toFile: directory.path("edge.yaml"), atomically: true, encoding: .utf8)
        let configuration = try EdgeConfiguration.load(file: directory.path("edge.yaml"))
        #expect(configuration.siteID == SiteID("mall-01"))
        #expect(configuration.databasePath == directory.path("data/mall.sqlite"))
        #expect(configuration.listenHost == "::1")
        #expect(configuration.listenPort == 7001)
        #expect(configuration.limits.groupCommitBatchMax == 64)
        #expect(configuration.limits.terminalCacheMilliseconds == 0)
        #expect(configuration.phoneHashKey.count == 32)
        #expect(configuration.tls?.certificatePath == directory.path("certs/pos.pem"))
        #expect(configuration.tls?.privateKeyPath == directory.path("certs/pos.key"))

        // Several gateways sharing one ledger, tried in turn (docs/edge.md).
        try """
        site_id: mall-01
        database_path: x.sqlite
        listen: 127.0.0.1:0
        phone_hash_key_file: \(directory.path("phone.key"))
        gateway:
          addresses: [10.0.0.1:7443, "10.0.0.2:7443"]
          ca_certificate: ca.pem
          certificate: mall.pem
          private_key: mall.key
        """.write(toFile: directory.path("two.yaml"), atomically: true, encoding: .utf8)
        let two = try EdgeConfiguration.load(file: directory.path("two.yaml"))
        #expect(two.gateway?.addresses.map { "\($0.host):\($0.port)" } == ["10.0.0.1:7443", "10.0.0.2:7443"])
        let bad = try String(contentsOfFile: directory.path("two.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "\"10.0.0.2:7443\"", with: "nowhere")
        try bad.write(toFile: directory.path("bad-two.yaml"), atomically: true, encoding: .utf8)
        #expect {
            try EdgeConfiguration.load(file: directory.path("bad-two.yaml"))
        } throws: {
            "\($0)".contains("gateway.addresses[1]") && "\($0)".contains("nowhere")
        }

        try """
        site_id: Mall 01
        database_path: x.sqlite
        listen: nowhere
        phone_hash_key_file: missing.key
        tls:
          certificate: pos.pem
        limits:
          group_commit_batch_max: 0
          group_commit_batch_size: 4
        """.write(toFile: directory.path("bad.yaml"), atomically: true, encoding: .utf8)
        do {
            _ = try EdgeConfiguration.load(file: directory.path("bad.yaml"))
            Issue.record("a bad config loaded")
        } catch let error as ConfigurationError {
            for key in [
                "site_id", "listen", "phone_hash_key_file", "limits.group_commit_batch_max",
                "limits.group_commit_batch_size", "tls.private_key",
            ] {
                #expect(error.description.contains(key), "missing \(key) in \(error)")
            }
        }
    }
}
