import Foundation

/// A `coalition edge serve` process, started from a config file, with its log in a file.
package final class EdgeProcess: @unchecked Sendable {
    // @unchecked: the Process is touched only by the test that owns this object, one step at a time.
    package let process = Process()
    package let portFile: String
    package let logFile: String

    package init(config: String, directory: String) throws {
        guard let path = Binary.path else {
            throw ProcessFailure("the coalition binary is not built: run `swift build` first")
        }
        portFile = directory + "/port-\(UUID().uuidString)"
        logFile = directory + "/edge-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["edge", "serve", "--config", config, "--port-file", portFile, "--log-level", "debug"]
        let log = FileHandle(forWritingAtPath: logFile)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Waits until the node has written its port (at most 30 s).
    package func port() async throws -> Int {
        for _ in 0..<600 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return port
            }
            guard process.isRunning else { throw ProcessFailure("the edge exited early:\n\(log)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProcessFailure("the edge did not start within 30 s:\n\(log)")
    }

    package var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    package func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit (at most 30 s) and returns its status.
    package func waitForExit() async throws -> Int32 {
        for _ in 0..<600 where process.isRunning {
            try await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else {
            signal(SIGKILL)
            throw ProcessFailure("the edge did not exit within 30 s")
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
