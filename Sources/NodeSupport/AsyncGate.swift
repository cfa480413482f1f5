import Synchronization

/// Why `AsyncGate` did not let a caller in.
package struct AsyncGateRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Reason: Sendable, Equatable {
        /// `waitersMax` callers are waiting already.
        case queueFull
        /// No permit came free within the caller's wait.
        case waitExceeded
    }

    package var reason: Reason

    package init(reason: Reason) { self.reason = reason }

    package var description: String {
        switch reason {
        case .queueFull: "too many requests are waiting"
        case .waitExceeded: "no turn came within the wait"
        }
    }
}

/// Lets at most `permits` bodies run at a time; the others wait their turn in arrival order,
/// suspended (no thread is blocked), at most `waitersMax` of them and each for at most its own
/// wait. Used where work queues on one database row anyway (orders of one flash-sale item), so
/// that waiting costs memory rather than pooled connections.
package final class AsyncGate: Sendable {
    private struct Waiter {
        var continuation: CheckedContinuation<Void, any Error>?
        /// A permit was handed over before the continuation was stored.
        var granted = false
        /// The wait ran out before the continuation was stored.
        var expired = false
    }

    private struct State {
        var free: Int
        var order: [UInt64] = []
        var waiters: [UInt64: Waiter] = [:]
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>
    private let waitersMax: Int

    /// A gate of `permits` (≥ 1) concurrent bodies and `waitersMax` (≥ 0) waiting callers.
    package init(permits: Int, waitersMax: Int) {
        precondition(permits >= 1 && waitersMax >= 0, "a gate needs a permit and a non-negative queue")
        state = Mutex(State(free: permits))
        self.waitersMax = waitersMax
    }

    /// Callers waiting now.
    package var waiting: Int { state.withLock { $0.order.count } }

    /// Runs `body` once a permit is free. Throws `AsyncGateRefusal` when the queue is full or no
    /// permit came within `wait`.
    package func withPermit<Result>(waiting wait: Duration, _ body: () async throws -> Result) async throws -> Result {
        try await acquire(waiting: wait)
        defer { release() }
        return try await body()
    }

    private func acquire(waiting wait: Duration) async throws {
        enum Entry { case admitted, full, queued(UInt64) }
        let entry: Entry = state.withLock { state in
            if state.free > 0 {
                state.free -= 1
                return .admitted
            }
            guard state.order.count < waitersMax else { return .full }
            state.nextID += 1
            state.order.append(state.nextID)
            state.waiters[state.nextID] = Waiter()
            return .queued(state.nextID)
        }
        let id: UInt64
        switch entry {
        case .admitted: return
        case .full: throw AsyncGateRefusal(reason: .queueFull)
        case .queued(let queued): id = queued
        }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    let now: Result<Void, any Error>? = self.state.withLock { state in
                        guard var waiter = state.waiters[id] else {
                            preconditionFailure("a queued waiter has no entry")
                        }
                        if waiter.granted {
                            state.waiters[id] = nil
                            return .success(())
                        }
                        if waiter.expired {
                            state.waiters[id] = nil
                            return .failure(AsyncGateRefusal(reason: .waitExceeded))
                        }
                        waiter.continuation = continuation
                        state.waiters[id] = waiter
                        return nil
                    }
                    if let now { continuation.resume(with: now) }
                }
                return true
            }
            group.addTask {
                // Cancelled when the turn came first (then nothing is left to expire), or when
                // the caller is gone (then it leaves the queue).
                try? await Task.sleep(for: wait)
                self.expire(id)
                return false
            }
            // The turn (or the refusal, thrown) is the waiter's answer, whatever the timer did.
            while let turn = try await group.next() {
                if turn {
                    group.cancelAll()
                    return
                }
            }
        }
    }

    /// The wait of `id` ran out: it leaves the queue and is answered with a refusal.
    private func expire(_ id: UInt64) {
        let continuation: CheckedContinuation<Void, any Error>? = state.withLock { state in
            guard var waiter = state.waiters[id], !waiter.granted else { return nil }
            state.order.removeAll { $0 == id }
            guard let continuation = waiter.continuation else {
                waiter.expired = true
                state.waiters[id] = waiter
                return nil
            }
            state.waiters[id] = nil
            return continuation
        }
        continuation?.resume(throwing: AsyncGateRefusal(reason: .waitExceeded))
    }

    /// Hands the permit to the first waiter, or frees it.
    private func release() {
        let continuation: CheckedContinuation<Void, any Error>? = state.withLock { state in
            guard !state.order.isEmpty else {
                state.free += 1
                return nil
            }
            let id = state.order.removeFirst()
            guard var waiter = state.waiters[id] else { preconditionFailure("a queued waiter has no entry") }
            guard let continuation = waiter.continuation else {
                waiter.granted = true
                state.waiters[id] = waiter
                return nil
            }
            state.waiters[id] = nil
            return continuation
        }
        continuation?.resume()
    }
}
