import CoreMetrics
import Foundation
import Prometheus
import Synchronization

/// One node's metrics: the instruments its parts record into (through swift-metrics, created with
/// `factory`) and the figures read from its state at each scrape (`addCollector`), exposed in
/// Prometheus' text format by `exposition()` (docs/operations.md, "Metrics").
///
/// Each node has its own registry rather than the process-wide `MetricsSystem`, so nodes sharing a
/// process (tests, the demo, benchmarks) never mix their series.
package final class NodeMetrics: Sendable {
    /// Most collectors a node registers (each runs at every scrape).
    package static let collectorsMax = 32

    private let registry: PrometheusCollectorRegistry
    /// Makes the swift-metrics instruments of this node (counters, timers as `_seconds`
    /// histograms, recorders as value histograms).
    package let factory: any MetricsFactory
    private let collectors = Mutex<[@Sendable () async -> Void]>([])
    /// One scrape at a time: the collectors set gauges that the exposition then reads.
    private let scrapeGate = AsyncGate(permits: 1, waitersMax: 8)

    /// Bucket bounds of every duration histogram: 250 µs to 10 s.
    package static let durationBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
    ]
    /// Bucket bounds of every count histogram (group-commit batch sizes): powers of two to 1,024.
    package static let countBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024]

    package init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets
        factory.defaultValueHistogramBuckets = Self.countBuckets
        self.factory = factory
    }

    /// Adds a reader of the node's state that sets its gauges before each scrape. It must be
    /// quick (a few indexed queries) and must not throw: a figure it cannot read stays as last set.
    package func addCollector(_ collect: @escaping @Sendable () async -> Void) {
        collectors.withLock { list in
            precondition(list.count < Self.collectorsMax, "more than \(Self.collectorsMax) metric collectors")
            list.append(collect)
        }
    }

    /// Every series in Prometheus' text exposition format (version 0.0.4), after running the
    /// collectors and reading the process' own figures. Throws `AsyncGateRefusal` when 8 scrapes
    /// are waiting already or this one waited 10 s for its turn.
    package func exposition() async throws -> [UInt8] {
        try await scrapeGate.withPermit(waiting: .seconds(10)) {
            for collect in collectors.withLock({ $0 }) { await collect() }
            ProcessFigures.read().record(into: factory)
            return registry.emitToBuffer()
        }
    }

    /// A gauge set from the node's state at scrape time.
    package func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: name, dimensions: dimensions, factory: factory)
    }
}

/// What the operating system says of this process: its memory and open files, as the standard
/// `process_*` gauges.
package struct ProcessFigures: Sendable {
    package var residentBytes: Int64?
    package var virtualBytes: Int64?
    package var openFiles: Int?

    /// Reads `/proc/self` (Linux); figures the system does not give stay nil.
    package static func read() -> ProcessFigures {
        var figures = ProcessFigures()
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
            if fields.count >= 2, let virtual = Int64(fields[0]), let resident = Int64(fields[1]) {
                figures.virtualBytes = virtual * page
                figures.residentBytes = resident * page
            }
        }
        figures.openFiles = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count
        return figures
    }

    func record(into factory: any MetricsFactory) {
        if let residentBytes {
            CoreMetrics.Gauge(label: "process_resident_memory_bytes", factory: factory).record(residentBytes)
        }
        if let virtualBytes {
            CoreMetrics.Gauge(label: "process_virtual_memory_bytes", factory: factory).record(virtualBytes)
        }
        if let openFiles { CoreMetrics.Gauge(label: "process_open_fds", factory: factory).record(openFiles) }
    }
}

/// The size on disk of a SQLite database: the file and its write-ahead log.
package enum DatabaseFileSize {
    /// Bytes of `path` plus `path-wal` (0 for a file that does not exist).
    package static func bytes(of path: String) -> Int64 {
        [path, path + "-wal"].reduce(0) { total, file in
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value
            return total + (size ?? 0)
        }
    }
}
