import Foundation
import Histogram
import Synchronization

/// Latencies in microseconds, merged from every caller.
struct Latencies: Sendable {
    var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    var errors = 0
    /// The first error seen, for the report.
    var firstError: String?

    mutating func failed(_ error: any Error) {
        errors += 1
        if firstError == nil { firstError = "\(error)" }
    }

    mutating func record(_ duration: Duration) {
        let microseconds = max(
            1, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000)
        _ = histogram.record(UInt64(min(microseconds, 120_000_000)))
    }

    mutating func add(_ other: Latencies) {
        histogram.add(other.histogram)
        errors += other.errors
        if firstError == nil { firstError = other.firstError }
    }

    var count: UInt64 { histogram.totalCount }

    func milliseconds(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }

    var summary: String {
        String(
            format: "p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms", milliseconds(50), milliseconds(99),
            milliseconds(99.9),
            Double(histogram.max) / 1000)
    }
}

/// Drives a call under load and measures it.
enum Load {
    /// `callers` callers each call back to back for `duration`; returns calls per second and latencies.
    static func closedLoop(
        callers: Int, duration: Duration, _ call: @escaping @Sendable (_ caller: Int, _ index: Int) async throws -> Void
    ) async -> (rate: Double, latencies: Latencies) {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + duration
        let merged = await withTaskGroup(of: Latencies.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    var latencies = Latencies()
                    var index = 0
                    while clock.now < deadline {
                        let begin = clock.now
                        do {
                            try await call(caller, index)
                            latencies.record(clock.now - begin)
                        } catch {
                            latencies.failed(error)
                        }
                        index += 1
                    }
                    return latencies
                }
            }
            var total = Latencies()
            for await part in group { total.add(part) }
            return total
        }
        let elapsed = clock.now - start
        return (Double(merged.count) / seconds(elapsed), merged)
    }

    /// What one side of `alternating` measured, over all its slices.
    struct Phase {
        var latencies = Latencies()
        var seconds = 0.0
        /// The process's CPU time during the side's slices.
        var processorSeconds = 0.0

        var rate: Double { seconds > 0 ? Double(latencies.count) / seconds : 0 }

        mutating func add(_ part: (rate: Double, latencies: Latencies), processorSeconds cpu: Double) {
            latencies.add(part.latencies)
            seconds += part.rate > 0 ? Double(part.latencies.count) / part.rate : 0
            processorSeconds += cpu
        }
    }

    /// Two closed loops measured in alternating slices (first, second, first, …), `slices` of each
    /// adding up to `duration` per side: a machine whose speed drifts during the run weighs on
    /// both sides alike. `slice` numbers each call's slice, for ids that must not repeat.
    static func alternating(
        callers: Int, duration: Duration, slices: Int,
        first: @escaping @Sendable (_ caller: Int, _ index: Int, _ slice: Int) async throws -> Void,
        second: @escaping @Sendable (_ caller: Int, _ index: Int, _ slice: Int) async throws -> Void
    ) async -> (first: Phase, second: Phase) {
        var (one, two) = (Phase(), Phase())
        let each = duration / max(1, slices)
        for slice in 0..<max(1, slices) {
            var started = processorSeconds
            let a = await closedLoop(callers: callers, duration: each) { try await first($0, $1, slice) }
            one.add(a, processorSeconds: processorSeconds - started)
            started = processorSeconds
            let b = await closedLoop(callers: callers, duration: each) { try await second($0, $1, slice) }
            two.add(b, processorSeconds: processorSeconds - started)
        }
        return (one, two)
    }

    /// Calls are started at a fixed rate for `duration` (open loop, at most `inFlightMax` at once);
    /// each latency counts from the moment the call was due, so a stall is not hidden by the
    /// calls it delayed (no coordinated omission).
    static func openLoop(
        rate: Double, duration: Duration, inFlightMax: Int = 512,
        _ call: @escaping @Sendable (_ index: Int) async throws -> Void
    ) async -> Latencies {
        let clock = ContinuousClock()
        let start = clock.now
        let total = Int(rate * seconds(duration))
        let interval = Duration.nanoseconds(Int64(1e9 / rate))
        return await withTaskGroup(of: Latencies.self) { group in
            var inFlight = 0
            var merged = Latencies()
            for index in 0..<total {
                let due = start + interval * index
                if due > clock.now { try? await Task.sleep(until: due, clock: clock) }
                while inFlight >= inFlightMax, let part = await group.next() {
                    merged.add(part)
                    inFlight -= 1
                }
                inFlight += 1
                group.addTask {
                    var latencies = Latencies()
                    do {
                        try await call(index)
                        latencies.record(clock.now - due)
                    } catch {
                        latencies.failed(error)
                    }
                    return latencies
                }
            }
            for await part in group { merged.add(part) }
            return merged
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Times `body`.
    static func time<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
        let clock = ContinuousClock()
        let start = clock.now
        let value = try await body()
        return (value, seconds(clock.now - start))
    }

    /// The process's peak resident memory so far, in MiB.
    /// CPU time (user and system) the process has used so far, in seconds.
    static var processorSeconds: Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static var peakMemoryMiB: Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}

/// How a bench prints: the figure, its baseline, the ratio and the target, one line each.
struct BenchReport {
    let name: String
    private(set) var lines: [String] = []

    init(name: String, settings: String) {
        self.name = name
        #if DEBUG
            let build = "debug build: figures are not meaningful, build with -c release"
        #else
            let build = "release build"
        #endif
        lines.append("bench \(name) (\(build); \(ProcessInfo.processInfo.activeProcessorCount) cores; \(settings))")
    }

    mutating func line(_ label: String, _ text: String) {
        lines.append("  " + label.padding(toLength: 12, withPad: " ", startingAt: 0) + text)
    }

    /// A ratio against the baseline, with its target: met when `ratio >= minimum`.
    mutating func ratio(_ figure: Double, over baseline: Double, minimum: Double) {
        let ratio = baseline > 0 ? figure / baseline : 0
        line("ratio", String(format: "%.2f (target ≥ %.2f: %@)", ratio, minimum, ratio >= minimum ? "met" : "NOT met"))
    }

    /// A figure against a ceiling: met when `value <= maximum`.
    mutating func ceiling(_ label: String, _ value: Double, maximum: Double, unit: String) {
        line(
            label,
            String(
                format: "%.2f %@ (target ≤ %.0f %@: %@)", value, unit, maximum, unit,
                value <= maximum ? "met" : "NOT met"))
    }

    /// A figure against a floor: met when `value >= minimum`.
    mutating func floor(_ label: String, _ value: Double, minimum: Double, unit: String) {
        line(
            label,
            String(
                format: "%.0f %@ (target ≥ %.0f %@: %@)", value, unit, minimum, unit,
                value >= minimum ? "met" : "NOT met"))
    }

    func print() {
        Swift.print(lines.joined(separator: "\n"))
    }
}

/// A benchmark that could not run as set up (a missing file, an unexpected answer).
package struct BenchFailure: Error, CustomStringConvertible {
    package let description: String

    package init(_ description: String) { self.description = description }
}
