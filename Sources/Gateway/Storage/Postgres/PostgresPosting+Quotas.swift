import Core
import Logging
import PostgresNIO

/// Promotion quota holdings on the PostgreSQL ledger: the same reads and writes as
/// `SQLitePosting+Quotas`.
extension PostgresPosting {
    /// Every holding, by promotion then site (a small table: promotions × sites).
    static func quotaRows(_ connection: PostgresConnection, _ logger: Logger, site: SiteID? = nil)
        async throws -> [(promotion: PromotionID, site: SiteID, holding: QuotaHolding, issuedAt: Timestamp)]
    {
        let query: PostgresQuery =
            if let site {
                """
                SELECT promotion_id, site_id, given_points, held_points, issued_points, issue, issued_at_ms
                FROM promotion_quotas WHERE site_id = \(site.rawValue) ORDER BY promotion_id, site_id
                """
            } else {
                """
                SELECT promotion_id, site_id, given_points, held_points, issued_points, issue, issued_at_ms
                FROM promotion_quotas ORDER BY promotion_id, site_id
                """
            }
        return try await connection.rows(query, logger).compactMap { row in
            guard let promotion = PromotionID(try row.text("promotion_id")),
                let site = SiteID(try row.text("site_id"))
            else { return nil }
            return (
                promotion, site,
                QuotaHolding(
                    given: Points(try row.int("given_points")), held: Points(try row.int("held_points")),
                    issued: Points(try row.int("issued_points")), issue: try row.int("issue")),
                Timestamp(milliseconds: try row.int("issued_at_ms"))
            )
        }
    }

    /// The pushing site's holdings, for the batch's cut of bonuses beyond its quota.
    static func loadQuotas(
        _ connection: PostgresConnection, site: SiteID?, into view: inout PostingView, _ logger: Logger
    ) async throws {
        guard let site else { return }
        view.promotionQuotas = [:]
        for row in try await quotaRows(connection, logger, site: site) {
            view.promotionQuotas[row.promotion] = row.holding
        }
    }

    /// Counts a batch's bonuses in its site's holdings and daily use.
    static func applyPromotionUse(_ connection: PostgresConnection, _ use: [PromotionUse: Points], _ logger: Logger)
        async throws
    {
        let sorted = use.filter { $0.value != .zero }.sorted { a, b in
            (a.key.promotion.rawValue, a.key.site.rawValue, a.key.day)
                < (b.key.promotion.rawValue, b.key.site.rawValue, b.key.day)
        }
        guard !sorted.isEmpty else { return }
        var holdings: [String: (promotion: String, site: String, points: Int64)] = [:]
        var days = PostgresRowsWriter(
            "INSERT INTO promotion_site_days (promotion_id, site_id, day, points)",
            types: [.text, .text, .bigint, .bigint],
            tail:
                "ON CONFLICT (promotion_id, site_id, day) DO UPDATE SET points = promotion_site_days.points + excluded.points"
        )
        for (key, points) in sorted {
            holdings[
                "\(key.promotion.rawValue) \(key.site.rawValue)",
                default: (key.promotion.rawValue, key.site.rawValue, 0)
            ]
            .points += points.value
            days.add { values in
                values.append(key.promotion.rawValue)
                values.append(key.site.rawValue)
                values.append(key.day)
                values.append(points.value)
            }
        }
        var given = PostgresRowsWriter(
            "INSERT INTO promotion_quotas (promotion_id, site_id, given_points, held_points, issued_points, issue, issued_at_ms)",
            types: [.text, .text, .bigint, .bigint, .bigint, .bigint, .bigint],
            tail:
                "ON CONFLICT (promotion_id, site_id) DO UPDATE SET given_points = promotion_quotas.given_points + excluded.given_points"
        )
        for key in holdings.keys.sorted() {
            guard let row = holdings[key] else { continue }
            given.add { values in
                values.append(row.promotion)
                values.append(row.site)
                values.append(row.points)
                values.append(Int64(0))
                values.append(Int64(0))
                values.append(Int64(0))
                values.append(Int64(0))
            }
        }
        try await given.write(connection, logger)
        try await days.write(connection, logger)
    }

    /// Each site's bonus per promotion on the days from `firstDay` on.
    static func recentUse(_ connection: PostgresConnection, firstDay: Int64, _ logger: Logger) async throws
        -> [PromotionID: [SiteID: Int64]]
    {
        var uses: [PromotionID: [SiteID: Int64]] = [:]
        for row in try await connection.rows(
            """
            SELECT promotion_id, site_id, SUM(points)::BIGINT AS points FROM promotion_site_days WHERE day >= \(firstDay)
            GROUP BY promotion_id, site_id
            """, logger)
        {
            guard let promotion = PromotionID(try row.text("promotion_id")),
                let site = SiteID(try row.text("site_id"))
            else { continue }
            uses[promotion, default: [:]][site] = try row.int("points")
        }
        return uses
    }
}
