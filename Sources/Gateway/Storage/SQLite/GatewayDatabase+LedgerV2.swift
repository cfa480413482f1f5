import Foundation
import GRDB
import SwiftProtobuf
import Wire

extension GatewayDatabase {
    /// The ledger as a batch posts it (issue #11): fewer rows and index entries per transaction.
    ///
    /// - `transactions` holds every pushed transaction (posted or rejected, with its outbox row as
    ///   pushed and its result) and every transaction of the gateway's own: the former
    ///   `site_transactions` and `receipts` tables are columns of it (`receipt` is unique).
    /// - A member's balance is a column of its row (`members.balance_points`); `balances` keeps the
    ///   other accounts, written once per account per batch.
    /// - Nothing member-keyed is written per transaction but the member's row: a member's
    ///   transactions are a chain (`transactions.member_previous` back from `members.last_position`)
    ///   and its lots with points left another (`lots.next_lot` from `members.lots_head`), so
    ///   transactions and lots are appended, never inserted at random into a member index.
    /// - `postings` is keyed by position and line; `lot_draws` by position and lot number.
    /// - Posting times never go backwards (a clock that jumps back posts at the last time), so a
    ///   period of posting time is a range of positions and needs no index.
    static func registerLedgerV2(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("2026-12-01 gateway ledger v2") { db in
            try db.execute(
                sql: """
                    CREATE TABLE transactions_v2 (
                        position INTEGER PRIMARY KEY,
                        transaction_id TEXT NOT NULL UNIQUE,
                        kind TEXT,
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
                        detail TEXT NOT NULL DEFAULT '',
                        receipt TEXT,
                        stated_points INTEGER,
                        previous_hash BLOB,
                        payload BLOB,
                        outbox_occurred_at_ms INTEGER,
                        outcome TEXT,
                        reason TEXT,
                        posted_points INTEGER,
                        member_previous INTEGER
                    ) STRICT;
                    INSERT INTO transactions_v2 (position, transaction_id, kind, site_id, site_sequence, merchant_id,
                        member_id, request_id, original_transaction_id, points, amount_minor, occurred_at_ms, posted_at_ms,
                        program_version, detail, previous_hash, payload, outbox_occurred_at_ms, outcome, reason, posted_points)
                    SELECT t.position, t.transaction_id, t.kind, t.site_id, t.site_sequence, t.merchant_id, t.member_id,
                        t.request_id, t.original_transaction_id, t.points, t.amount_minor, t.occurred_at_ms, t.posted_at_ms,
                        t.program_version, t.detail, s.previous_hash, s.payload, s.occurred_at_ms, s.outcome, s.reason,
                        s.posted_points
                    FROM transactions t LEFT JOIN site_transactions s ON s.transaction_id = t.transaction_id;
                    -- Rejected pushed transactions had no ledger row: they take positions after the last.
                    INSERT INTO transactions_v2 (position, transaction_id, kind, site_id, site_sequence, points,
                        amount_minor, occurred_at_ms, posted_at_ms, program_version, previous_hash, payload,
                        outbox_occurred_at_ms, outcome, reason, posted_points)
                    SELECT (SELECT value FROM counters WHERE name = 'position')
                            + ROW_NUMBER() OVER (ORDER BY s.site_id, s.sequence),
                        s.transaction_id, NULL, s.site_id, s.sequence, 0, 0, s.occurred_at_ms,
                        COALESCE((SELECT last_push_at_ms FROM sites WHERE site_id = s.site_id), 0), 0, s.previous_hash,
                        s.payload, s.occurred_at_ms, s.outcome, s.reason, s.posted_points
                    FROM site_transactions s
                    WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.transaction_id = s.transaction_id);
                    UPDATE counters SET value = MAX(value, (SELECT COALESCE(MAX(position), 0) FROM transactions_v2))
                    WHERE name = 'position';
                    UPDATE transactions_v2 SET receipt = r.merchant_id || '|' || r.operation || '|' || r.request_id
                    FROM receipts r WHERE r.transaction_id = transactions_v2.transaction_id;
                    UPDATE transactions_v2 SET member_previous = p.previous FROM (
                        SELECT position, LAG(position) OVER (PARTITION BY member_id ORDER BY position) AS previous
                        FROM transactions_v2 WHERE member_id IS NOT NULL
                    ) p WHERE p.position = transactions_v2.position;
                    -- Posting times never go backwards from here on.
                    UPDATE transactions_v2 SET posted_at_ms = m.at FROM (
                        SELECT position, MAX(posted_at_ms) OVER (ORDER BY position) AS at FROM transactions_v2
                    ) m WHERE m.position = transactions_v2.position AND m.at != transactions_v2.posted_at_ms;

                    CREATE TABLE postings_v2 (
                        position INTEGER NOT NULL, line INTEGER NOT NULL, account TEXT NOT NULL, points INTEGER NOT NULL,
                        PRIMARY KEY (position, line)
                    ) STRICT, WITHOUT ROWID;
                    INSERT INTO postings_v2 (position, line, account, points)
                    SELECT position, ROW_NUMBER() OVER (PARTITION BY position ORDER BY rowid) - 1, account, points
                    FROM postings;

                    CREATE TABLE members_v2 (
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
                        changed_position INTEGER NOT NULL,
                        balance_points INTEGER NOT NULL DEFAULT 0,
                        last_position INTEGER,
                        lots_head INTEGER
                    ) STRICT, WITHOUT ROWID;
                    INSERT INTO members_v2 SELECT m.member_id, m.phone_hash, m.sealed_phone, m.card_number, m.tier,
                        m.tier_review_date, m.birth_month, m.enrolled_at_ms, m.enrolled_site, m.last_earn, m.streak_last_day,
                        m.streak_days, m.merged_into, m.changed_position,
                        COALESCE((SELECT points FROM balances b WHERE b.account = 'member:' || m.member_id), 0),
                        (SELECT MAX(position) FROM transactions_v2 t WHERE t.member_id = m.member_id), NULL
                    FROM members m;
                    DELETE FROM balances WHERE account LIKE 'member:%';

                    CREATE TABLE lots_v2 (
                        lot_number INTEGER PRIMARY KEY,
                        lot_id TEXT NOT NULL,
                        member_id TEXT NOT NULL,
                        earned_at_ms INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL,
                        original_points INTEGER NOT NULL,
                        remaining_points INTEGER NOT NULL,
                        next_lot INTEGER
                    ) STRICT;
                    INSERT INTO lots_v2 (lot_number, lot_id, member_id, earned_at_ms, expires_at_ms, original_points,
                        remaining_points)
                    SELECT ROW_NUMBER() OVER (ORDER BY rowid), lot_id, member_id, earned_at_ms, expires_at_ms,
                        original_points, remaining_points FROM lots;
                    UPDATE lots_v2 SET next_lot = c.next FROM (
                        SELECT lot_number, LEAD(lot_number) OVER (PARTITION BY member_id ORDER BY lot_number DESC) AS next
                        FROM lots_v2 WHERE remaining_points > 0
                    ) c WHERE c.lot_number = lots_v2.lot_number;
                    UPDATE members_v2 SET lots_head = (
                        SELECT MAX(lot_number) FROM lots_v2 l WHERE l.member_id = members_v2.member_id AND l.remaining_points > 0);
                    CREATE TABLE lot_draws_v2 (
                        position INTEGER NOT NULL,
                        lot_number INTEGER NOT NULL,
                        points INTEGER NOT NULL,
                        PRIMARY KEY (position, lot_number)
                    ) STRICT, WITHOUT ROWID;
                    INSERT INTO lot_draws_v2 SELECT d.position, l.lot_number, SUM(d.points)
                    FROM lot_draws d JOIN lots_v2 l ON l.lot_id = d.lot_id GROUP BY d.position, l.lot_number;

                    DROP TABLE postings;
                    DROP TABLE lot_draws;
                    DROP TABLE lots;
                    DROP TABLE receipts;
                    DROP TABLE site_transactions;
                    DROP TABLE transactions;
                    DROP TABLE members;
                    ALTER TABLE transactions_v2 RENAME TO transactions;
                    ALTER TABLE postings_v2 RENAME TO postings;
                    ALTER TABLE members_v2 RENAME TO members;
                    ALTER TABLE lots_v2 RENAME TO lots;
                    ALTER TABLE lot_draws_v2 RENAME TO lot_draws;

                    CREATE UNIQUE INDEX transactions_by_site ON transactions (site_id, site_sequence)
                        WHERE site_sequence IS NOT NULL;
                    CREATE UNIQUE INDEX transactions_by_receipt ON transactions (receipt) WHERE receipt IS NOT NULL;
                    CREATE INDEX transactions_by_original ON transactions (original_transaction_id)
                        WHERE original_transaction_id IS NOT NULL;
                    CREATE INDEX lots_by_expiry ON lots (expires_at_ms) WHERE remaining_points > 0;
                    CREATE UNIQUE INDEX members_by_phone ON members (phone_hash)
                        WHERE merged_into IS NULL AND phone_hash IS NOT NULL;
                    CREATE INDEX members_by_change ON members (changed_position);

                    -- Every account's balance in one place, for operators and audits.
                    CREATE VIEW account_balances (account, points) AS
                        SELECT account, points FROM balances
                        UNION ALL SELECT 'member:' || member_id, balance_points FROM members;
                    """)
            // The points each edge stated (an earn's receipt total, a reversal's change) are read
            // when a refund is checked; they were in the payloads.
            let rows = try Row.fetchAll(
                db,
                sql:
                    "SELECT position, payload FROM transactions WHERE payload IS NOT NULL AND kind IN ('earn', 'reverse')"
            )
            let update = try db.makeStatement(sql: "UPDATE transactions SET stated_points = ? WHERE position = ?")
            for row in rows {
                let payload: Data = row["payload"]
                guard let local = try? Coalition_Sync_V1_LocalTransaction(serializedBytes: payload) else { continue }
                let stated: Int64? =
                    switch local.body {
                    case .earn(let earn): earn.breakdown.totalPoints
                    case .reverse(let reverse): reverse.points
                    default: nil
                    }
                if let stated { try update.execute(arguments: [stated, row["position"] as Int64]) }
            }
        }
    }
}
