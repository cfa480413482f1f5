import Core
import Logging
import PostgresNIO

/// Promotion quotas on the PostgreSQL ledger (docs/protocol.md, "Promotion quotas").
extension PostgresLedgerStore {
    package func issuePromotionQuotas(site: SiteID, heldIssue: Int64, appliedAt: Int64) async throws
        -> PromotionQuotaIssue?
    {
        guard let program = programs.latest?.program, PromotionQuotas.reach(program, site: site) else {
            return nil
        }
        let now = clockNow
        let promotions = program.earn.promotions.filter { $0.budget != nil }.map(\.id).sorted {
            $0.rawValue < $1.rawValue
        }
        // Most pulls change nothing (no bonus given since, nothing to confirm): read first, and
        // lock and write only when the issue changes a holding.
        let read = try await transaction("reading promotion quotas") { connection in
            try await self.quotaPlan(
                connection, program: program, site: site, now: now, heldIssue: heldIssue, appliedAt: appliedAt,
                given: try await PostgresPosting.promotionsGiven(connection, self.logger))
        }
        if let (plan, current, highWater) = read, let same = plan.unchanged(from: current) {
            return PromotionQuotaIssue(issue: same.issue, sequence: highWater, quotas: same.quotas)
        }
        return try await transaction("issuing promotion quotas") { [logger] connection in
            // Issues and the batches that give a budgeted bonus take turns on the promotions'
            // usage rows (locked in promotion order by both), so every issue sees the holdings
            // the others left.
            for promotion in promotions {
                try await connection.run(
                    """
                    INSERT INTO promotion_usage (promotion_id, points_given) VALUES (\(promotion.rawValue), 0)
                    ON CONFLICT (promotion_id) DO NOTHING
                    """, logger)
            }
            guard
                let (plan, _, highWater) = try await self.quotaPlan(
                    connection, program: program, site: site, now: now, heldIssue: heldIssue, appliedAt: appliedAt,
                    given: try await PostgresPosting.promotionsGiven(connection, logger, locking: promotions))
            else { return nil }
            for (promotion, holding) in plan.holdings.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                try await connection.run(
                    """
                    INSERT INTO promotion_quotas (promotion_id, site_id, given_points, held_points, issued_points, issue,
                        issued_at_ms)
                    VALUES (\(promotion.rawValue), \(site.rawValue), \(holding.given.value), \(holding.held.value),
                        \(holding.issued.value), \(holding.issue), \(now.milliseconds))
                    ON CONFLICT (promotion_id, site_id) DO UPDATE SET held_points = excluded.held_points,
                        issued_points = excluded.issued_points, issue = excluded.issue,
                        issued_at_ms = excluded.issued_at_ms
                    """, logger)
            }
            return PromotionQuotaIssue(issue: plan.issue, sequence: highWater, quotas: plan.quotas)
        }
    }

    /// The issue `PromotionQuotas.plan` makes of the ledger as it is (with `given`, read by the
    /// caller, locked or not), with the site's holdings now and its high-water mark.
    private func quotaPlan(
        _ connection: PostgresConnection, program: Program, site: SiteID, now: Timestamp, heldIssue: Int64,
        appliedAt: Int64, given: [PromotionID: Points]
    ) async throws -> (QuotaIssuePlan, [PromotionID: QuotaHolding], Int64)? {
        let highWater =
            try await connection.value(
                "SELECT high_water_mark FROM sites WHERE site_id = \(site.rawValue)", as: Int64.self, logger) ?? 0
        var holdings: [PromotionID: [SiteID: QuotaHolding]] = [:]
        for row in try await PostgresPosting.quotaRows(connection, logger) {
            holdings[row.promotion, default: [:]][row.site] = row.holding
        }
        let firstDay = PromotionUse.day(of: now) - Int64(program.promotionQuotas.historyDays) + 1
        guard
            let plan = PromotionQuotas.plan(
                program: program, site: site, now: now, given: given, holdings: holdings,
                uses: try await PostgresPosting.recentUse(connection, firstDay: firstDay, logger),
                highWater: highWater, heldIssue: heldIssue, appliedAt: appliedAt)
        else { return nil }
        return (plan, holdings.compactMapValues { $0[site] }, highWater)
    }

    package func promotionQuotas(promotion: PromotionID?, site: SiteID?) async throws -> [PromotionQuotaRecord] {
        let historyDays = Int64(programs.latest?.program.promotionQuotas.historyDays ?? 7)
        let now = clockNow
        return try await transaction("reading promotion quotas") { [logger] connection in
            let uses = try await PostgresPosting.recentUse(
                connection, firstDay: PromotionUse.day(of: now) - historyDays + 1, logger)
            return try await PostgresPosting.quotaRows(connection, logger, site: site).filter {
                promotion == nil || $0.promotion == promotion
            }.map { row in
                PromotionQuotaRecord(
                    promotion: row.promotion, site: row.site, holding: row.holding, issuedAt: row.issuedAt,
                    recentPoints: Points(uses[row.promotion]?[row.site] ?? 0))
            }
        }
    }
}
