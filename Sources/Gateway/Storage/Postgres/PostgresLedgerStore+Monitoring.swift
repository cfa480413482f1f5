import Core
import PostgresNIO

extension PostgresLedgerStore {
    package func monitoringFigures() async throws -> MonitoringFigures {
        let now = clockNow
        return try await reading("reading the monitoring figures") { connection in
            let conflicts = try await connection.rows(
                PostgresQuery(unsafeSQL: MonitoringFigures.conflictsSQL), self.logger
            ).map { row in
                MonitoringFigures.ConflictTally(
                    kind: try row.text("kind"), count: try row.int("n"), points: Points(try row.int("points")))
            }
            var binds = PostgresBindings()
            binds.append(now.milliseconds)
            let holds = try await connection.rows(
                PostgresQuery(unsafeSQL: MonitoringFigures.holdsSQL, binds: binds), self.logger
            )
            .first
            let given = try await PostgresPosting.promotionsGiven(connection, self.logger)
            let size = try await connection.rows(
                "SELECT CAST(pg_database_size(current_database()) AS BIGINT) AS bytes", self.logger
            ).first
            return MonitoringFigures(
                conflicts: conflicts, activeHolds: Int(try holds?.int("n") ?? 0),
                heldPoints: Points(try holds?.int("points") ?? 0), promotionsGiven: given,
                databaseBytes: try size?.int("bytes") ?? 0)
        }
    }

    package func activity(from: Timestamp, to: Timestamp) async throws -> [ActivityRow] {
        try await reading("reading the day's activity") { connection in
            var binds = PostgresBindings()
            binds.append(from.milliseconds)
            binds.append(to.milliseconds)
            return try await connection.rows(PostgresQuery(unsafeSQL: ActivityRow.select, binds: binds), self.logger)
                .map { row in
                    ActivityRow(
                        site: try row.textOrNil("site_id"), merchant: try row.textOrNil("merchant_id"),
                        hour: try row.int("hour"), issued: try row.int("issued"), redeemed: try row.int("redeemed"),
                        transactions: try row.int("n"))
                }
        }
    }

    package func liability(at now: Timestamp) async throws -> LiabilityFigures {
        try await reading("reading the liability") { connection in
            try await connection.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", self.logger)
            do {
                let balances = try await connection.rows(
                    PostgresQuery(unsafeSQL: LiabilityFigures.balancesSQL), self.logger
                ).first
                var binds = PostgresBindings()
                for bound in LiabilityFigures.expiringBounds(now) { binds.append(bound) }
                let lots = try await connection.rows(
                    PostgresQuery(unsafeSQL: LiabilityFigures.expiringSQL, binds: binds), self.logger
                ).first
                let expired = try await connection.rows(
                    PostgresQuery(unsafeSQL: LiabilityFigures.expiredSQL), self.logger
                ).first
                try await connection.run("COMMIT", self.logger)
                return LiabilityFigures(
                    outstanding: Points(try balances?.int("points") ?? 0),
                    membersWithPoints: try balances?.int("n") ?? 0,
                    expiring30Days: Points(try lots?.int("d30") ?? 0),
                    expiring60Days: Points(try lots?.int("d60") ?? 0),
                    expiring90Days: Points(try lots?.int("d90") ?? 0),
                    expired: Points(try expired?.int("points") ?? 0))
            } catch {
                try? await connection.run("ROLLBACK", self.logger)
                throw error
            }
        }
    }
}
