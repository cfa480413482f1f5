// Goal: `coalition demo`, the first thing a newcomer runs, works from the built binary: it exits 0
// and shows the overdraft resolved, the duplicate receipt refused, and a statement whose nets sum
// to zero with the platform.
import Foundation
import Testing
import TestSupport

@Suite("Demo")
struct DemoTests {
    @Test("coalition demo plays the day and closes the settlement")
    func demo() throws {
        let directory = try TemporaryDirectory()
        let output = try Binary.run([
            "demo", "--dir", directory.path("demo"), "--program", Repository.exampleProgram.path,
        ])
        #expect(output.contains("offline_overdraw at hotel-01"))
        #expect(output.contains("Li's balance is 0 at the mall, the hotel and the car park"))
        #expect(output.contains("the same answer both times (transaction unchanged)"))
        #expect(output.contains("is refused: alreadyExists"))
        #expect(output.contains("merchants' nets + platform = 0"))
        #expect(FileManager.default.fileExists(atPath: directory.path("demo/settlement-2026-11-28.json")))
        // The folder keeps the demo's files; a second run there is refused rather than mixed in.
        #expect(throws: ProcessFailure.self) { try Binary.run(["demo", "--dir", directory.path("demo"), "--program", Repository.exampleProgram.path]) }
    }
}
