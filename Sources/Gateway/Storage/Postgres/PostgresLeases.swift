import Core
import Logging
import PostgresNIO

/// Daily jobs (expiry, tier review, settlement close) run once per period however many gateways
/// share the database (docs/scale.md): a gateway runs a period's job only while it holds the job's
/// lease row. No advisory locks: a row, `INSERT … ON CONFLICT DO NOTHING` and a conditional
/// `UPDATE`, which the PostgreSQL-compatible distributed engines have too.
package enum PostgresLeases {
    /// What taking a lease found.
    package enum Claim: Equatable, Sendable {
        /// This holder has the lease until `until`: run the job, `renew` while it works, `finish`.
        case held(until: Timestamp)
        /// Another holder has a live lease.
        case heldElsewhere(String)
        /// The job of this period has run.
        case done
    }

    /// Takes the lease of `job` for `period`: a new one, or one whose holder let it expire unfinished
    /// (a gateway that died mid-job; each job is idempotent per period, so taking over repeats
    /// nothing that finished).
    package static func claim(
        _ client: PostgresClient, job: String, period: String, holder: String, now: Timestamp, leaseMilliseconds: Int64,
        logger: Logger
    ) async throws -> Claim {
        let until = now.milliseconds + leaseMilliseconds
        for try await _ in try await client.query(
            """
            INSERT INTO job_leases (job, period, holder, expires_at_ms) VALUES (\(job), \(period), \(holder), \(until))
            ON CONFLICT (job, period) DO NOTHING RETURNING holder
            """, logger: logger
        ).decode(String.self) {
            return .held(until: Timestamp(milliseconds: until))
        }
        for try await _ in try await client.query(
            """
            UPDATE job_leases SET holder = \(holder), expires_at_ms = \(until)
            WHERE job = \(job) AND period = \(period) AND NOT done
                AND (expires_at_ms < \(now.milliseconds) OR holder = \(holder))
            RETURNING holder
            """, logger: logger
        ).decode(String.self) {
            return .held(until: Timestamp(milliseconds: until))
        }
        for try await (current, done) in try await client.query(
            "SELECT holder, done FROM job_leases WHERE job = \(job) AND period = \(period)", logger: logger
        ).decode((String, Bool).self) {
            return done ? .done : .heldElsewhere(current)
        }
        throw PostgresLedgerError("the lease of \(job) for \(period) vanished while it was taken")
    }

    /// Extends a held lease; false when it is no longer this holder's (it expired and was taken
    /// over): stop the job.
    package static func renew(
        _ client: PostgresClient, job: String, period: String, holder: String, now: Timestamp, leaseMilliseconds: Int64,
        logger: Logger
    ) async throws -> Bool {
        for try await _ in try await client.query(
            """
            UPDATE job_leases SET expires_at_ms = \(now.milliseconds + leaseMilliseconds)
            WHERE job = \(job) AND period = \(period) AND holder = \(holder) AND NOT done RETURNING holder
            """, logger: logger
        ).decode(String.self) {
            return true
        }
        return false
    }

    /// Marks the job of the period done; false when the lease was no longer this holder's.
    package static func finish(
        _ client: PostgresClient, job: String, period: String, holder: String, logger: Logger
    ) async throws -> Bool {
        for try await _ in try await client.query(
            """
            UPDATE job_leases SET done = TRUE
            WHERE job = \(job) AND period = \(period) AND holder = \(holder) AND NOT done RETURNING holder
            """, logger: logger
        ).decode(String.self) {
            return true
        }
        return false
    }
}
