import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwiftProtobuf
import Synchronization
import Wire

// The push and pull loops: each round again after the sync interval, or at once while work waits;
// failures back off exponentially up to a cap.
extension SyncClient {
    /// Runs the push and pull loops until cancelled.
    package func runLoops() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.loop(name: "push") { try await self.pushRound() } }
            group.addTask { await self.loop(name: "pull") { try await self.pullRound() } }
        }
    }

    /// Repeats `round` (which says whether more work is waiting) with the sync interval, backing
    /// off exponentially after failures, until cancelled.
    func loop(name: String, _ round: @Sendable () async throws -> Bool) async {
        var backoff = link.backoffInitialMilliseconds
        while !Task.isCancelled {
            let wait: Int
            do {
                let more = try await round()
                backoff = link.backoffInitialMilliseconds
                wait = more ? 0 : link.syncIntervalMilliseconds
            } catch is CancellationError {
                return
            } catch {
                logger.notice("\(name) failed; retrying", metadata: ["error": "\(error)", "retry.ms": "\(backoff)"])
                wait = backoff
                backoff = min(link.backoffMaxMilliseconds, backoff * 2)
            }
            if wait > 0 {
                do {
                    try await sleeper.sleep(for: .milliseconds(wait))
                } catch {
                    return
                }
            }
        }
    }
}
