import Core
import Foundation
import GRDB
import Logging
import NodeSupport

// Keeping the edge's file within `limits.database_bytes_max` for good: transactions the gateway has
// acknowledged are deleted once older than `limits.outbox_retention_ms`, the WAL is checkpointed,
// and the node says when it nears or reaches the cap (docs/edge.md, "Storage").
extension EdgeLedger {
    /// Rows deleted per write transaction, so that pruning never holds the writer long.
    static let pruneBatch = 1_000

    /// Deletes acknowledged outbox rows that occurred before the retention, with what only they
    /// used (their balance deltas, stored answers, rejections, promotion records). Kept: the
    /// chain head (the next transaction links to it), every row not acknowledged, and every row
    /// whose points a member's snapshot from the gateway does not include yet. Returns the number
    /// of transactions deleted.
    package func pruneAcknowledged() async throws -> Int {
        let cutoff = clock.now().milliseconds - limits.outboxRetentionMilliseconds
        var total = 0
        while true {
            let pruned = try await database.pool.write { db in try Self.prune(db, before: cutoff) }
            total += pruned
            if pruned < Self.pruneBatch { return total }
        }
    }

    private static func prune(_ db: Database, before cutoff: Int64) throws -> Int {
        try db.execute(sql: "CREATE TEMP TABLE IF NOT EXISTS pruned (sequence INTEGER PRIMARY KEY)")
        try db.execute(sql: "DELETE FROM pruned")
        try db.execute(
            sql: """
                INSERT INTO pruned
                SELECT o.sequence FROM outbox o
                WHERE o.sequence <= (SELECT acknowledged_sequence FROM sync_state WHERE id = 1)
                  AND o.sequence < (SELECT MAX(sequence) FROM outbox)
                  AND o.occurred_at_ms < ?
                  AND NOT EXISTS (
                    SELECT 1 FROM member_delta d
                    JOIN members m ON m.member_id = d.member_id
                    LEFT JOIN members survivor ON survivor.member_id = m.merged_into
                    WHERE d.sequence = o.sequence
                      AND COALESCE(survivor.snapshot_site_sequence, m.snapshot_site_sequence) < o.sequence)
                ORDER BY o.sequence LIMIT ?
                """, arguments: [cutoff, pruneBatch])
        for table in ["member_delta", "allowance_delta", "idempotency", "rejected", "outbox_promotions", "outbox"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE sequence IN (SELECT sequence FROM pruned)")
        }
        return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pruned") ?? 0
    }

    /// Moves the WAL into the main file and truncates it (skipped, not waited for, while readers
    /// hold it).
    package func checkpoint() async throws {
        try await database.pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    /// One round of storage housekeeping: prune, checkpoint, and log the size against the cap
    /// (at warning from 90 % of it).
    package func keepStorage(logger: Logger) async {
        do {
            let pruned = try await pruneAcknowledged()
            if pruned > 0 {
                logger.info(
                    "pruned acknowledged transactions",
                    metadata: ["transactions": "\(pruned)", "retention_ms": "\(limits.outboxRetentionMilliseconds)"])
            }
            try await checkpoint()
        } catch {
            logger.warning("storage housekeeping failed", metadata: ["error": "\(error)"])
        }
        let cap = limits.databaseBytesMax
        let bytes = database.bytesOnDisk
        if cap > 0, bytes * 10 >= cap * 9 {
            logger.warning(
                "storage near its cap",
                metadata: ["bytes": "\(bytes)", "database_bytes_max": "\(cap)"])
        }
    }
}
