/// Wrong terminal tokens, counted per peer address: when a peer keeps failing, its failing calls
/// are answered later and later (a delay that doubles up to a cap), and a warning naming it is
/// logged at most once per `logIntervalMilliseconds`. Calls with a right token are never delayed,
/// and one peer's failures never delay another's calls (docs/edge.md, "Terminal tokens").
package struct TokenFailures: Sendable {
    /// The settings (`limits.token_failures_before_delay`, `token_failure_delay_max_ms`,
    /// `token_failure_window_ms`).
    package struct Settings: Sendable, Equatable {
        /// Failures within the window answered at once; later ones are delayed.
        package var failuresBeforeDelay = 5
        /// The longest delay, in milliseconds.
        package var delayMaxMilliseconds = 5_000
        /// A peer's count starts again when its first counted failure is older than this.
        package var windowMilliseconds: Int64 = 60_000

        package init() {}
    }

    /// What to do about one failure.
    package struct Verdict: Equatable, Sendable {
        /// How long to wait before answering, in milliseconds.
        package var delayMilliseconds: Int
        /// Failures of this peer in the window, when a warning is due (nil otherwise).
        package var logFailures: Int?
    }

    /// The first delay, doubled for each further failure.
    package static let delayStepMilliseconds = 100
    /// The most one peer is warned about.
    package static let logIntervalMilliseconds: Int64 = 10_000
    /// The most peers tracked; past it the counts start again (a bound on memory, not a bypass
    /// worth having: tokens are 256-bit random).
    package static let peersMax = 10_000

    private struct Entry {
        var failures = 0
        var since: Int64
        var lastLog: Int64?
    }

    private let settings: Settings
    private var entries: [String: Entry] = [:]

    package init(settings: Settings) {
        self.settings = settings
    }

    /// Records a failed token from `peer` at `now` (milliseconds of a monotonic clock).
    package mutating func failed(peer: String, now: Int64) -> Verdict {
        if entries[peer] == nil && entries.count >= Self.peersMax { entries.removeAll() }
        var entry = entries[peer] ?? Entry(since: now)
        if now - entry.since > settings.windowMilliseconds { entry = Entry(since: now, lastLog: entry.lastLog) }
        entry.failures += 1
        var verdict = Verdict(delayMilliseconds: 0, logFailures: nil)
        let over = entry.failures - settings.failuresBeforeDelay
        if over > 0 {
            // 100, 200, 400 … ms, at most the cap (the shift is bounded so it cannot overflow).
            let step = Self.delayStepMilliseconds << min(over - 1, 20)
            verdict.delayMilliseconds = min(step, settings.delayMaxMilliseconds)
        }
        if entry.lastLog.map({ now - $0 >= Self.logIntervalMilliseconds }) ?? true {
            entry.lastLog = now
            verdict.logFailures = entry.failures
        }
        entries[peer] = entry
        return verdict
    }

    /// The address part of a gRPC peer (`ipv4:10.0.0.7:51234` → `ipv4:10.0.0.7`,
    /// `ipv6:[::1]:51234` → `ipv6:[::1]`); anything else as it is.
    package static func address(ofPeer peer: String) -> String {
        if peer.hasPrefix("ipv6:["), let end = peer.firstIndex(of: "]") { return String(peer[...end]) }
        if peer.hasPrefix("ipv4:"), let colon = peer.lastIndex(of: ":"),
            colon > peer.index(peer.startIndex, offsetBy: 4)
        {
            return String(peer[..<colon])
        }
        return peer
    }
}
