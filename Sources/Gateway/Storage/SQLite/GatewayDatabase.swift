import Core
import Foundation
import GRDB
import NodeSupport
import Wire

/// The gateway's SQLite ledger: one `DatabasePool` (WAL, `synchronous=FULL`, busy timeout, foreign
/// keys) migrated by name before serving. Transactions and postings are insert-only.
package struct GatewayDatabase: Sendable {
    package let pool: DatabasePool

    /// Opens (creating if needed) and migrates the ledger file.
    package static func open(path: String, busyTimeoutMilliseconds: Int = 5_000) throws -> GatewayDatabase {
        // 64 MiB of page cache per connection: the posting path touches members, balances, lots
        // and their indexes all over the file.
        let pool = try SQLiteFile.open(
            path: path, label: "gateway",
            settings: SQLiteFile.Settings(busyTimeoutMilliseconds: busyTimeoutMilliseconds, cacheKibibytes: 65_536))
        try migrator.migrate(pool)
        return GatewayDatabase(pool: pool)
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

    /// Named migrations; never edit one that has shipped.
    package static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("2026-11-23 gateway v1") { db in
            try db.execute(
                sql: """
                    -- The global position: every posted transaction and every change an edge must pull.
                    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
                    INSERT INTO counters (name, value) VALUES ('position', 0);

                    CREATE TABLE sites (
                        site_id TEXT PRIMARY KEY,
                        status TEXT NOT NULL DEFAULT 'active',
                        high_water_mark INTEGER NOT NULL DEFAULT 0,
                        last_hash BLOB NOT NULL,
                        last_seen_at_ms INTEGER,
                        last_push_at_ms INTEGER,
                        newest_occurred_at_ms INTEGER,
                        unsynced_exposure_points INTEGER NOT NULL DEFAULT 0,
                        flags TEXT NOT NULL DEFAULT ''
                    ) STRICT;

                    CREATE TABLE revoked_certificates (
                        serial TEXT PRIMARY KEY, revoked_at_ms INTEGER NOT NULL, reason TEXT NOT NULL
                    ) STRICT;

                    -- Every outbox transaction a site pushed, exactly as pushed, with its result.
                    CREATE TABLE site_transactions (
                        site_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        transaction_id TEXT NOT NULL UNIQUE,
                        previous_hash BLOB NOT NULL,
                        payload BLOB NOT NULL,
                        occurred_at_ms INTEGER NOT NULL,
                        outcome TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        posted_points INTEGER NOT NULL,
                        PRIMARY KEY (site_id, sequence)
                    ) STRICT, WITHOUT ROWID;

                    CREATE TABLE transactions (
                        position INTEGER PRIMARY KEY,
                        transaction_id TEXT NOT NULL UNIQUE,
                        kind TEXT NOT NULL,
                        site_id TEXT,
                        site_sequence INTEGER,
                        merchant_id TEXT,
                        member_id TEXT,
                        request_id TEXT,
                        original_transaction_id TEXT,
                        points INTEGER NOT NULL,
                        amount_minor INTEGER NOT NULL,
                        occurred_at_ms INTEGER NOT NULL,
                        posted_at_ms INTEGER NOT NULL,
                        program_version INTEGER NOT NULL,
                        detail TEXT NOT NULL DEFAULT ''
                    ) STRICT;
                    CREATE INDEX transactions_by_member ON transactions (member_id, posted_at_ms);
                    CREATE INDEX transactions_by_original ON transactions (original_transaction_id)
                        WHERE original_transaction_id IS NOT NULL;
                    CREATE INDEX transactions_by_posted ON transactions (posted_at_ms);

                    CREATE TABLE postings (
                        position INTEGER NOT NULL REFERENCES transactions (position),
                        account TEXT NOT NULL,
                        points INTEGER NOT NULL
                    ) STRICT;
                    CREATE INDEX postings_by_position ON postings (position);
                    CREATE INDEX postings_by_account ON postings (account);

                    -- A cache of SUM(postings.points) per account, checked by the self-check.
                    CREATE TABLE balances (account TEXT PRIMARY KEY, points INTEGER NOT NULL) STRICT, WITHOUT ROWID;

                    CREATE TABLE members (
                        member_id TEXT PRIMARY KEY,
                        phone_hash BLOB,
                        sealed_phone BLOB,
                        card_number TEXT,
                        tier TEXT NOT NULL,
                        tier_review_date TEXT NOT NULL,
                        birth_month INTEGER,
                        enrolled_at_ms INTEGER NOT NULL,
                        enrolled_site TEXT,
                        last_earn TEXT NOT NULL DEFAULT '',
                        streak_last_day TEXT,
                        streak_days INTEGER NOT NULL DEFAULT 0,
                        merged_into TEXT,
                        changed_position INTEGER NOT NULL
                    ) STRICT;
                    CREATE UNIQUE INDEX members_by_phone ON members (phone_hash) WHERE merged_into IS NULL AND phone_hash IS NOT NULL;
                    CREATE INDEX members_by_change ON members (changed_position);

                    CREATE TABLE lots (
                        lot_id TEXT PRIMARY KEY,
                        member_id TEXT NOT NULL,
                        earned_at_ms INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL,
                        original_points INTEGER NOT NULL,
                        remaining_points INTEGER NOT NULL
                    ) STRICT;
                    CREATE INDEX lots_by_member ON lots (member_id, expires_at_ms);
                    CREATE TABLE lot_draws (position INTEGER NOT NULL, lot_id TEXT NOT NULL, points INTEGER NOT NULL) STRICT;
                    CREATE INDEX lot_draws_by_position ON lot_draws (position);

                    CREATE TABLE holds (
                        hold_id TEXT PRIMARY KEY,
                        member_id TEXT NOT NULL,
                        site_id TEXT NOT NULL,
                        merchant_id TEXT NOT NULL,
                        transaction_id TEXT NOT NULL UNIQUE,
                        request_id TEXT NOT NULL,
                        points INTEGER NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL,
                        status TEXT NOT NULL
                    ) STRICT;
                    CREATE INDEX holds_by_member ON holds (member_id, status);

                    -- First posted wins: one transaction per (merchant, operation, receipt).
                    CREATE TABLE receipts (
                        merchant_id TEXT NOT NULL, operation TEXT NOT NULL, request_id TEXT NOT NULL, transaction_id TEXT NOT NULL,
                        PRIMARY KEY (merchant_id, operation, request_id)
                    ) STRICT, WITHOUT ROWID;

                    CREATE TABLE conflicts (
                        conflict_id INTEGER PRIMARY KEY,
                        kind TEXT NOT NULL,
                        site_id TEXT,
                        transaction_id TEXT,
                        member_id TEXT,
                        resolution TEXT NOT NULL,
                        points INTEGER NOT NULL DEFAULT 0,
                        detected_at_ms INTEGER NOT NULL,
                        detail TEXT NOT NULL DEFAULT ''
                    ) STRICT;

                    CREATE TABLE program_versions (
                        version INTEGER PRIMARY KEY,
                        document BLOB NOT NULL,
                        sha256 TEXT NOT NULL,
                        effective_at_ms INTEGER NOT NULL,
                        published_at_ms INTEGER NOT NULL,
                        published_by TEXT NOT NULL,
                        changed_position INTEGER NOT NULL
                    ) STRICT;

                    CREATE TABLE merges (
                        from_member TEXT PRIMARY KEY, into_member TEXT NOT NULL, changed_position INTEGER NOT NULL
                    ) STRICT;
                    """)
        }
        migrator.registerMigration("2026-11-23 gateway jobs v1") { db in
            try db.execute(
                sql: """
                    -- One row per expiry day run, so running a day again changes nothing.
                    CREATE TABLE expiry_runs (
                        day TEXT PRIMARY KEY,
                        members INTEGER NOT NULL,
                        points INTEGER NOT NULL,
                        transactions INTEGER NOT NULL,
                        ran_at_ms INTEGER NOT NULL
                    ) STRICT;
                    """)
        }
        migrator.registerMigration("2026-11-23 gateway settlement v1") { db in
            try db.execute(
                sql: """
                    -- A closed period never changes: its statements are stored once, as first computed.
                    CREATE TABLE settlements (
                        period TEXT PRIMARY KEY,
                        from_ms INTEGER NOT NULL,
                        to_ms INTEGER NOT NULL,
                        json BLOB NOT NULL,
                        csv BLOB NOT NULL,
                        content_hash TEXT NOT NULL,
                        closed_at_ms INTEGER NOT NULL,
                        closed_by TEXT NOT NULL
                    ) STRICT;
                    """)
        }
        migrator.registerMigration("2026-11-23 gateway qualifying v1") { db in
            try db.execute(
                sql: """
                    -- Each member's tier-qualifying points (earns less refunds) per 15 minutes of
                    -- posting time: every time zone's midnight falls on a 15-minute boundary, so a
                    -- rolling window that starts at a local midnight is a sum of whole buckets,
                    -- read without scanning the member's history.
                    CREATE TABLE qualifying_points (
                        member_id TEXT NOT NULL,
                        bucket_ms INTEGER NOT NULL,
                        points INTEGER NOT NULL,
                        PRIMARY KEY (member_id, bucket_ms)
                    ) STRICT, WITHOUT ROWID;
                    INSERT INTO qualifying_points (member_id, bucket_ms, points)
                        SELECT member_id, (posted_at_ms / 900000) * 900000, SUM(points) FROM transactions
                        WHERE member_id IS NOT NULL AND (kind = 'earn' OR (kind = 'reverse' AND points < 0 AND detail = 'refund'))
                        GROUP BY 1, 2;
                    """)
        }
        migrator.registerMigration("2026-11-30 gateway tier spells v1") { db in
            try db.execute(
                sql: """
                    -- Every tier each member has had and the position from which it held, so the
                    -- tier an edge states for an earn can be checked against the tiers the member
                    -- held since the edge's replica position. Members from before this table start
                    -- with their tier at position 0.
                    CREATE TABLE member_tiers (
                        member_id TEXT NOT NULL,
                        position INTEGER NOT NULL,
                        tier TEXT NOT NULL,
                        PRIMARY KEY (member_id, position)
                    ) STRICT, WITHOUT ROWID;
                    INSERT INTO member_tiers (member_id, position, tier) SELECT member_id, 0, tier FROM members;
                    """)
        }
        migrator.registerMigration("2026-11-30 gateway hold balance v1") { db in
            try db.execute(
                sql: """
                    -- The part of a hold taken from the member's balance when it was placed; the
                    -- rest relied on the site's transactions not yet pushed (an earn a moment ago),
                    -- which the site bears. Only this part keeps others from the member's points.
                    -- Holds from before this column hold all their points.
                    ALTER TABLE holds ADD COLUMN balance_points INTEGER;
                    """)
        }
        migrator.registerMigration("2026-11-30 gateway promotion usage v1") { db in
            try db.execute(
                sql: """
                    -- Bonus points each budgeted promotion has given, as posted: the authoritative
                    -- count a promotion's budget is held to (earlier postings did not count).
                    CREATE TABLE promotion_usage (
                        promotion_id TEXT PRIMARY KEY,
                        points_given INTEGER NOT NULL
                    ) STRICT, WITHOUT ROWID;
                    """)
        }
        registerLedgerV2(&migrator)
        migrator.registerMigration("2026-12-01 gateway lots by id v1") { db in
            try db.execute(
                sql: """
                    -- A refund finds the refunded earn's lot by its id, to take back from `expired`
                    -- what of it expired (docs/rules.md, "Refunds").
                    CREATE INDEX lots_by_id ON lots (lot_id);
                    """)
        }
        migrator.registerMigration("2026-12-01 gateway pending referrals v1") { db in
            try db.execute(
                sql: """
                    -- Who referred a member whose referral bonus waits for the member's first
                    -- purchase (earn.referral_paid_at: first_purchase); cleared when it is paid.
                    ALTER TABLE members ADD COLUMN pending_referrer TEXT;
                    """)
        }
        migrator.registerMigration("2026-12-01 gateway operator actions v1") { db in
            try db.execute(
                sql: """
                    -- Who revoked a certificate; and every site revocation, reinstatement and
                    -- certificate revocation, with the operator and the reason.
                    ALTER TABLE revoked_certificates ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';
                    CREATE TABLE operator_actions (
                        action_id INTEGER PRIMARY KEY,
                        at_ms INTEGER NOT NULL,
                        operator TEXT NOT NULL,
                        action TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        reason TEXT NOT NULL
                    ) STRICT;
                    """)
        }
        migrator.registerMigration("2026-12-02 gateway settlement files v1") { db in
            try db.execute(
                sql: """
                    -- Each merchant's own statement file of a closed period, as a JSON object of file
                    -- name to CSV text, stored with the period's statements (NULL for periods closed
                    -- before per-merchant files existed).
                    ALTER TABLE settlements ADD COLUMN merchant_files BLOB;
                    """)
        }
        migrator.registerMigration("2026-12-02 gateway refused calls v1") { db in
            try db.execute(
                sql: """
                    -- Sync and Ops calls refused for who the caller is (wrong site, unknown CA,
                    -- revoked, a site calling Ops), newest kept: bounded by refused_calls_max.
                    CREATE TABLE refused_calls (
                        call_id INTEGER PRIMARY KEY,
                        at_ms INTEGER NOT NULL,
                        service TEXT NOT NULL,
                        method TEXT NOT NULL,
                        peer TEXT NOT NULL,
                        address TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        reason TEXT NOT NULL
                    ) STRICT;
                    """)
        }
        migrator.registerMigration("2026-12-03 gateway mall v1") { db in
            try db.execute(
                sql: """
                    -- The points mall (docs/member-api.md): units of each item sold (orders not
                    -- cancelled) and added or removed by operators; and every order, unique per
                    -- channel and request id. An order's id is its ledger transaction's id.
                    CREATE TABLE mall_stock (
                        item_id TEXT PRIMARY KEY,
                        sold INTEGER NOT NULL,
                        adjusted INTEGER NOT NULL
                    ) STRICT, WITHOUT ROWID;
                    CREATE TABLE mall_orders (
                        order_id TEXT PRIMARY KEY,
                        channel TEXT NOT NULL,
                        request_id TEXT NOT NULL,
                        requested_member_id TEXT NOT NULL,
                        member_id TEXT NOT NULL,
                        item_id TEXT NOT NULL,
                        item_kind TEXT NOT NULL,
                        quantity INTEGER NOT NULL,
                        points INTEGER NOT NULL,
                        money_minor INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        placed_at_ms INTEGER NOT NULL,
                        cancelled_at_ms INTEGER,
                        cancel_transaction_id TEXT
                    ) STRICT, WITHOUT ROWID;
                    CREATE UNIQUE INDEX mall_orders_by_request ON mall_orders (channel, request_id);
                    CREATE INDEX mall_orders_by_member ON mall_orders (member_id, item_id, status);
                    """)
        }
        migrator.registerMigration("2026-12-03 gateway vouchers v1") { db in
            try db.execute(
                sql: """
                    -- Vouchers issued by the points mall's orders (one per unit), with their signed
                    -- codes; `changed_position` is the ledger position of their last change (issue,
                    -- cancellation), for the pull feed. And the public keys of the voucher keys the
                    -- gateways signed with, by id, so edges can verify codes of every key.
                    CREATE TABLE vouchers (
                        voucher_id TEXT PRIMARY KEY,
                        order_id TEXT NOT NULL,
                        item_id TEXT NOT NULL,
                        member_id TEXT NOT NULL,
                        key_id INTEGER NOT NULL,
                        code TEXT NOT NULL,
                        valid_until_ms INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        changed_position INTEGER NOT NULL
                    ) STRICT, WITHOUT ROWID;
                    CREATE INDEX vouchers_by_order ON vouchers (order_id);
                    CREATE INDEX vouchers_by_change ON vouchers (changed_position);
                    CREATE TABLE voucher_keys (
                        key_id INTEGER PRIMARY KEY,
                        public_key BLOB NOT NULL,
                        registered_at_ms INTEGER NOT NULL
                    ) STRICT;
                    """)
        }
        migrator.registerMigration("2026-12-04 gateway voucher uses v1") { db in
            try db.execute(
                sql: """
                    -- The use that stands of each voucher honoured at a till (the first posted).
                    ALTER TABLE vouchers ADD COLUMN used_transaction_id TEXT;
                    ALTER TABLE vouchers ADD COLUMN used_site TEXT;
                    ALTER TABLE vouchers ADD COLUMN used_merchant TEXT;
                    ALTER TABLE vouchers ADD COLUMN used_at_ms INTEGER;
                    """)
        }
        migrator.registerMigration("2026-12-04 gateway stock adjustments v1") { db in
            try db.execute(
                sql: """
                    -- Units operators added to (or removed from) an item, with who and why.
                    CREATE TABLE mall_stock_adjustments (
                        adjustment_id INTEGER PRIMARY KEY,
                        adjusted_at_ms INTEGER NOT NULL,
                        item_id TEXT NOT NULL,
                        units INTEGER NOT NULL,
                        reason TEXT NOT NULL,
                        operator_name TEXT NOT NULL
                    ) STRICT;
                    CREATE INDEX vouchers_by_member ON vouchers (member_id, voucher_id);
                    """)
        }
        migrator.registerMigration("2026-12-04 gateway lotteries v1") { db in
            try db.execute(
                sql: """
                    -- Lotteries (docs/member-api.md, "Lotteries"): each period's secret seed, its
                    -- SHA-256 published before the period opens and the seed itself once it ended;
                    -- every draw, numbered in its period; the units of each prize given. A prize
                    -- voucher is the platform's (`vouchers.sponsor`; NULL: the item's sponsor).
                    CREATE TABLE lottery_seeds (
                        lottery_id TEXT NOT NULL,
                        period TEXT NOT NULL,
                        seed BLOB NOT NULL,
                        commitment BLOB NOT NULL,
                        committed_at_ms INTEGER NOT NULL,
                        revealed_at_ms INTEGER,
                        draws INTEGER NOT NULL,
                        PRIMARY KEY (lottery_id, period)
                    ) STRICT, WITHOUT ROWID;
                    CREATE TABLE lottery_draws (
                        draw_id TEXT PRIMARY KEY,
                        lottery_id TEXT NOT NULL,
                        period TEXT NOT NULL,
                        number INTEGER NOT NULL,
                        channel TEXT NOT NULL,
                        request_id TEXT NOT NULL,
                        requested_member_id TEXT NOT NULL,
                        member_id TEXT NOT NULL,
                        transaction_id TEXT NOT NULL,
                        ticket INTEGER NOT NULL,
                        prize_id TEXT,
                        prize_points INTEGER NOT NULL,
                        voucher_id TEXT,
                        drawn_at_ms INTEGER NOT NULL
                    ) STRICT, WITHOUT ROWID;
                    CREATE UNIQUE INDEX lottery_draws_by_request ON lottery_draws (channel, request_id);
                    CREATE UNIQUE INDEX lottery_draws_by_number ON lottery_draws (lottery_id, period, number);
                    CREATE INDEX lottery_draws_by_member ON lottery_draws (member_id, lottery_id, period);
                    CREATE TABLE lottery_given (
                        lottery_id TEXT NOT NULL,
                        prize_id TEXT NOT NULL,
                        given INTEGER NOT NULL,
                        PRIMARY KEY (lottery_id, prize_id)
                    ) STRICT, WITHOUT ROWID;
                    ALTER TABLE vouchers ADD COLUMN sponsor TEXT;
                    """)
        }
        migrator.registerMigration("2026-12-04 gateway tier benefits v1") { db in
            try db.execute(
                sql: """
                    -- Tier benefits issued (docs/rules.md, "Tier benefits"): one row per member,
                    -- benefit (TIER/BENEFIT) and period; its vouchers have the grant id as order id.
                    CREATE TABLE benefit_grants (
                        member_id TEXT NOT NULL,
                        benefit TEXT NOT NULL,
                        period TEXT NOT NULL,
                        grant_id TEXT NOT NULL,
                        granted_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (member_id, benefit, period)
                    ) STRICT, WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("2026-12-05 gateway mall reports v1") { db in
            // The uses of a voucher (an order's story), and orders by time (the sales report).
            try db.execute(
                sql: """
                    CREATE INDEX transactions_voucher_uses ON transactions (detail) WHERE kind = 'voucher_use';
                    CREATE INDEX mall_orders_by_time ON mall_orders (placed_at_ms);
                    """)
        }
        migrator.registerMigration("2026-12-07 gateway activity v1") { db in
            // A day's activity by the hour (the console's and GetActivity's "today").
            try db.execute(sql: "CREATE INDEX transactions_by_occurred ON transactions (occurred_at_ms)")
        }
        registerAllowances(&migrator)
        registerPromotionQuotas(&migrator)
        return migrator
    }
}
