import Foundation
import PostgresNIO
import Synchronization

/// A pool connection waited for at most a bound of our own (`database_wait_ms`). postgres-nio's
/// pool keeps a lease request waiting while it cannot open connections, until its circuit breaker
/// trips (60 s): a sync call would hold its edge that long, and a gateway stopping would wait for
/// it. Here a child task leases the connection and hands it over; the caller's `body` runs in the
/// caller's own task on it, and the child returns it to the pool when `body` is done.
extension PostgresClient {
    func leased<Result>(
        waiting wait: Duration, _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let (connections, handOver) = AsyncStream.makeStream(of: PostgresConnection.self)
        let release = LeaseRelease()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { handOver.finish() }
                try await self.withConnection { connection in
                    handOver.yield(connection)
                    await release.wait()
                }
            }
            group.addTask {
                try await Task.sleep(for: wait)
                handOver.finish()
                throw DatabaseWaitExceeded(wait: wait)
            }
            var iterator = connections.makeAsyncIterator()
            guard let connection = await iterator.next() else {
                // No connection: the wait ran out, or the pool failed the request (its error).
                release.open()
                group.cancelAll()
                while try await group.next() != nil {}
                throw DatabaseWaitExceeded(wait: wait)
            }
            // The timer is cancelled; the leasing child waits for `release`, which does not end
            // on cancellation (the connection stays ours until `body` is done).
            group.cancelAll()
            defer { release.open() }
            return try await body(connection)
        }
    }
}

/// No pool connection within `database_wait_ms`.
struct DatabaseWaitExceeded: Error, CustomStringConvertible {
    let wait: Duration
    var description: String { "no database connection within database_wait_ms (\(wait))" }
}

/// Opened once; `wait()` returns when it is open, whether before or after.
final class LeaseRelease: Sendable {
    private let state = Mutex<(open: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.open = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
