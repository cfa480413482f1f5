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
            // The script talks to this process's edge: it must run without taking a pool thread.
            let outcome = try await ChildProcess.run(
                "/usr/bin/env", ["python3", script, "127.0.0.1:\(port)", edge.tokens["mall-fashion"]!])
            let text = outcome.output + outcome.errors
            #expect(outcome.status == 0, "\(text)")
            #expect(text.contains("interop: all checks passed"), "\(text)")
        }
    }
}
