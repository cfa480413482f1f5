import Core

/// The figures the gateway's metrics read from the ledger at each scrape (docs/operations.md,
/// "Metrics"); sites come from `OperationsLedger.siteStatuses`.
package protocol MonitoringLedger: Sendable {
    /// Conflicts by kind, active holds, promotion budgets left and the database's size, in one read.
    func monitoringFigures() async throws -> MonitoringFigures
    /// Points issued and redeemed by the transactions that occurred in [from, to), per site,
    /// merchant and hour since `from` (Ops `GetActivity`).
    func activity(from: Timestamp, to: Timestamp) async throws -> [ActivityRow]
    /// The points members hold and their lots' expiries as of `now` (Ops `GetLiability`).
    func liability(at now: Timestamp) async throws -> LiabilityFigures
}

/// Points moved by one site's merchant in one hour (`MonitoringLedger.activity`).
package struct ActivityRow: Sendable, Equatable {
    /// Nil for transactions of no site (operators' adjustments, the points mall's orders).
    package var site: String?
    package var merchant: String?
    /// Hours since the range's start.
    package var hour: Int64
    /// Points charged to issuers (`issued:*`, `bonus:*`, `platform_bonus`), net of refunds.
    package var issued: Int64
    /// Points credited to redeemers (`redeemed:*`, `platform_redeemed`).
    package var redeemed: Int64
    package var transactions: Int64

    /// One statement for both stores; $1 and $2 are the range in epoch milliseconds.
    static let select = """
        SELECT t.site_id, t.merchant_id, CAST((t.occurred_at_ms - $1) / 3600000 AS BIGINT) AS hour,
          CAST(COALESCE(SUM(CASE WHEN p.account LIKE 'issued:%' OR p.account LIKE 'bonus:%'
            OR p.account = 'platform_bonus' THEN -p.points ELSE 0 END), 0) AS BIGINT) AS issued,
          CAST(COALESCE(SUM(CASE WHEN p.account LIKE 'redeemed:%' OR p.account = 'platform_redeemed'
            THEN p.points ELSE 0 END), 0) AS BIGINT) AS redeemed,
          CAST(COUNT(DISTINCT t.position) AS BIGINT) AS n
        FROM transactions t JOIN postings p ON p.position = t.position
        WHERE t.occurred_at_ms >= $1 AND t.occurred_at_ms < $2
        GROUP BY t.site_id, t.merchant_id, CAST((t.occurred_at_ms - $1) / 3600000 AS BIGINT)
        """
}

/// What members hold (`MonitoringLedger.liability`).
package struct LiabilityFigures: Sendable, Equatable {
    package var outstanding: Points
    package var membersWithPoints: Int64
    /// Points in lots expiring within 30, 60 and 90 days of `now` (each includes the shorter).
    package var expiring30Days: Points
    package var expiring60Days: Points
    package var expiring90Days: Points
    /// The `expired` account: every point expired since the ledger began.
    package var expired: Points

    package init(
        outstanding: Points, membersWithPoints: Int64, expiring30Days: Points, expiring60Days: Points,
        expiring90Days: Points, expired: Points
    ) {
        self.outstanding = outstanding
        self.membersWithPoints = membersWithPoints
        self.expiring30Days = expiring30Days
        self.expiring60Days = expiring60Days
        self.expiring90Days = expiring90Days
        self.expired = expired
    }

    /// Members' balances (positive ones).
    static let balancesSQL = """
        SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) AS points, CAST(COUNT(*) AS BIGINT) AS n
        FROM account_balances WHERE account LIKE 'member:%' AND points > 0
        """
    /// Lots expiring after $1 and by $2, $3, $4 (epoch milliseconds).
    static let expiringSQL = """
        SELECT
          CAST(COALESCE(SUM(CASE WHEN expires_at_ms <= $2 THEN remaining_points ELSE 0 END), 0) AS BIGINT) AS d30,
          CAST(COALESCE(SUM(CASE WHEN expires_at_ms <= $3 THEN remaining_points ELSE 0 END), 0) AS BIGINT) AS d60,
          CAST(COALESCE(SUM(remaining_points), 0) AS BIGINT) AS d90
        FROM lots WHERE remaining_points > 0 AND expires_at_ms > $1 AND expires_at_ms <= $4
        """
    static let expiredSQL =
        "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) AS points FROM account_balances WHERE account = 'expired'"

    /// The bounds of `expiringSQL` for `now`.
    static func expiringBounds(_ now: Timestamp) -> [Int64] {
        [now.milliseconds] + [30, 60, 90].map { now.milliseconds + Int64($0) * 86_400_000 }
    }
}

/// What `MonitoringLedger.monitoringFigures` reads.
package struct MonitoringFigures: Sendable, Equatable {
    /// Conflicts recorded since the ledger began, by kind.
    package var conflicts: [ConflictTally]
    /// Holds authorised and neither captured, released nor expired.
    package var activeHolds: Int
    /// Points those holds reserve.
    package var heldPoints: Points
    /// Bonus points given under each promotion since it began.
    package var promotionsGiven: [PromotionID: Points]
    /// The ledger's size on disk: SQLite's file and WAL, or PostgreSQL's `pg_database_size`.
    package var databaseBytes: Int64

    package init(
        conflicts: [ConflictTally], activeHolds: Int, heldPoints: Points, promotionsGiven: [PromotionID: Points],
        databaseBytes: Int64
    ) {
        self.conflicts = conflicts
        self.activeHolds = activeHolds
        self.heldPoints = heldPoints
        self.promotionsGiven = promotionsGiven
        self.databaseBytes = databaseBytes
    }

    /// Conflicts of one kind: how many, and the points they moved.
    package struct ConflictTally: Sendable, Equatable {
        package var kind: String
        package var count: Int64
        package var points: Points

        package init(kind: String, count: Int64, points: Points) {
            self.kind = kind
            self.count = count
            self.points = points
        }
    }

    /// Conflicts by kind (one statement for both stores).
    static let conflictsSQL = """
        SELECT kind, CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(points), 0) AS BIGINT) AS points
        FROM conflicts GROUP BY kind ORDER BY kind
        """
    /// Active holds not yet expired at $1 (epoch milliseconds), and their points.
    static let holdsSQL = """
        SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(COALESCE(balance_points, points)), 0) AS BIGINT) AS points
        FROM holds WHERE status = 'active' AND expires_at_ms > $1
        """
}
