import Core
import GRDB
import NodeSupport

extension SQLiteLedgerStore {
    package func monitoringFigures() async throws -> MonitoringFigures {
        let now = clockNow
        let path = database.pool.path
        return try await database.pool.read { db in
            let conflicts = try Row.fetchAll(db, sql: MonitoringFigures.conflictsSQL).map { row in
                MonitoringFigures.ConflictTally(kind: row["kind"], count: row["n"], points: Points(row["points"]))
            }
            let holds = try Row.fetchOne(db, sql: MonitoringFigures.holdsSQL, arguments: [now.milliseconds])
            let given = try LedgerWriter(db: db).promotionsGiven()
            return MonitoringFigures(
                conflicts: conflicts, activeHolds: holds?["n"] ?? 0, heldPoints: Points(holds?["points"] ?? 0),
                promotionsGiven: given, databaseBytes: DatabaseFileSize.bytes(of: path))
        }
    }

    package func activity(from: Timestamp, to: Timestamp) async throws -> [ActivityRow] {
        try await database.pool.read { db in
            try Row.fetchAll(db, sql: ActivityRow.select, arguments: [from.milliseconds, to.milliseconds]).map { row in
                ActivityRow(
                    site: row["site_id"], merchant: row["merchant_id"], hour: row["hour"], issued: row["issued"],
                    redeemed: row["redeemed"], transactions: row["n"])
            }
        }
    }

    package func liability(at now: Timestamp) async throws -> LiabilityFigures {
        try await database.pool.read { db in
            let balances = try Row.fetchOne(db, sql: LiabilityFigures.balancesSQL)
            let lots = try Row.fetchOne(
                db, sql: LiabilityFigures.expiringSQL,
                arguments: StatementArguments(LiabilityFigures.expiringBounds(now)))
            let expired = try Int64.fetchOne(db, sql: LiabilityFigures.expiredSQL) ?? 0
            return LiabilityFigures(
                outstanding: Points(balances?["points"] ?? 0), membersWithPoints: balances?["n"] ?? 0,
                expiring30Days: Points(lots?["d30"] ?? 0), expiring60Days: Points(lots?["d60"] ?? 0),
                expiring90Days: Points(lots?["d90"] ?? 0), expired: Points(expired))
        }
    }
}
