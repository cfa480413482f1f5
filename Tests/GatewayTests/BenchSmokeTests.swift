// Goal (#7): every `coalition bench` subcommand keeps working. Each runs for about a second with
// small sizes and must print its baseline, figure and target lines; no time is asserted (timings
// belong to the benchmarks themselves, docs/benchmarks.md).
import Foundation
import TestSupport
import Testing

@Suite("Benchmark smoke")
struct BenchSmokeTests {
    static let runs: [(name: String, arguments: [String], lines: [String])] = [
        (
            "edge-earn",
            ["--seconds", "0.5", "--terminals", "4", "--connections", "2", "--members", "20", "--rate", "50"],
            ["baseline", "figure", "ratio", "p99 earn", "memory"]
        ),
        (
            "parking-exit", ["--seconds", "0.5", "--members", "10", "--rate", "20"],
            ["baseline", "figure", "p99 exit", "memory"]
        ),
        (
            "gateway-ingest", ["--transactions", "400", "--sites", "2", "--batch", "50"],
            ["baseline", "figure", "ratio", "rows", "rows ratio", "rate", "memory"]
        ),
        (
            "catch-up", ["--transactions", "500", "--members", "20"],
            ["baseline", "figure", "ratio", "pushed", "pulled", "caught up", "memory"]
        ),
        ("replica-size", ["--members", "2000"], ["baseline", "ratio", "pulled", "size", "memory"]),
        (
            "flash-sale", ["--orders", "300", "--stock", "20", "--callers", "4", "--members", "60"],
            ["baseline", "figure", "ratio", "sold", "memory"]
        ),
        (
            "voucher-check", ["--seconds", "0.5", "--rate", "20"],
            ["baseline", "figure", "ratio", "p99 voucher", "memory"]
        ),
    ]

    @Test("each bench runs and prints its figures", arguments: runs.map(\.name))
    func bench(_ name: String) async throws {
        let run = try #require(Self.runs.first { $0.name == name })
        let output = try await Binary.run(["bench", name, "--program", Repository.exampleProgram.path] + run.arguments)
        #expect(output.contains("bench \(name) ("))
        for label in run.lines {
            #expect(
                output.split(separator: "\n").contains { $0.hasPrefix("  " + label) },
                "no '\(label)' line in:\n\(output)")
        }
        #expect(!output.contains("first error"), "\(output)")
        if name == "edge-earn" { #expect(output.contains("4 terminals on 2 TLS connections"), "\(output)") }
    }
}
