// Goal: a client that is not ours — Python grpcio stubs generated from protos/ — completes a POS
// scenario against a real edge node and sees exactly the documented answers (DESIGN §11).
import Core
import EdgeNode
import Foundation
import TestSupport
import Testing

@Suite("Interoperability")
struct InteropTests {
    @Test("a Python grpcio client generated from protos/ runs a POS scenario")
    func python() async throws {
        try await EdgeFixture.withEdge(merchants: ["mall-fashion"]) { edge in
            let port = try await edge.node.listeningPort
            let script = Repository.root.appendingPathComponent("Tests/Interop/pos_scenario.py").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script, "127.0.0.1:\(port)", edge.tokens["mall-fashion"]!]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let text = await Task.detached {
                // A detached read: readDataToEndOfFile blocks its thread until the script ends.
                String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            }.value
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(text)")
            #expect(text.contains("interop: all checks passed"), "\(text)")
        }
    }
}
