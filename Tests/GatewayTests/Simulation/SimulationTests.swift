import Core
import Foundation
import Gateway
import TestSupport
import Testing

/// The seeded deterministic simulation (docs/reliability.md).
///
/// - `swift test --filter Simulation` runs the CI seeds (1…`ciSeeds`).
/// - `COALITION_SIM_SEED=42 swift test --filter Simulation` replays one seed.
/// - `COALITION_SIM_SEEDS=10000` runs seeds 1…10000, `COALITION_SIM_SEEDS=352-600` seeds 352…600;
///   `COALITION_SIM_STEPS` sets the steps per seed; `COALITION_SIM_LEDGER=postgres` (or `sqlite`)
///   runs the gateway on that store only.
/// - `COALITION_SIM_LISTINGS=DIR` writes each seed's ledger listing (`LedgerDigest`) to
///   `DIR/seed-N.txt`, to compare two versions of the code line by line.
/// - The CI seeds' ledger digests are kept in `ledger-digests.txt`: a change of the posting code
///   must leave them as they are, or the change of behaviour is explained in the commit and the
///   file rewritten with `COALITION_SIM_RECORD_DIGESTS=1`.
@Suite("Simulation")
struct SimulationTests {
    static let ciSeeds: UInt64 = 12
    static let defaultSteps = 400

    static var seeds: [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let text = environment["COALITION_SIM_SEED"], let seed = UInt64(text) { return [seed] }
        if let text = environment["COALITION_SIM_SEEDS"] {
            if let count = UInt64(text), count > 0 { return Array(1...count) }
            let bounds = text.split(separator: "-").compactMap { UInt64($0) }
            if bounds.count == 2, bounds[0] > 0, bounds[0] <= bounds[1] { return Array(bounds[0]...bounds[1]) }
        }
        return Array(1...ciSeeds)
    }

    /// Both stores, or the one `COALITION_SIM_LEDGER` names (`sqlite`, `postgres`).
    static var ledgers: [LedgerKind] {
        guard let text = ProcessInfo.processInfo.environment["COALITION_SIM_LEDGER"] else { return LedgerKind.allCases }
        return LedgerKind.allCases.filter { $0.rawValue == text }
    }

    /// The descriptors this process holds open on files under `folder` (Linux's `/proc`).
    static func openFiles(under folder: String) -> [String] {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)
        }
        .filter { $0.hasPrefix(folder + "/") }
    }

    static var steps: Int {
        ProcessInfo.processInfo.environment["COALITION_SIM_STEPS"].flatMap(Int.init) ?? defaultSteps
    }

    @Test(
        "Seeded runs keep every invariant under crashes, cut links, lost and duplicated deliveries and skewed clocks",
        arguments: SimulationTests.ledgers)
    func seededRuns(ledger: LedgerKind) async throws {
        var reports: [SimulationReport] = []
        let seeds = Self.seeds
        for seed in seeds {
            // A long run names each seed first, so a crash (not just a violation) is replayable.
            if seeds.count > Self.ciSeeds { FileHandle.standardError.write(Data("simulation seed \(seed)\n".utf8)) }
            let directory = try TemporaryDirectory()
            let report = try await Self.run(seed: seed, directory: directory.url.path, ledger: ledger)
            // A run closes every file it opened: a leak of a few descriptors a seed ends a long run.
            let left = Self.openFiles(under: directory.url.path)
            #expect(left.isEmpty, "simulation seed \(seed) left files open: \(left)")
            if !report.violations.isEmpty {
                Issue.record(
                    """
                    simulation seed \(seed) failed at step \(report.steps): \(report.violations.prefix(5).joined(separator: "; "))
                    last steps:
                    \(report.trace.joined(separator: "\n"))
                    replay: COALITION_SIM_SEED=\(seed) swift test --filter Simulation
                    """)
            }
            if let folder = ProcessInfo.processInfo.environment["COALITION_SIM_LISTINGS"], let digest = report.digest {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try digest.text.write(toFile: folder + "/seed-\(seed).txt", atomically: true, encoding: .utf8)
            }
            reports.append(report)
        }
        // The digests are of the SQLite ledger; on PostgreSQL the same runs must hold every invariant.
        if ledger == .sqlite { try checkDigests(reports) }
        let faults = reports.reduce(into: [String: Int]()) { total, report in
            for (kind, count) in report.faults { total[kind, default: 0] += count }
        }
        let violations = reports.reduce(0) { $0 + $1.violations.count }
        let mall = reports.reduce(into: [String: Int64]()) { total, report in
            for (kind, count) in report.mall { total[kind, default: 0] += count }
        }
        let allowances = reports.reduce(into: [String: Int64]()) { total, report in
            for (kind, count) in report.allowances { total[kind, default: 0] += count }
        }
        // Every run must have exercised the machinery it claims to test.
        #expect(reports.allSatisfy { $0.approved > 0 && $0.faultCount > 0 })
        print(
            """
            reliability (\(ledger.rawValue)): simulation seeds \(Self.seeds.first!)…\(Self.seeds.last!) (\(reports.count) runs, \(reports.reduce(0) { $0 + $1.steps }) steps), \
            faults injected \(faults.values.reduce(0, +)) [\(faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))], \
            transactions checked \(reports.reduce(0) { $0 + $1.approved }), invariant checks \(reports.reduce(0) { $0 + $1.checked }), \
            runs that spent the dinner budget \(reports.filter { $0.dinnerBonus == Simulation.dinnerBudget }.count), \
            points mall [\(mall.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))], \
            allowances [\(allowances.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))], \
            highest floor-limit exposure \(reports.map(\.exposure).max() ?? 0) of \(Simulation.exposureMax) \
            (runs reaching three quarters of it \(reports.filter { $0.exposure * 4 >= Simulation.exposureMax * 3 }.count)), \
            violations \(violations)
            """)
    }

    /// One seed's run, its gateway's ledger on `ledger` (PostgreSQL: a new database, migrated).
    static func run(seed: UInt64, directory: String, ledger: LedgerKind) async throws -> SimulationReport {
        guard ledger == .postgres else {
            return try await Simulation(seed: seed, steps: steps, directory: directory).run()
        }
        return try await TestPostgres.withDatabase { settings in
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                try await database.migrate(
                    caFingerprint: String(repeating: "0", count: 64), now: Timestamp(milliseconds: 0))
                return try await Simulation(seed: seed, steps: steps, directory: directory, postgres: database).run()
            }
        }
    }

    static let digestsFile = Repository.root.appendingPathComponent(
        "Tests/GatewayTests/Simulation/ledger-digests.txt")

    /// Compares the CI seeds' ledger digests with the recorded ones (or records them).
    func checkDigests(_ reports: [SimulationReport]) throws {
        guard Self.seeds == Array(1...Self.ciSeeds), Self.steps == Self.defaultSteps else { return }
        let digests = reports.map { "\($0.seed) \($0.digest?.hash ?? "none")" }
        if ProcessInfo.processInfo.environment["COALITION_SIM_RECORD_DIGESTS"] != nil {
            let header = """
                # The gateway ledger at the end of each CI simulation seed (\(Self.defaultSteps) steps): seed, SHA-256 of
                # its listing (LedgerDigest). Rewritten with COALITION_SIM_RECORD_DIGESTS=1 only when a change of
                # behaviour is intended and explained (docs/reliability.md).

                """
            try (header + digests.joined(separator: "\n") + "\n").write(
                to: Self.digestsFile, atomically: true, encoding: .utf8)
            return
        }
        let recorded = try String(contentsOf: Self.digestsFile, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") && !$0.isEmpty }.map(String.init)
        for (line, expected) in zip(digests, recorded) where line != expected {
            Issue.record(
                """
                the ledger at the end of simulation seed \(line.split(separator: " ")[0]) differs from the recorded one \
                (\(line) against \(expected)): posting behaviour changed. Compare listings with COALITION_SIM_LISTINGS=DIR \
                before and after the change; record intended changes with COALITION_SIM_RECORD_DIGESTS=1.
                """)
        }
        #expect(digests.count == recorded.count, "ledger-digests.txt records \(recorded.count) seeds")
    }
}
