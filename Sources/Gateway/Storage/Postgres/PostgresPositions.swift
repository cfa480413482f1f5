import Core
import Logging
import PostgresNIO

/// Ledger positions on PostgreSQL, where several gateways post at once (docs/scale.md, "the commit
/// low-water mark"). Positions come from the `ledger_positions` sequence, which is not
/// transactional: a transaction can commit after another that took later positions. A reader of the
/// pull feed must not pass a position that may still commit, or it would skip it for good. So:
///
/// 1. before posting, a transaction registers a **claim** (`claim`: committed at once, seen by every
///    reader) whose first position is below every position it will take (`next`);
/// 2. it ends the claim inside its own transaction (`endClaim`), so the claim disappears exactly
///    when its rows become visible;
/// 3. readers serve only positions below the smallest claim (`committedBelow`).
///
/// A claim older than `claimMaxMilliseconds` belongs to a gateway that died between claiming and
/// committing: readers drop it and go on. Its transaction, if it still runs, fails at `endClaim`
/// (its claim is gone) and rolls back, so nothing commits behind a reader.
package enum PostgresPositions {
    /// Registers a claim; returns its first position.
    package static func claim(_ client: PostgresClient, now: Timestamp, logger: Logger) async throws -> Int64 {
        let rows = try await client.query(
            """
            INSERT INTO position_claims (first_position, claimed_at_ms)
            VALUES (nextval('ledger_positions'), \(now.milliseconds)) RETURNING first_position
            """, logger: logger)
        for try await first in rows.decode(Int64.self) { return first }
        throw PostgresLedgerError("claiming ledger positions returned no row")
    }

    /// The next position, inside the claiming transaction: above its claim.
    package static func next(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        for try await position in try await connection.query(
            "SELECT nextval('ledger_positions')", logger: logger
        ).decode(Int64.self) {
            return position
        }
        throw PostgresLedgerError("the position sequence returned no value")
    }

    /// Ends the claim inside the claiming transaction. Throws (and the transaction must roll back)
    /// when the claim is gone: a reader dropped it as stale and may have served past it.
    package static func endClaim(_ first: Int64, _ connection: PostgresConnection, logger: Logger) async throws {
        var ended = false
        for try await _ in try await connection.query(
            "DELETE FROM position_claims WHERE first_position = \(first) RETURNING first_position", logger: logger
        ).decode(Int64.self) {
            ended = true
        }
        guard ended else {
            throw PostgresLedgerError(
                "the claim of positions from \(first) expired before its transaction committed; it is rolled back")
        }
    }

    /// The feed's bound (exclusive): every position below it has committed or never will. Claims
    /// older than `claimMaxMilliseconds` are dropped first.
    package static func committedBelow(
        _ client: PostgresClient, now: Timestamp, claimMaxMilliseconds: Int64, logger: Logger
    ) async throws -> Int64 {
        try await client.query(
            "DELETE FROM position_claims WHERE claimed_at_ms < \(now.milliseconds - claimMaxMilliseconds)",
            logger: logger)
        // The sequence is read before the claims: a claim registered in between is above the value
        // read, so the bound never passes it.
        let rows = try await client.query(
            """
            WITH taken AS (SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END AS next FROM ledger_positions)
            SELECT LEAST((SELECT next FROM taken), COALESCE((SELECT min(first_position) FROM position_claims),
                (SELECT next FROM taken)))
            """, logger: logger)
        for try await bound in rows.decode(Int64.self) { return bound }
        throw PostgresLedgerError("the feed's bound returned no row")
    }
}
