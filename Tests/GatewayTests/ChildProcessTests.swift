// Goal: the suite cannot hang on child processes. Swift's cooperative pool has as many threads as
// cores (two here and in CI); a test that waits for a child by blocking a pool thread (a
// synchronous pipe read, `waitUntilExit`) can take every thread while the child waits for work that
// only this process can do, and then nothing ever finishes. These tests run more children at once
// than the pool has threads, each waiting for this process, and must finish.
import Foundation
import TestSupport
import Testing

@Suite("Child processes")
struct ChildProcessTests {
    /// More children than the pool has threads, so a runner that blocked one thread per child
    /// would take them all.
    static var children: Int { ProcessInfo.processInfo.activeProcessorCount + 3 }

    @Test(
        "children that wait for this process finish while more of them run than the pool has threads",
        .timeLimit(.minutes(2)))
    func childrenWaitingForThisProcess() async throws {
        let directory = try TemporaryDirectory()
        let go = directory.path("go")
        // Each child first writes 256 KiB to standard error (four times a pipe's buffer), then waits
        // until this process creates `go`, then prints to standard output. A runner that read one
        // pipe to its end before the other would deadlock on the first write; one that blocked a
        // pool thread per child would never let the task below create the file.
        let script = """
            head -c 262144 /dev/zero | tr '\\\\0' e >&2
            while [ ! -e '\(go)' ]; do sleep 0.02; done
            echo "child $1 done"
            """
        let outcomes = try await withThrowingTaskGroup(of: ChildProcess.Outcome?.self) { group in
            for index in 0..<Self.children {
                group.addTask { try await ChildProcess.run("/bin/sh", ["-c", script, "sh", "\(index)"]) }
            }
            group.addTask {
                // Work only this process can do, on the same pool, while every child waits for it.
                try await Task.sleep(for: .milliseconds(300))
                #expect(FileManager.default.createFile(atPath: go, contents: Data()))
                return nil
            }
            var outcomes: [ChildProcess.Outcome] = []
            for try await outcome in group { if let outcome { outcomes.append(outcome) } }
            return outcomes
        }
        #expect(outcomes.count == Self.children)
        for outcome in outcomes {
            #expect(outcome.status == 0)
            #expect(outcome.errors.utf8.count == 262_144)
            #expect(outcome.output.hasPrefix("child ") && outcome.output.hasSuffix(" done\n"))
        }
    }

    @Test(
        "several runs of the coalition binary at once, beside in-process async work", .timeLimit(.minutes(2)))
    func binaryRunsAtOnce() async throws {
        let program = Repository.exampleProgram.path
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<Self.children {
                group.addTask { try await Binary.run(["program", "check", program]) }
            }
            var outputs: [String] = []
            for try await output in group { outputs.append(output) }
            return outputs
        }
        #expect(outputs.count == Self.children)
        #expect(Set(outputs).count == 1, "the same check gives the same answer")
        #expect(outputs.first?.isEmpty == false)
    }

    @Test("a child that fails reports its status and standard error")
    func failure() async throws {
        let outcome = try await ChildProcess.run("/bin/sh", ["-c", "echo out; echo broken >&2; exit 3"])
        #expect(outcome.status == 3)
        #expect(outcome.output == "out\n")
        #expect(outcome.errors == "broken\n")
        await #expect(throws: (any Error).self) {
            try await ChildProcess.run("/nonexistent/program", [])
        }
    }
}
