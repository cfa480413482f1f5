// Goal: the gate that makes flash-sale orders take turns never lets more than its permits run,
// hands permits over in arrival order, refuses a caller beyond its queue at once, and answers a
// caller whose wait ran out with a refusal (it does not run late).
import NodeSupport
import Synchronization
import Testing

@Suite("Async gate")
struct AsyncGateTests {
    @Test("at most its permits run at once, and every caller runs once")
    func permits() async throws {
        let gate = AsyncGate(permits: 3, waitersMax: 1_000)
        let running = Shared((now: 0, most: 0, done: 0))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 {
                group.addTask {
                    try await gate.withPermit(waiting: .seconds(60)) {
                        running.withLock {
                            $0.now += 1
                            $0.most = max($0.most, $0.now)
                        }
                        await Task.yield()
                        running.withLock {
                            $0.now -= 1
                            $0.done += 1
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = running.withLock { $0 }
        #expect(final.most <= 3 && final.most >= 1 && final.done == 200 && final.now == 0)
        #expect(gate.waiting == 0)
    }

    @Test("waiters are let in in arrival order")
    func order() async throws {
        let gate = AsyncGate(permits: 1, waitersMax: 10)
        let order = Shared<[Int]>([])
        let (opened, open) = AsyncStream.makeStream(of: Void.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let held = Shared(false)
            group.addTask {
                try await gate.withPermit(waiting: .seconds(60)) {
                    held.withLock { $0 = true }
                    for await _ in opened { break }
                }
            }
            while !held.withLock({ $0 }) { await Task.yield() }
            for index in 0..<5 {
                group.addTask {
                    try await gate.withPermit(waiting: .seconds(60)) { order.withLock { $0.append(index) } }
                }
                // Each joins the queue before the next is started.
                while gate.waiting != index + 1 { await Task.yield() }
            }
            open.yield()
            try await group.waitForAll()
        }
        #expect(order.withLock { $0 } == [0, 1, 2, 3, 4])
    }

    @Test("a caller beyond the queue is refused at once; a caller whose wait runs out never runs")
    func refusals() async throws {
        let gate = AsyncGate(permits: 1, waitersMax: 1)
        let ran = Shared(0)
        let (opened, open) = AsyncStream.makeStream(of: Void.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let held = Shared(false)
            group.addTask {
                try await gate.withPermit(waiting: .seconds(60)) {
                    held.withLock { $0 = true }
                    for await _ in opened { break }
                }
            }
            while !held.withLock({ $0 }) { await Task.yield() }
            // One waiter fills the queue; its wait runs out while the permit is held.
            let late: AsyncGateRefusal.Reason? = await {
                async let waited: Void = gate.withPermit(waiting: .milliseconds(50)) { ran.withLock { $0 += 1 } }
                while gate.waiting != 1 { await Task.yield() }
                do {
                    try await gate.withPermit(waiting: .seconds(60)) { ran.withLock { $0 += 1 } }
                    Issue.record("a caller beyond the queue was let in")
                } catch let refusal as AsyncGateRefusal {
                    #expect(refusal.reason == .queueFull)
                } catch {
                    Issue.record("unexpected \(error)")
                }
                do {
                    try await waited
                    return nil
                } catch let refusal as AsyncGateRefusal {
                    return refusal.reason
                } catch {
                    Issue.record("unexpected \(error)")
                    return nil
                }
            }()
            #expect(late == .waitExceeded)
            #expect(gate.waiting == 0)
            open.yield()
            try await group.waitForAll()
        }
        #expect(ran.withLock { $0 } == 0)
        // The permit is free again.
        try await gate.withPermit(waiting: .seconds(1)) { ran.withLock { $0 += 1 } }
        #expect(ran.withLock { $0 } == 1)
    }
}
