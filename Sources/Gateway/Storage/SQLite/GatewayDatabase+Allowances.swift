import GRDB

extension GatewayDatabase {
    /// Allowances (escrow, docs/protocol.md "Allowances and promotion quotas"): one row per grant,
    /// keyed by the grant's transaction id, with what was spent from it and what went back, and
    /// when each site last caught up (its pushes reached the outbox head it reported), which the
    /// reclaim job reads.
    static func registerAllowances(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("2026-12-08 gateway allowances v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE allowances (
                        allowance_id TEXT PRIMARY KEY,
                        site_id TEXT NOT NULL,
                        member_id TEXT NOT NULL,
                        granted_points INTEGER NOT NULL,
                        spent_points INTEGER NOT NULL,
                        released_points INTEGER NOT NULL,
                        granted_at_ms INTEGER NOT NULL,
                        lease_until_ms INTEGER NOT NULL,
                        status TEXT NOT NULL
                    ) STRICT, WITHOUT ROWID;
                    CREATE INDEX allowances_by_site ON allowances (site_id, status, member_id);
                    CREATE INDEX allowances_by_member ON allowances (member_id, status);
                    CREATE INDEX allowances_active_by_lease ON allowances (lease_until_ms) WHERE status = 'active';
                    ALTER TABLE sites ADD COLUMN caught_up_at_ms INTEGER;
                    """)
        }
    }

    /// Promotion quotas (docs/protocol.md, "Promotion quotas"): each site's holding in each
    /// budgeted promotion, and the bonus each site gave per day, which the split is proportional to.
    static func registerPromotionQuotas(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("2026-12-10 gateway promotion quotas v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE promotion_quotas (
                        promotion_id TEXT NOT NULL,
                        site_id TEXT NOT NULL,
                        given_points INTEGER NOT NULL,
                        held_points INTEGER NOT NULL,
                        issued_points INTEGER NOT NULL,
                        issue INTEGER NOT NULL,
                        issued_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (promotion_id, site_id)
                    ) STRICT, WITHOUT ROWID;
                    CREATE TABLE promotion_site_days (
                        promotion_id TEXT NOT NULL,
                        site_id TEXT NOT NULL,
                        day INTEGER NOT NULL,
                        points INTEGER NOT NULL,
                        PRIMARY KEY (promotion_id, site_id, day)
                    ) STRICT, WITHOUT ROWID;
                    """)
        }
    }
}
