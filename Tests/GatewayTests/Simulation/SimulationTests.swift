import Foundation
import TestSupport
import Testing

/// The seeded deterministic simulation (docs/reliability.md).
///
/// - `swift test --filter Simulation` runs the CI seeds (1…`ciSeeds`).
/// - `COALITION_SIM_SEED=42 swift test --filter Simulation` replays one seed.
/// - `COALITION_SIM_SEEDS=10000` runs seeds 1…10000; `COALITION_SIM_STEPS` sets the steps per seed.
@Suite("Simulation")
struct SimulationTests {
    static let ciSeeds: UInt64 = 12
    static let defaultSteps = 400

    static var seeds: [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let text = environment["COALITION_SIM_SEED"], let seed = UInt64(text) { return [seed] }
        if let text = environment["COALITION_SIM_SEEDS"], let count = UInt64(text), count > 0 {
            return Array(1...count)
        }
        return Array(1...ciSeeds)
    }

    static var steps: Int {
        ProcessInfo.processInfo.environment["COALITION_SIM_STEPS"].flatMap(Int.init) ?? defaultSteps
    }

    @Test("Seeded runs keep every invariant under crashes, cut links, lost and duplicated deliveries and skewed clocks")
    func seededRuns() async throws {
        var reports: [SimulationReport] = []
        let seeds = Self.seeds
        for seed in seeds {
            // A long run names each seed first, so a crash (not just a violation) is replayable.
            if seeds.count > Self.ciSeeds { FileHandle.standardError.write(Data("simulation seed \(seed)\n".utf8)) }
            let directory = try TemporaryDirectory()
            let report = try await Simulation(seed: seed, steps: Self.steps, directory: directory.url.path).run()
            if !report.violations.isEmpty {
                Issue.record(
                    """
                    simulation seed \(seed) failed at step \(report.steps): \(report.violations.prefix(5).joined(separator: "; "))
                    last steps:
                    \(report.trace.joined(separator: "\n"))
                    replay: COALITION_SIM_SEED=\(seed) swift test --filter Simulation
                    """)
            }
            reports.append(report)
        }
        let faults = reports.reduce(into: [String: Int]()) { total, report in
            for (kind, count) in report.faults { total[kind, default: 0] += count }
        }
        let violations = reports.reduce(0) { $0 + $1.violations.count }
        // Every run must have exercised the machinery it claims to test.
        #expect(reports.allSatisfy { $0.approved > 0 && $0.faultCount > 0 })
        print(
            """
            reliability: simulation seeds \(Self.seeds.first!)…\(Self.seeds.last!) (\(reports.count) runs, \(reports.reduce(0) { $0 + $1.steps }) steps), \
            faults injected \(faults.values.reduce(0, +)) [\(faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))], \
            transactions checked \(reports.reduce(0) { $0 + $1.approved }), invariant checks \(reports.reduce(0) { $0 + $1.checked }), violations \(violations)
            """)
    }
}
