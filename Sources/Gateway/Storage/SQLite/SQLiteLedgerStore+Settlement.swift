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
            let files = SettlementStatement.render(
                settlement,
                header: StatementHeader(
                    period: period, start: start, end: end, zone: zone, currency: latest.program.currency,
                    closedAt: now, closedBy: operatorName),
                lateItems: lateItems)
            let merchantFiles = SettlementStatement.object(
                files.merchants.map {
                    ($0.name, SettlementStatement.string(String(decoding: $0.content, as: UTF8.self)))
                })
            try db.execute(
                sql:
                    "INSERT INTO settlements (period, from_ms, to_ms, json, csv, content_hash, closed_at_ms, closed_by, merchant_files) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    period.description, start.milliseconds, end.milliseconds, files.json, files.csv, files.contentHash,
                    now.milliseconds, operatorName, Data(merchantFiles.utf8),
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
        var merchantFiles: [(name: String, content: Data)] = []
        if let stored = row["merchant_files"] as Data?,
            let files = try JSONSerialization.jsonObject(with: stored) as? [String: String]
        {
            merchantFiles = files.sorted { $0.key < $1.key }.map { ($0.key, Data($0.value.utf8)) }
        }
        return ClosedSettlement(
            period: period, json: row["json"], csv: row["csv"], contentHash: row["content_hash"], alreadyClosed: true,
            closedAt: Timestamp(milliseconds: row["closed_at_ms"]), closedBy: row["closed_by"],
            merchantFiles: merchantFiles)
    }

    /// Reads the posting lines of the transactions posted in [start, end) and settles them
    /// (`SettlementCalculator`: the rules are there, not here).
    /// Each transaction is priced with the program version it was posted under (`programs`), not
    /// with the newest one, which may not even be in force.
    private static func compute(
        _ db: Database, programs: ProgramCatalogue, latest: ProgramCatalogue.Version, start: Timestamp, end: Timestamp
    ) throws -> (Settlement, [LateItem]) {
        let program = latest.program
        let byVersion = Dictionary(programs.versions.map { ($0.version, $0.program) }, uniquingKeysWith: { $1 })
        // Posting times never go backwards: the period is a range of positions.
        let writer = LedgerWriter(db: db)
        let first = try writer.firstPosition(postedAtOrAfter: start)
        let last = try writer.firstPosition(postedAtOrAfter: end)
        /// The issue price of a funder account's points under a version (zero for the platform's own).
        func issuePrice(_ account: Account, _ version: Int64?) -> Rate {
            let priced = version.flatMap { byVersion[$0] } ?? program
            let merchant: MerchantID
            switch account {
            case .issued(let id), .bonus(let id): merchant = id
            default: return .zero
            }
            guard let (found, site) = priced.merchant(merchant) else { return .zero }
            return priced.settlement.prices(for: found, format: site.format)?.issuePrice ?? .zero
        }
        let movements = try Self.lotMovements(db, from: first, to: last)
        let funders = try Self.lotFunding(db, before: last)
        var lotsByID: [String: LotMovement] = [:]
        let lots = movements.map { row in
            // Each lot is valued at what its funders paid for it: the funder lines of the
            // transaction that created it, for the lot's member.
            let funding = PostingRules.funding(of: funders[row.created] ?? [], member: row.member)
            var lot = row.movement
            let priced = LotMovement(
                funding: funding.map { ($0.points, issuePrice($0.account, row.version)) })
            lot.valueMicros = priced.valueMicros
            lot.fundedPoints = priced.fundedPoints
            lotsByID[row.lotID] = lot
            return lot
        }
        let breakageReversed = try Row.fetchAll(
            db,
            sql: """
                SELECT -p.points AS points, t.original_transaction_id AS lot FROM transactions t
                JOIN postings p ON p.position = t.position AND p.account = 'expired'
                WHERE t.kind = 'reverse' AND t.position >= ? AND t.position < ?
                """,
            arguments: [first, last]
        ).compactMap { row -> (points: Points, lot: LotMovement)? in
            guard let lot = lotsByID[row["lot"] as String] else { return nil }
            return (Points(row["points"]), lot)
        }
        let lines = try Row.fetchAll(
            db,
            sql: """
                SELECT t.position, t.kind, t.merchant_id, t.occurred_at_ms, t.program_version, o.kind AS original_kind,
                    p.account, p.points
                FROM transactions t
                JOIN postings p ON p.position = t.position
                LEFT JOIN transactions o ON o.transaction_id = t.original_transaction_id
                WHERE t.position >= ? AND t.position < ?
                ORDER BY t.position
                """,
            arguments: [first, last]
        ).map { row in
            SettlementLine(
                position: row["position"], kind: row["kind"], merchant: row["merchant_id"],
                occurredAt: Timestamp(milliseconds: row["occurred_at_ms"]), originalKind: row["original_kind"],
                account: row["account"], points: Points(row["points"]), programVersion: row["program_version"])
        }
        let (activities, expired, platformAdjusted, platformBonus) = SettlementCalculator.activities(
            lines, program: program, start: start, programs: byVersion, latestVersion: latest.version)
        let lateItems = try Row.fetchAll(
            db,
            sql: """
                SELECT transaction_id, kind, merchant_id, occurred_at_ms, posted_at_ms, points, amount_minor
                FROM transactions
                WHERE position >= ? AND position < ? AND occurred_at_ms < ? AND merchant_id IS NOT NULL
                    AND kind IS NOT NULL
                ORDER BY position
                """,
            arguments: [first, last, start.milliseconds]
        ).map { row in
            LateItem(
                transactionID: row["transaction_id"], kind: row["kind"], merchant: row["merchant_id"],
                occurredAt: Timestamp(milliseconds: row["occurred_at_ms"]),
                postedAt: Timestamp(milliseconds: row["posted_at_ms"]), points: Points(row["points"]),
                amount: Money(minorUnits: row["amount_minor"]))
        }
        do {
            let settlement = try SettlementCalculator.settle(
                activities: activities,
                prices: { activity in
                    let priced = byVersion[activity.programVersion] ?? program
                    guard let (merchant, site) = priced.merchant(activity.merchant) else { return nil }
                    return priced.settlement.prices(for: merchant, format: site.format)
                },
                expired: expired, platformAdjusted: platformAdjusted, platformBonus: platformBonus,
                breakagePrice: program.settlement.breakagePrice, liability: SettlementCalculator.liability(lots),
                breakageReversed: SettlementCalculator.value(breakageReversed))
            return (settlement, lateItems)
        } catch {
            throw SettlementRefusal(description: "\(error)")
        }
    }

    /// What happened to each lot created before `end` (a position) in the period from `start`, with
    /// the merchant and program version of the transaction that created it (its price). A lot of a
    /// referral bonus (`<transaction>-referral`) was created by that transaction.
    private static func lotMovements(_ db: Database, from start: Int64, to end: Int64) throws -> [(
        movement: LotMovement, lotID: String, member: MemberID, created: Int64, version: Int64?
    )] {
        try Row.fetchAll(
            db,
            sql: """
                WITH draws AS (
                    SELECT d.lot_number AS lot,
                        SUM(CASE WHEN d.position < ?1 THEN d.points ELSE 0 END) AS before,
                        SUM(CASE WHEN d.position >= ?1 AND (t.kind IN ('redeem', 'parking')
                            OR (t.kind = 'reverse' AND d.points < 0)) THEN d.points ELSE 0 END) AS redeemed,
                        SUM(CASE WHEN d.position >= ?1 AND t.kind = 'expire' THEN d.points ELSE 0 END) AS expired,
                        SUM(CASE WHEN d.position >= ?1 AND t.kind = 'reverse' AND d.points > 0 THEN d.points ELSE 0 END)
                            AS reversed,
                        SUM(CASE WHEN d.position >= ?1 AND t.kind = 'adjust' THEN d.points ELSE 0 END) AS adjusted
                    FROM lot_draws d JOIN transactions t ON t.position = d.position
                    WHERE d.position < ?2 GROUP BY d.lot_number
                )
                SELECT l.lot_id, l.member_id, l.original_points, c.position AS created, c.program_version,
                    COALESCE(w.before, 0) AS before, COALESCE(w.redeemed, 0) AS redeemed,
                    COALESCE(w.expired, 0) AS expired, COALESCE(w.reversed, 0) AS reversed,
                    COALESCE(w.adjusted, 0) AS adjusted
                FROM lots l
                JOIN transactions c ON c.transaction_id = CASE WHEN l.lot_id LIKE '%-referral'
                    THEN substr(l.lot_id, 1, length(l.lot_id) - 9) ELSE l.lot_id END
                LEFT JOIN draws w ON w.lot = l.lot_number
                WHERE c.position < ?2
                """,
            arguments: [start, end]
        ).map { row in
            let original = Points(row["original_points"])
            let old = (row["created"] as Int64) < start
            return (
                LotMovement(
                    price: .zero, opening: old ? original - Points(row["before"]) : .zero,
                    issued: old ? .zero : original, redeemed: Points(row["redeemed"]), expired: Points(row["expired"]),
                    reversed: Points(row["reversed"]), adjusted: Points(row["adjusted"])),
                row["lot_id"], MemberID(row["member_id"] as String) ?? MemberID(value: 0), row["created"],
                row["program_version"]
            )
        }
    }

    /// The posting lines of every transaction that created a lot before `end` (a position), by
    /// position: who funded each lot.
    private static func lotFunding(_ db: Database, before end: Int64) throws -> [Int64: [Posting]] {
        var lines: [Int64: [Posting]] = [:]
        for row in try Row.fetchAll(
            db,
            sql: """
                SELECT p.position, p.account, p.points FROM postings p
                WHERE p.position IN (
                    SELECT c.position FROM lots l
                    JOIN transactions c ON c.transaction_id = CASE WHEN l.lot_id LIKE '%-referral'
                        THEN substr(l.lot_id, 1, length(l.lot_id) - 9) ELSE l.lot_id END
                    WHERE c.position < ?)
                ORDER BY p.position, p.line
                """,
            arguments: [end])
        {
            lines[row["position"], default: []].append(
                Posting(SQLitePosting.account(row["account"]), Points(row["points"])))
        }
        return lines
    }
}
