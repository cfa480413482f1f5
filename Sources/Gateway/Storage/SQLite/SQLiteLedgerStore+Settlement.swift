import Core
import Crypto
import Foundation
import GRDB
import Wire

extension SQLiteLedgerStore {
    /// Closes the settlement of `period` (a day of the program's time zone, half-open in gateway
    /// posting time). Closing again returns the stored bytes; a period not yet over is refused.
    /// Transactions posted later belong to a later period (as late items, with their occurred_at).
    package func closeSettlement(period: CivilDate, by operatorName: String) async throws -> ClosedSettlement {
        // One reading of the catalogue: the period's bounds and its prices come from the same one.
        let catalogue = programs
        guard let latest = catalogue.latest else {
            throw SettlementRefusal(description: "the gateway has no program")
        }
        let zone = latest.program.timeZone
        let start = zone.startOfDay(period)
        let end = zone.startOfDay(period.adding(days: 1))
        let now = clockNow
        if let stored = try await storedSettlement(period) { return stored }
        guard end <= now else {
            throw SettlementRefusal(
                description:
                    "period \(period) is still open: it ends at midnight after \(period) (\(zone)); close it after that"
            )
        }
        return try await database.pool.write { db in
            if let stored = try Self.stored(db, period) { return stored }
            let (settlement, lateItems) = try Self.compute(
                db, programs: catalogue, latest: latest, start: start, end: end)
            let (files, merchantFiles) = SettlementAssembly.files(
                settlement, lateItems: lateItems, period: period, start: start, end: end, latest: latest, closedAt: now,
                closedBy: operatorName)
            try db.execute(
                sql:
                    "INSERT INTO settlements (period, from_ms, to_ms, json, csv, content_hash, closed_at_ms, closed_by, merchant_files) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    period.description, start.milliseconds, end.milliseconds, files.json, files.csv, files.contentHash,
                    now.milliseconds, operatorName, merchantFiles,
                ])
            return ClosedSettlement(
                period: period, json: files.json, csv: files.csv, contentHash: files.contentHash, alreadyClosed: false,
                closedAt: now, closedBy: operatorName, merchantFiles: files.merchants)
        }
    }

    /// A closed period's stored result, or nil.
    package func storedSettlement(_ period: CivilDate) async throws -> ClosedSettlement? {
        try await database.pool.read { db in try Self.stored(db, period) }
    }

    private static func stored(_ db: Database, _ period: CivilDate) throws -> ClosedSettlement? {
        guard
            let row = try Row.fetchOne(
                db,
                sql:
                    "SELECT json, csv, content_hash, closed_at_ms, closed_by, merchant_files FROM settlements WHERE period = ?",
                arguments: [period.description])
        else { return nil }
        let merchantFiles = try SettlementAssembly.merchantFiles(row["merchant_files"])
        return ClosedSettlement(
            period: period, json: row["json"], csv: row["csv"], contentHash: row["content_hash"], alreadyClosed: true,
            closedAt: Timestamp(milliseconds: row["closed_at_ms"]), closedBy: row["closed_by"],
            merchantFiles: merchantFiles)
    }

    /// Reads the rows of the transactions posted in [start, end) and settles them
    /// (`SettlementAssembly`, `SettlementCalculator`: the rules are there, not here).
    private static func compute(
        _ db: Database, programs: ProgramCatalogue, latest: ProgramCatalogue.Version, start: Timestamp, end: Timestamp
    ) throws -> (Settlement, [LateItem]) {
        // Posting times never go backwards: the period is a range of positions.
        let writer = LedgerWriter(db: db)
        let first = try writer.firstPosition(postedAtOrAfter: start)
        let last = try writer.firstPosition(postedAtOrAfter: end)
        func sql(_ text: String) -> String {
            text.replacingOccurrences(of: "$START", with: "?1").replacingOccurrences(of: "$END", with: "?2")
                .replacingOccurrences(of: "$OCCURRED", with: "?3")
        }
        // As many arguments as the highest parameter a statement names (SQLite counts them so).
        let lateArguments: StatementArguments = [first, last, start.milliseconds]
        let arguments: StatementArguments = [first, last]
        let lots = try Row.fetchAll(db, sql: sql(SettlementAssembly.lotMovementsSQL), arguments: arguments).map {
            row in
            SettlementAssembly.LotRow(
                movement: SettlementAssembly.movement(
                    original: Points(row["original_points"]), created: row["created"], start: first,
                    before: Points(row["before"]), redeemed: Points(row["redeemed"]), expired: Points(row["expired"]),
                    reversed: Points(row["reversed"]), adjusted: Points(row["adjusted"])),
                lotID: row["lot_id"], member: MemberID(row["member_id"] as String) ?? MemberID(value: 0),
                created: row["created"], version: row["program_version"])
        }
        var funders: [Int64: [Posting]] = [:]
        for row in try Row.fetchAll(db, sql: sql(SettlementAssembly.lotFundingSQL), arguments: arguments) {
            funders[row["position"], default: []].append(
                Posting(SQLitePosting.account(row["account"]), Points(row["points"])))
        }
        let reversed = try Row.fetchAll(db, sql: sql(SettlementAssembly.breakageReversedSQL), arguments: arguments)
            .map { (points: Points($0["points"]), lot: $0["lot"] as String) }
        let lines = try Row.fetchAll(db, sql: sql(SettlementAssembly.linesSQL), arguments: arguments).map { row in
            SettlementLine(
                position: row["position"], kind: row["kind"], merchant: row["merchant_id"],
                occurredAt: Timestamp(milliseconds: row["occurred_at_ms"]), originalKind: row["original_kind"],
                account: row["account"], points: Points(row["points"]), programVersion: row["program_version"])
        }
        let lateItems = try Row.fetchAll(db, sql: sql(SettlementAssembly.lateItemsSQL), arguments: lateArguments).map {
            row in
            LateItem(
                transactionID: row["transaction_id"], kind: row["kind"], merchant: row["merchant_id"],
                occurredAt: Timestamp(milliseconds: row["occurred_at_ms"]),
                postedAt: Timestamp(milliseconds: row["posted_at_ms"]), points: Points(row["points"]),
                amount: Money(minorUnits: row["amount_minor"]))
        }
        let vouchers = try Row.fetchAll(db, sql: sql(SettlementAssembly.voucherUsesSQL), arguments: arguments).map {
            row in
            SettlementAssembly.VoucherUseRow(
                merchant: row["merchant_id"], site: row["site_id"], price: row["amount_minor"],
                version: row["program_version"], item: row["item_id"], sponsor: row["sponsor"])
        }
        let settlement = try SettlementAssembly.settle(
            programs: programs, latest: latest, start: start, lots: lots, funders: funders,
            breakageReversed: reversed, lines: lines, vouchers: vouchers)
        return (settlement, lateItems)
    }
}
