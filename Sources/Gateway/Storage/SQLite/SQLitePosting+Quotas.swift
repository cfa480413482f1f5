import Core
import GRDB

/// Promotion quota holdings, as a batch's posting and a pull's issue read and write them.
extension SQLitePosting {
    /// Holdings meeting `condition`, by promotion then site.
    static func quotaRows(_ db: Database, where condition: String, arguments: StatementArguments) throws
        -> [(promotion: PromotionID, site: SiteID, holding: QuotaHolding, issuedAt: Timestamp)]
    {
        try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT promotion_id, site_id, given_points, held_points, issued_points, issue, issued_at_ms
                    FROM promotion_quotas WHERE \(condition) ORDER BY promotion_id, site_id
                    """),
            arguments: arguments
        ).compactMap { row in
            guard let promotion = PromotionID(row["promotion_id"] as String),
                let site = SiteID(row["site_id"] as String)
            else { return nil }
            return (
                promotion, site,
                QuotaHolding(
                    given: Points(row["given_points"]), held: Points(row["held_points"]),
                    issued: Points(row["issued_points"]), issue: row["issue"]),
                Timestamp(milliseconds: row["issued_at_ms"])
            )
        }
    }

    /// The pushing site's holdings, for the batch's cut of bonuses beyond its quota.
    static func loadQuotas(_ db: Database, site: SiteID?, into view: inout PostingView) throws {
        guard let site else { return }
        for row in try quotaRows(db, where: "site_id = ?", arguments: [site.rawValue]) {
            view.promotionQuotas[row.promotion] = row.holding
        }
    }

    /// Counts a batch's bonuses in its site's holdings and daily use.
    static func applyPromotionUse(_ db: Database, _ use: [PromotionUse: Points]) throws {
        let holding = try db.cachedStatement(
            sql: """
                INSERT INTO promotion_quotas (promotion_id, site_id, given_points, held_points, issued_points, issue,
                    issued_at_ms)
                VALUES (?, ?, ?, 0, 0, 0, 0)
                ON CONFLICT (promotion_id, site_id) DO UPDATE SET given_points = given_points + excluded.given_points
                """)
        let day = try db.cachedStatement(
            sql: """
                INSERT INTO promotion_site_days (promotion_id, site_id, day, points) VALUES (?, ?, ?, ?)
                ON CONFLICT (promotion_id, site_id, day) DO UPDATE SET points = points + excluded.points
                """)
        for (key, points) in use where points != .zero {
            try holding.execute(arguments: [key.promotion.rawValue, key.site.rawValue, points.value])
            try day.execute(arguments: [key.promotion.rawValue, key.site.rawValue, key.day, points.value])
        }
    }

    /// Each site's bonus per promotion on the days from `firstDay` on.
    static func recentUse(_ db: Database, firstDay: Int64) throws -> [PromotionID: [SiteID: Int64]] {
        var uses: [PromotionID: [SiteID: Int64]] = [:]
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT promotion_id, site_id, SUM(points) AS points FROM promotion_site_days WHERE day >= ?
                    GROUP BY promotion_id, site_id
                    """), arguments: [firstDay])
        {
            guard let promotion = PromotionID(row["promotion_id"] as String),
                let site = SiteID(row["site_id"] as String)
            else { continue }
            uses[promotion, default: [:]][site] = row["points"]
        }
        return uses
    }
}
