import Core
import GRDB

/// Promotion quotas (docs/protocol.md, "Promotion quotas").
extension SQLiteLedgerStore {
    package func issuePromotionQuotas(site: SiteID, heldIssue: Int64, appliedAt: Int64) async throws
        -> PromotionQuotaIssue?
    {
        guard let program = programs.latest?.program, PromotionQuotas.reach(program, site: site) else { return nil }
        let now = clockNow
        // Most pulls change nothing (no bonus given since, nothing to confirm): read first, and
        // write only when the issue changes a holding.
        let read = try await database.pool.read { db in
            try Self.quotaPlan(db, program: program, site: site, now: now, heldIssue: heldIssue, appliedAt: appliedAt)
        }
        if let (plan, current, highWater) = read, let same = plan.unchanged(from: current) {
            return PromotionQuotaIssue(issue: same.issue, sequence: highWater, quotas: same.quotas)
        }
        return try await database.pool.write { db in
            guard
                let (plan, _, highWater) = try Self.quotaPlan(
                    db, program: program, site: site, now: now, heldIssue: heldIssue, appliedAt: appliedAt)
            else { return nil }
            let store = try db.cachedStatement(
                sql: """
                    INSERT INTO promotion_quotas (promotion_id, site_id, given_points, held_points, issued_points, issue,
                        issued_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (promotion_id, site_id) DO UPDATE SET held_points = excluded.held_points,
                        issued_points = excluded.issued_points, issue = excluded.issue,
                        issued_at_ms = excluded.issued_at_ms
                    """)
            for (promotion, holding) in plan.holdings {
                try store.execute(arguments: [
                    promotion.rawValue, site.rawValue, holding.given.value, holding.held.value, holding.issued.value,
                    holding.issue, now.milliseconds,
                ])
            }
            return PromotionQuotaIssue(issue: plan.issue, sequence: highWater, quotas: plan.quotas)
        }
    }

    /// The issue `PromotionQuotas.plan` makes of the ledger as it is, with the site's holdings
    /// now and its high-water mark.
    private static func quotaPlan(
        _ db: Database, program: Program, site: SiteID, now: Timestamp, heldIssue: Int64, appliedAt: Int64
    ) throws -> (QuotaIssuePlan, [PromotionID: QuotaHolding], Int64)? {
        let highWater =
            try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT high_water_mark FROM sites WHERE site_id = ?"),
                arguments: [site.rawValue]) ?? 0
        var holdings: [PromotionID: [SiteID: QuotaHolding]] = [:]
        for row in try SQLitePosting.quotaRows(db, where: "1 = 1", arguments: []) {
            holdings[row.promotion, default: [:]][row.site] = row.holding
        }
        let firstDay = PromotionUse.day(of: now) - Int64(program.promotionQuotas.historyDays) + 1
        guard
            let plan = PromotionQuotas.plan(
                program: program, site: site, now: now, given: try LedgerWriter(db: db).promotionsGiven(),
                holdings: holdings, uses: try SQLitePosting.recentUse(db, firstDay: firstDay), highWater: highWater,
                heldIssue: heldIssue, appliedAt: appliedAt)
        else { return nil }
        return (plan, holdings.compactMapValues { $0[site] }, highWater)
    }

    package func promotionQuotas(promotion: PromotionID?, site: SiteID?) async throws -> [PromotionQuotaRecord] {
        let historyDays = Int64(programs.latest?.program.promotionQuotas.historyDays ?? 7)
        let now = clockNow
        return try await database.pool.read { db in
            let uses = try SQLitePosting.recentUse(db, firstDay: PromotionUse.day(of: now) - historyDays + 1)
            return try SQLitePosting.quotaRows(
                db, where: "(? IS NULL OR promotion_id = ?) AND (? IS NULL OR site_id = ?)",
                arguments: [promotion?.rawValue, promotion?.rawValue, site?.rawValue, site?.rawValue]
            ).map { row in
                PromotionQuotaRecord(
                    promotion: row.promotion, site: row.site, holding: row.holding, issuedAt: row.issuedAt,
                    recentPoints: Points(uses[row.promotion]?[row.site] ?? 0))
            }
        }
    }
}
