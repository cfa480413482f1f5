import Core
import Logging
import PostgresNIO

/// Ledger positions on PostgreSQL, where several gateways post at once (docs/scale.md, "the commit
/// low-water mark"). Transactions commit in any order, so a reader of the pull feed must not pass
/// a position that may still commit, or it would skip it for good. So:
///
/// 1. a posting transaction, once it holds its rows' locks, **claims** a block of positions
///    (`claim`): one short transaction of its own that advances the `position` counter and records
///    the claim, committed at once and seen by every reader;
/// 2. it posts at positions of its block, and ends the claim inside its own transaction
///    (`endClaim`), so the claim disappears exactly when its rows become visible;
/// 3. readers serve only positions below the smallest claim (`committedBelow`), read with the
///    counter in one statement: the counter and the claim commit together, so no reader sees a
///    block taken without seeing its claim.
///
/// A claim older than `claimMaxMilliseconds` belongs to a gateway that died between claiming and
/// committing: readers drop it and go on. Its transaction, if it still runs, fails at `endClaim`
/// (its claim is gone) and rolls back, so nothing commits behind a reader.
///
/// A transaction claims only after it has locked every member it posts to, so a member's positions
/// rise in the order its transactions commit.
///
/// A claim also takes the block's **posting instant**: the later of the claimer's clock and the last
/// instant claimed (the `posted_at_ms` counter, which only rises), so posting times rise with
/// positions across gateways and a period of posting time is a range of positions (settlement
/// relies on it, as on SQLite). Closing a period raises the counter to the period's end first
/// (`closePeriod`), so no gateway, however slow its clock, posts into a closed period.
package enum PostgresPositions {
    /// A block of positions and the instant its transactions are posted at.
    package struct Claim: Sendable, Equatable {
        package var first: Int64
        package var instant: Timestamp
    }

    /// Claims `count` positions (the block is `first ..< first + count`). The claim's own commit
    /// does not wait for the disk: the posting transaction's commit, later in the same log, makes
    /// both durable, and a claim lost in a crash claimed nothing that committed.
    package static func claim(_ client: PostgresClient, count: Int64, now: Timestamp, logger: Logger) async throws
        -> Claim
    {
        precondition(count > 0, "a claim takes at least one position")
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SET LOCAL synchronous_commit = off", logger: logger)
            let rows = try await connection.query(
                """
                WITH taken AS (
                    UPDATE counters SET value = value + \(count) WHERE name = 'position' RETURNING value
                ), instant AS (
                    UPDATE counters SET value = GREATEST(value, \(now.milliseconds)) WHERE name = 'posted_at_ms'
                    RETURNING value
                )
                INSERT INTO position_claims (first_position, claimed_at_ms, posted_at_ms)
                SELECT taken.value - \(count) + 1, \(now.milliseconds), instant.value FROM taken, instant
                RETURNING first_position, posted_at_ms
                """, logger: logger)
            for try await (first, instant) in rows.decode((Int64, Int64).self) {
                return Claim(first: first, instant: Timestamp(milliseconds: instant))
            }
            throw PostgresLedgerError("claiming ledger positions returned no row: the position counter is missing")
        }
    }

    /// Raises the posting instant to at least `end`, so every claim from now on posts at or after
    /// it; then waits (up to `waitMilliseconds`) until no claim posting before `end` is still open.
    /// Returns false when one still is (its transaction is being written): the caller tries later.
    package static func closePeriod(
        _ client: PostgresClient, end: Timestamp, now: Timestamp, claimMaxMilliseconds: Int64,
        waitMilliseconds: Int64, logger: Logger
    ) async throws -> Bool {
        try await client.query(
            """
            UPDATE counters SET value = GREATEST(value, \(end.milliseconds)) WHERE name = 'posted_at_ms'
            """, logger: logger)
        var waited: Int64 = 0
        while true {
            try await client.query(
                "DELETE FROM position_claims WHERE claimed_at_ms < \(now.milliseconds - claimMaxMilliseconds)",
                logger: logger)
            var open = false
            for try await _ in try await client.query(
                "SELECT 1 FROM position_claims WHERE posted_at_ms < \(end.milliseconds) LIMIT 1", logger: logger
            ).decode(Int.self) {
                open = true
            }
            if !open { return true }
            guard waited < waitMilliseconds else { return false }
            try await Task.sleep(for: .milliseconds(50))
            waited += 50
        }
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

    /// Drops a claim whose transaction rolled back (best effort: a claim left behind is dropped by
    /// readers after `claimMaxMilliseconds`).
    package static func abandon(_ first: Int64, _ client: PostgresClient, logger: Logger) async {
        _ = try? await client.query("DELETE FROM position_claims WHERE first_position = \(first)", logger: logger)
    }

    /// The feed's bound (exclusive): every position below it has committed or never will. Claims
    /// older than `claimMaxMilliseconds` are dropped first.
    package static func committedBelow(
        _ client: PostgresClient, now: Timestamp, claimMaxMilliseconds: Int64, logger: Logger
    ) async throws -> Int64 {
        try await client.query(
            "DELETE FROM position_claims WHERE claimed_at_ms < \(now.milliseconds - claimMaxMilliseconds)",
            logger: logger)
        return try await committedBelow(client, logger: logger)
    }

    /// The bound as it stands, dropping nothing.
    package static func committedBelow(_ client: PostgresClient, logger: Logger) async throws -> Int64 {
        let rows = try await client.query(
            """
            SELECT LEAST(c.value + 1, COALESCE((SELECT min(first_position) FROM position_claims), c.value + 1))
            FROM counters c WHERE c.name = 'position'
            """, logger: logger)
        for try await bound in rows.decode(Int64.self) { return bound }
        throw PostgresLedgerError("the feed's bound returned no row: the position counter is missing")
    }
}
