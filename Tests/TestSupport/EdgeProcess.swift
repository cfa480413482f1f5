import Foundation

/// A `coalition edge serve` (or `gateway serve`) process, started from a config file, with its log
/// in a file.
package final class EdgeProcess: Sendable {
    package let process: SpawnedProcess
    package let portFile: String
    package let logFile: String

    /// Starts `coalition <node> serve --config config`; with `openFileLimit`, under that open-file
    /// limit (`ulimit -n` in a shell that then becomes the node).
    package init(config: String, directory: String, node: String = "edge", openFileLimit: Int? = nil) throws {
        guard let path = Binary.path else {
            throw ProcessFailure("the coalition binary is not built: run `swift build` first")
        }
        portFile = directory + "/port-\(UUID().uuidString)"
        logFile = directory + "/\(node)-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let arguments = [node, "serve", "--config", config, "--port-file", portFile, "--log-level", "debug"]
        if let openFileLimit {
            process = try SpawnedProcess(
                "/bin/sh", ["-c", "ulimit -n \(openFileLimit) && exec \"$0\" \"$@\"", path] + arguments, output: logFile
            )
        } else {
            process = try SpawnedProcess(path, arguments, output: logFile)
        }
    }

    /// Waits until the node has written its port (at most 30 s).
    package func port() async throws -> Int {
        for _ in 0..<600 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return port
            }
            guard process.isRunning else { throw ProcessFailure("the node exited early:\n\(log)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProcessFailure("the node did not start within 30 s:\n\(log)")
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
            throw ProcessFailure("the node did not exit within 30 s")
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
