import Core
import CoreMetrics
import Metrics
import NodeSupport
import Synchronization

/// The gateway's own series beside the RPC and group-commit ones (docs/operations.md, "Metrics"):
/// each site's sync state and exposure, conflicts, holds, promotion budgets, the database's size
/// (read from the ledger at each scrape), and the daily jobs (recorded as they run).
package enum GatewayMetrics {
    /// Registers the collector that reads the sites and `MonitoringFigures` at each scrape.
    static func addCollectors(to metrics: NodeMetrics, ledger: any LedgerStore) {
        let conflictsSeen = Mutex<[String: (count: Int64, points: Int64)]>([:])
        let factory = metrics.factory
        metrics.addCollector {
            let now = ledger.clockNow
            if let sites = try? await ledger.siteStatuses() {
                for site in sites {
                    let label = [("site", site.site.rawValue)]
                    if let seen = site.lastSeenAt {
                        metrics.gauge("coalition_site_last_seen_timestamp_seconds", label)
                            .record(Double(seen.milliseconds) / 1_000)
                        metrics.gauge("coalition_site_last_seen_age_seconds", label)
                            .record(Double(max(0, now.milliseconds - seen.milliseconds)) / 1_000)
                    }
                    metrics.gauge("coalition_site_sync_lag_seconds", label)
                        .record(Double(site.syncLagMilliseconds) / 1_000)
                    metrics.gauge("coalition_site_unsynced_exposure_points", label).record(site.unsyncedExposure.value)
                    metrics.gauge("coalition_site_offline_risk_points", label).record(site.offlineRisk.value)
                    metrics.gauge("coalition_site_pushed_sequence", label).record(site.highWaterMark)
                    metrics.gauge("coalition_site_revoked", label).record(site.status == "revoked" ? 1 : 0)
                }
            }
            guard let figures = try? await ledger.monitoringFigures() else { return }
            // Conflicts are counted in the ledger; the counters move by what was added since the
            // last scrape (from zero at start), so they stay counters for `rate()`.
            let moved = conflictsSeen.withLock { seen in
                figures.conflicts.map { tally -> (String, Int64, Int64) in
                    let before = seen[tally.kind] ?? (0, 0)
                    seen[tally.kind] = (tally.count, tally.points.value)
                    return (tally.kind, max(0, tally.count - before.count), max(0, tally.points.value - before.points))
                }
            }
            for (kind, count, points) in moved {
                Counter(label: "coalition_conflicts_total", dimensions: [("kind", kind)], factory: factory)
                    .increment(by: count)
                Counter(label: "coalition_conflict_points_total", dimensions: [("kind", kind)], factory: factory)
                    .increment(by: points)
            }
            metrics.gauge("coalition_holds_active").record(figures.activeHolds)
            metrics.gauge("coalition_holds_points").record(figures.heldPoints.value)
            let program = ledger.programs.latest?.program
            let budgets = program.map { PromotionBudgets.left($0, given: figures.promotionsGiven) } ?? [:]
            for (promotion, left) in budgets {
                metrics.gauge("coalition_promotion_budget_left_points", [("promotion", promotion.rawValue)])
                    .record(left.value)
            }
            metrics.gauge("coalition_database_size_bytes").record(figures.databaseBytes)
        }
    }
}

/// Runs the daily jobs and records each run: `coalition_job_runs_total{job, outcome}` and
/// `coalition_job_duration_seconds{job}`.
struct JobRecorder: Sendable {
    let factory: any MetricsFactory

    /// Runs `body` as job `job`, recording its outcome and duration; rethrows its error.
    func run<Result: Sendable>(_ job: String, _ body: () async throws -> Result) async throws -> Result {
        let started = ContinuousClock.now
        do {
            let result = try await body()
            record(job, outcome: "ok", since: started)
            return result
        } catch {
            record(job, outcome: "failed", since: started)
            throw error
        }
    }

    private func record(_ job: String, outcome: String, since started: ContinuousClock.Instant) {
        Counter(label: "coalition_job_runs_total", dimensions: [("job", job), ("outcome", outcome)], factory: factory)
            .increment()
        CoreMetrics.Timer(label: "coalition_job_duration_seconds", dimensions: [("job", job)], factory: factory)
            .record(duration: ContinuousClock.now - started)
    }
}
