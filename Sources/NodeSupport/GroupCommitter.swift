import CoreMetrics
import GRDB
import Metrics
import Synchronization

/// Why the group committer did not take a job.
package struct GroupCommitRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Reason: Sendable, Equatable {
        /// `queueMax` jobs are waiting already.
        case queueFull
        /// The committer was closed (the node is shutting down).
        case closed
    }

    package var reason: Reason

    package var description: String {
        switch reason {
        case .queueFull: "too many requests are waiting to be written"
        case .closed: "the writer is closed"
        }
    }
}

/// Writes concurrent requests in one SQLite transaction (group commit) and answers each only after
/// that transaction is committed, so "approved" always means "on disk" without an fsync per request.
///
/// Each job runs in its own savepoint: a job that throws (a refusal, a validation error) leaves no
/// trace and does not disturb the others. A database error inside a job (disk full, I/O) aborts
/// the batch; its jobs are then written one by one so only the failing one fails.
///
/// `run()` is the writer loop; it must be running for `submit` to complete. `close()` stops it after
/// the jobs already queued are written.
package final class GroupCommitter: Sendable {
    private struct Job: Sendable {
        let work: @Sendable (Database) throws -> any Sendable
        let complete: @Sendable (Result<any Sendable, any Error>) -> Void
    }

    private struct State {
        var pending: [Job] = []
        var closed = false
        /// A self-driven committer's drain is running.
        var draining = false
        var batches = 0
        var jobs = 0
        var writing: Duration = .zero
        var turns = 0
    }

    /// Counts since start, for metrics and benchmarks.
    package struct Statistics: Sendable {
        package var batches: Int
        package var jobs: Int
        /// Time spent writing batches, from BEGIN to COMMIT.
        package var writing: Duration
        /// Writer turns: each starts when a job finds the writer idle.
        package var turns: Int
    }

    private let pool: DatabasePool
    private let batchMax: Int
    private let queueMax: Int
    private let selfDriven: Bool
    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    /// Jobs per committed transaction (`coalition_group_commit_batch_size`).
    private let batchSizes: Recorder
    /// Each transaction's time on the writer, from BEGIN to COMMIT
    /// (`coalition_group_commit_duration_seconds`).
    private let commitTimes: CoreMetrics.Timer

    /// A committer writing to `pool`, at most `batchMax` jobs per transaction, refusing new jobs
    /// while `queueMax` are waiting. A `selfDriven` one needs no `run()`: the job that finds no
    /// writer at work starts one, which writes every job queued meanwhile and stops when none is
    /// left (nothing runs while nothing is submitted, so it needs no shutdown). Batch sizes and
    /// commit times are recorded through `metrics`, labelled `writer`.
    package init(
        pool: DatabasePool, batchMax: Int, queueMax: Int, selfDriven: Bool = false,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, writer: String = "writes"
    ) {
        precondition(batchMax > 0 && queueMax > 0, "group commit limits must be positive")
        batchSizes = Recorder(
            label: "coalition_group_commit_batch_size", dimensions: [("writer", writer)], aggregate: true,
            factory: metrics)
        commitTimes = CoreMetrics.Timer(
            label: "coalition_group_commit_duration_seconds", dimensions: [("writer", writer)], factory: metrics)
        self.pool = pool
        self.batchMax = batchMax
        self.queueMax = queueMax
        self.selfDriven = selfDriven
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Jobs waiting for the writer now.
    package var pending: Int {
        state.withLock { $0.pending.count }
    }

    package var statistics: Statistics {
        state.withLock { Statistics(batches: $0.batches, jobs: $0.jobs, writing: $0.writing, turns: $0.turns) }
    }

    /// Runs `work` inside the next group transaction and returns its result once committed.
    /// Throws the work's own error (nothing of it is written), `GroupCommitRefusal` when the queue
    /// is full or the committer closed, or the database error that prevented the commit.
    package func submit<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let result: any Sendable = try await withCheckedThrowingContinuation { continuation in
            let job = Job(work: { try work($0) }, complete: { continuation.resume(with: $0) })
            let selfDriven = self.selfDriven
            let (refusal, lead): (GroupCommitRefusal?, Bool) = state.withLock { state in
                if state.closed { return (GroupCommitRefusal(reason: .closed), false) }
                if state.pending.count >= queueMax { return (GroupCommitRefusal(reason: .queueFull), false) }
                state.pending.append(job)
                guard selfDriven, !state.draining else { return (nil, false) }
                state.draining = true
                return (nil, true)
            }
            if let refusal {
                continuation.resume(throwing: refusal)
            } else if lead {
                // Unstructured on purpose: the writer it starts outlives this call (it also writes
                // the jobs other callers queue meanwhile) and ends when the queue is empty.
                Task { await self.drainWhileQueued() }
            } else if !selfDriven {
                wake.yield()
            }
        }
        guard let typed = result as? T else { preconditionFailure("group commit returned \(type(of: result))") }
        return typed
    }

    /// Stops accepting jobs; `run()` returns once the queued ones are written.
    package func close() {
        state.withLock { $0.closed = true }
        wake.finish()
    }

    /// The writer loop. Returns after `close()` once every queued job is answered.
    package func run() async {
        for await _ in wakeups {
            await drain()
        }
        await drain()
    }

    /// A self-driven committer's writer: drains until the queue is empty, then stops.
    private func drainWhileQueued() async {
        while true {
            await drain()
            let done = state.withLock { state in
                guard state.pending.isEmpty else { return false }
                state.draining = false
                return true
            }
            if done { return }
        }
    }

    /// Writes the queued jobs. The writer stays on the database's writer thread while jobs keep
    /// coming: batch after batch in one writer turn, each its own transaction, so a batch does not
    /// wait for a thread of the cooperative pool between two commits (under load the pool's
    /// threads are busy with the network). A turn ends when the queue is empty or after
    /// `turnMax`, so the node's other writers (pulls, acknowledgements) get theirs.
    private func drain() async {
        while state.withLock({ !$0.pending.isEmpty }) {
            do {
                try await pool.writeWithoutTransaction { db in
                    self.state.withLock { $0.turns += 1 }
                    let started = ContinuousClock.now
                    while let batch = self.nextBatch() {
                        self.write(batch, in: db)
                        if ContinuousClock.now - started >= Self.turnMax { return }
                    }
                }
            } catch {
                // The writer could not be had (the pool is closed): nothing queued can be written.
                let failed = state.withLock { state in
                    defer { state.pending.removeAll() }
                    return state.pending
                }
                failed.forEach { $0.complete(.failure(error)) }
                return
            }
        }
    }

    /// How long one writer turn may last before other writers get the database.
    static let turnMax: Duration = .milliseconds(50)

    /// Takes the next batch off the queue, or nil when it is empty.
    private func nextBatch() -> [Job]? {
        state.withLock { state in
            let count = min(batchMax, state.pending.count)
            guard count > 0 else { return nil }
            let batch = Array(state.pending.prefix(count))
            state.pending.removeFirst(count)
            state.batches += 1
            state.jobs += count
            return batch
        }
    }

    /// Marks a database error raised inside a job, so the whole batch is retried job by job.
    private struct BatchAborted: Error {
        let cause: any Error
    }

    /// Writes `batch` in one transaction and answers its jobs once it is committed.
    private func write(_ batch: [Job], in db: Database) {
        do {
            // Inside `do`: a batch retried job by job records each job's own transaction, not
            // the aborted one around them as well.
            let started = ContinuousClock.now
            defer {
                let duration = ContinuousClock.now - started
                commitTimes.record(duration: duration)
                batchSizes.record(batch.count)
                state.withLock { $0.writing += duration }
            }
            var results: [Result<any Sendable, any Error>] = []
            results.reserveCapacity(batch.count)
            try db.inTransaction {
                results = try batch.map { job -> Result<any Sendable, any Error> in
                    do {
                        return .success(try Self.inSavepoint(db, job.work))
                    } catch let error as DatabaseError {
                        throw BatchAborted(cause: error)
                    } catch {
                        return .failure(error)
                    }
                }
                return .commit
            }
            for (job, result) in zip(batch, results) { job.complete(result) }
        } catch is BatchAborted where batch.count > 1 {
            for job in batch { write([job], in: db) }
        } catch let aborted as BatchAborted {
            batch.forEach { $0.complete(.failure(aborted.cause)) }
        } catch {
            // The commit itself failed: nothing of the batch is on disk.
            batch.forEach { $0.complete(.failure(error)) }
        }
    }

    /// Runs one job in a savepoint of the batch's transaction: its writes are undone if it throws.
    /// The savepoint statements are prepared once (GRDB's own `inSavepoint` compiles two
    /// statements per job).
    private static func inSavepoint(
        _ db: Database, _ work: @Sendable (Database) throws -> any Sendable
    ) throws -> any Sendable {
        try FastStatement(db, sql: "SAVEPOINT job").run { _ in }
        do {
            let value = try work(db)
            try FastStatement(db, sql: "RELEASE SAVEPOINT job").run { _ in }
            return value
        } catch {
            // An error SQLite answered by rolling the whole transaction back (a full disk) left no
            // savepoint to undo; the error itself then aborts the batch.
            if db.isInsideTransaction {
                try FastStatement(db, sql: "ROLLBACK TO SAVEPOINT job").run { _ in }
                try FastStatement(db, sql: "RELEASE SAVEPOINT job").run { _ in }
            }
            throw error
        }
    }
}
