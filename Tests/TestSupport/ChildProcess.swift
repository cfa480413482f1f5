import Foundation
import Synchronization

/// Child processes run without blocking a thread of Swift's cooperative pool.
///
/// The pool has as many threads as cores (two here and in CI). A synchronous read of a pipe or
/// `waitUntilExit()` in async code takes one of them until the child ends; with both taken, an
/// in-process server the child talks to can never run and the suite stops for good. So nothing here
/// waits on the pool: each pipe is read to its end and the exit awaited on a thread of its own
/// (Foundation's readability handlers lost the end of a pipe here now and then, so plain threads),
/// and the caller is resumed when all three are done. Standard output and standard error are read at the same time, so a child that
/// fills one pipe while the other is being read to its end cannot deadlock.
package enum ChildProcess {
    /// What a finished child printed and how it ended.
    package struct Outcome: Sendable {
        package var status: Int32
        package var output: String
        package var errors: String
    }

    private struct Collected {
        var output = Data()
        var errors = Data()
        var outputDone = false
        var errorsDone = false
        var status: Int32?
        var continuation: CheckedContinuation<Outcome, any Error>?

        /// The outcome once both pipes are at their end and the process has exited.
        mutating func finished() -> (CheckedContinuation<Outcome, any Error>, Outcome)? {
            guard outputDone, errorsDone, let status, let continuation else { return nil }
            self.continuation = nil
            return (
                continuation,
                Outcome(
                    status: status, output: String(decoding: output, as: UTF8.self),
                    errors: String(decoding: errors, as: UTF8.self))
            )
        }
    }

    /// Runs `executable` with `arguments` to its end and returns its status and output.
    package static func run(_ executable: String, _ arguments: [String]) async throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let state = Mutex(Collected())
        @Sendable func resumeIfFinished() {
            if let (continuation, outcome) = state.withLock({ $0.finished() }) {
                continuation.resume(returning: outcome)
            }
        }
        return try await withCheckedThrowingContinuation { continuation in
            state.withLock { $0.continuation = continuation }
            do {
                try process.run()
            } catch {
                state.withLock { $0.continuation = nil }
                continuation.resume(throwing: error)
                return
            }
            // Three threads of their own, never the pool's: one reads each pipe to its end (so
            // neither pipe can fill while the other is read), one waits for the exit.
            Thread.detachNewThread {
                let data = output.fileHandleForReading.readDataToEndOfFile()
                state.withLock {
                    $0.output = data
                    $0.outputDone = true
                }
                resumeIfFinished()
            }
            Thread.detachNewThread {
                let data = errors.fileHandleForReading.readDataToEndOfFile()
                state.withLock {
                    $0.errors = data
                    $0.errorsDone = true
                }
                resumeIfFinished()
            }
            Thread.detachNewThread {
                process.waitUntilExit()
                state.withLock { $0.status = process.terminationStatus }
                resumeIfFinished()
            }
        }
    }

    /// Waits, without blocking a thread, until `process` has exited (polling every 20 ms, at most
    /// `seconds`); false when it is still running then.
    @discardableResult
    package static func waitForExit(_ process: Process, seconds: Int = 30) async throws -> Bool {
        for _ in 0..<(seconds * 50) where process.isRunning {
            try await Task.sleep(for: .milliseconds(20))
        }
        return !process.isRunning
    }
}
