import Core
import Foundation
import GRDB
import NodeSupport
import Wire

/// The edge node's SQLite file: one `DatabasePool` in WAL mode with `synchronous=FULL`, a busy
/// timeout, foreign keys on, and the named migrations below, applied before anything is served.
package struct EdgeDatabase: Sendable {
    package let pool: DatabasePool
    /// The file, for its size on disk.
    package let path: String

    /// Opens (creating if needed) and migrates the file for `site`. Refuses a file that belongs
    /// to another site.
    package static func open(path: String, site: SiteID, limits: EdgeLimits, now: Timestamp) throws -> EdgeDatabase {
        let pool = try SQLiteFile.open(
            path: path, label: "edge-\(site)",
            settings: SQLiteFile.Settings(
                busyTimeoutMilliseconds: limits.busyTimeoutMilliseconds, bytesMax: limits.databaseBytesMax))
        try migrator.migrate(pool)
        try pool.write { db in
            if let owner = try String.fetchOne(db, sql: "SELECT site_id FROM sync_state WHERE id = 1") {
                guard owner == site.rawValue else {
                    throw ConfigurationError("the database \(path) belongs to site '\(owner)', not '\(site)'")
                }
            } else {
                try db.execute(
                    sql: "INSERT INTO sync_state (id, site_id, created_at_ms) VALUES (1, ?, ?)",
                    arguments: [site.rawValue, now.milliseconds])
            }
        }
        return EdgeDatabase(pool: pool, path: path)
    }

    /// The bytes the database takes on disk: the file, its WAL and its shared-memory index.
    package var bytesOnDisk: Int64 {
        [path, path + "-wal", path + "-shm"].reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }

    /// Copies the database to `path` with SQLite's online backup, from one read snapshot: writers
    /// go on meanwhile and the copy is consistent (every transaction committed before the snapshot,
    /// none after). The copy is checked (`PRAGMA quick_check`) and then moved into place; an
    /// existing file at `path` is refused. Restore by stopping the node and putting the copy in
    /// place of its database file.
    package func backup(to path: String) throws {
        do {
            try SQLiteFile.backup(pool, to: path)
        } catch let failure as NodeFailure {
            throw ConfigurationError(failure.description)
        }
    }

    /// The migrations, by name. Never edit one that has shipped; add a new one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("2026-11-23 edge v1") { db in
            // The outbox: every local transaction, gap-free by sequence, chained by hash.
            // Rows are never updated or deleted.
            try db.execute(
                sql: """
                    CREATE TABLE outbox (
                        sequence INTEGER PRIMARY KEY,
                        transaction_id TEXT NOT NULL UNIQUE,
                        kind TEXT NOT NULL,
                        merchant_id TEXT NOT NULL,
                        member_id TEXT NOT NULL,
                        request_id TEXT NOT NULL,
                        points INTEGER NOT NULL,
                        amount_minor INTEGER NOT NULL,
                        authorization TEXT,
                        original_transaction_id TEXT,
                        free_minutes INTEGER NOT NULL DEFAULT 0,
                        occurred_at_ms INTEGER NOT NULL,
                        local_day TEXT NOT NULL,
                        previous_hash BLOB NOT NULL,
                        payload_hash BLOB NOT NULL,
                        payload BLOB NOT NULL
                    ) STRICT;
                    CREATE INDEX outbox_by_member ON outbox (member_id, sequence);
                    CREATE INDEX outbox_by_original ON outbox (original_transaction_id)
                        WHERE original_transaction_id IS NOT NULL;
                    CREATE INDEX outbox_floor_limit ON outbox (authorization, member_id, local_day)
                        WHERE authorization IS NOT NULL;

                    -- Each member's points change by each local transaction (a referral changes two).
                    CREATE TABLE member_delta (
                        member_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL REFERENCES outbox (sequence),
                        points INTEGER NOT NULL,
                        PRIMARY KEY (member_id, sequence)
                    ) STRICT, WITHOUT ROWID;

                    -- The original answer to each state-changing request, for retries.
                    CREATE TABLE idempotency (
                        merchant_id TEXT NOT NULL,
                        operation TEXT NOT NULL,
                        request_id TEXT NOT NULL,
                        request_hash BLOB NOT NULL,
                        response BLOB NOT NULL,
                        sequence INTEGER REFERENCES outbox (sequence),
                        PRIMARY KEY (merchant_id, operation, request_id)
                    ) STRICT, WITHOUT ROWID;

                    -- The replica of members: the gateway's last snapshot plus local state.
                    CREATE TABLE members (
                        member_id TEXT PRIMARY KEY,
                        phone_hash BLOB UNIQUE,
                        card_number TEXT UNIQUE,
                        tier TEXT NOT NULL,
                        birth_month INTEGER,
                        snapshot_balance INTEGER NOT NULL DEFAULT 0,
                        snapshot_site_sequence INTEGER NOT NULL DEFAULT 0,
                        snapshot_at_ms INTEGER NOT NULL DEFAULT 0,
                        expiring_points INTEGER NOT NULL DEFAULT 0,
                        next_expiry_at_ms INTEGER NOT NULL DEFAULT 0,
                        last_earn TEXT NOT NULL DEFAULT '',
                        streak_last_day TEXT,
                        streak_days INTEGER NOT NULL DEFAULT 0,
                        enrolled_at_ms INTEGER NOT NULL
                    ) STRICT;

                    CREATE TABLE program_versions (
                        version INTEGER PRIMARY KEY,
                        document BLOB NOT NULL,
                        effective_at_ms INTEGER NOT NULL,
                        received_at_ms INTEGER NOT NULL
                    ) STRICT;

                    CREATE TABLE terminals (
                        token_hash BLOB PRIMARY KEY,
                        terminal_id TEXT NOT NULL UNIQUE,
                        merchant_id TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        revoked_at_ms INTEGER
                    ) STRICT;

                    CREATE TABLE sync_state (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        site_id TEXT NOT NULL,
                        acknowledged_sequence INTEGER NOT NULL DEFAULT 0,
                        pull_cursor INTEGER NOT NULL DEFAULT 0,
                        last_gateway_contact_ms INTEGER,
                        created_at_ms INTEGER NOT NULL
                    ) STRICT;
                    """)
        }
        migrator.registerMigration("2026-11-23 edge sync v1") { db in
            try db.execute(
                sql: """
                    -- Local transactions the gateway rejected (a duplicate receipt, …): left out of balances.
                    CREATE TABLE rejected (
                        sequence INTEGER PRIMARY KEY REFERENCES outbox (sequence),
                        reason TEXT NOT NULL
                    ) STRICT;
                    -- A member record merged into another by the gateway (same person enrolled twice).
                    ALTER TABLE members ADD COLUMN merged_into TEXT;
                    """)
        }
        migrator.registerMigration("2026-11-23 edge merged index v1") { db in
            // A balance sums the deltas of the member and of the records merged into it: without
            // this index that lookup scanned the whole replica on every earn.
            try db.execute(
                sql: "CREATE INDEX members_by_merged_into ON members (merged_into) WHERE merged_into IS NOT NULL")
        }
        migrator.registerMigration("2026-11-30 edge snapshot position v1") { db in
            // The gateway log position of the member snapshot a row holds: an earn states it, and
            // the gateway accepts a stated tier the member held at some moment since then.
            try db.execute(sql: "ALTER TABLE members ADD COLUMN snapshot_position INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("2026-11-30 edge promotion budgets v1") { db in
            try db.execute(
                sql: """
                    -- What each budgeted promotion had left by the gateway's count at the last pull,
                    -- counting this site's transactions up to as_of_sequence.
                    CREATE TABLE promotion_budgets (
                        promotion_id TEXT PRIMARY KEY,
                        points_left INTEGER NOT NULL,
                        as_of_sequence INTEGER NOT NULL
                    ) STRICT, WITHOUT ROWID;
                    -- The promotion points of each local earn, so the budget left is the pulled
                    -- figure less this site's bonuses the gateway had not counted yet.
                    CREATE TABLE outbox_promotions (
                        promotion_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        points INTEGER NOT NULL,
                        PRIMARY KEY (promotion_id, sequence)
                    ) STRICT, WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("2026-12-03 edge vouchers v1") { db in
            try db.execute(
                sql: """
                    -- The network's voucher keys (public halves, by id) and the vouchers the gateway
                    -- says can no longer be honoured (used or cancelled), from the pull feed: a till
                    -- checks a voucher with them, offline (docs/member-api.md).
                    CREATE TABLE voucher_keys (
                        key_id INTEGER PRIMARY KEY,
                        public_key BLOB NOT NULL
                    ) STRICT;
                    CREATE TABLE voucher_states (
                        voucher_id TEXT PRIMARY KEY,
                        status TEXT NOT NULL
                    ) STRICT, WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("2026-12-08 edge outbox member index v1") { db in
            // Balances and histories find a member's transactions through member_delta; only the
            // tier free parking minutes a member used today read the outbox by member. An index
            // of every transaction by member cost each earn a page written at random.
            try db.execute(
                sql: """
                    DROP INDEX outbox_by_member;
                    CREATE INDEX outbox_parking_by_member ON outbox (member_id, local_day) WHERE kind = 'parking';
                    """)
        }
        migrator.registerMigration("2026-12-09 edge allowances v1") { db in
            try db.execute(
                sql: """
                    -- The member's allowance at this site (docs/protocol.md, "Allowances"): what it
                    -- had left after the site's transactions up to snapshot_site_sequence, when the
                    -- site must stop spending it, and the log position it is as of (a snapshot from
                    -- before is not applied); and everything the member has escrowed, all sites.
                    ALTER TABLE members ADD COLUMN allowance_id TEXT;
                    ALTER TABLE members ADD COLUMN allowance_left INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE members ADD COLUMN allowance_stop_at_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE members ADD COLUMN allowance_position INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE members ADD COLUMN escrowed_points INTEGER NOT NULL DEFAULT 0;
                    -- The part of a spend paid from an allowance (the floor-limit part is the rest),
                    -- and each transaction's change of an allowance (spends and returns).
                    ALTER TABLE outbox ADD COLUMN allowance_points INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX members_with_allowance ON members (allowance_stop_at_ms) WHERE allowance_id IS NOT NULL;
                    CREATE TABLE allowance_delta (
                        allowance_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL REFERENCES outbox (sequence),
                        points INTEGER NOT NULL,
                        PRIMARY KEY (allowance_id, sequence)
                    ) STRICT, WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("2026-12-10 edge promotion quotas v1") { db in
            try db.execute(
                sql: """
                    -- promotion_budgets now holds this site's quotas (docs/protocol.md, "Promotion
                    -- quotas"): figures of the whole budget left are not quotas, and go. The issue
                    -- the quotas came in, and the outbox's newest sequence when they were applied,
                    -- are told to the gateway in each pull.
                    DELETE FROM promotion_budgets;
                    ALTER TABLE sync_state ADD COLUMN promotion_quota_issue INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE sync_state ADD COLUMN promotion_quota_applied_sequence INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        return migrator
    }
}
