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
            let settlement = try Self.compute(db, programs: catalogue, latest: latest, start: start, end: end)
            let json = Self.json(settlement, period: period, start: start, end: end, zone: zone)
            let csv = Self.csv(settlement, period: period)
            let hash = SHA256.hash(data: json).map { String(format: "%02x", $0) }.joined()
            try db.execute(
                sql:
                    "INSERT INTO settlements (period, from_ms, to_ms, json, csv, content_hash, closed_at_ms, closed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    period.description, start.milliseconds, end.milliseconds, json, csv, hash, now.milliseconds,
                    operatorName,
                ])
            return ClosedSettlement(
                period: period, json: json, csv: csv, contentHash: hash, alreadyClosed: false, closedAt: now,
                closedBy: operatorName)
        }
    }

    /// A closed period's stored result, or nil.
    package func storedSettlement(_ period: CivilDate) async throws -> ClosedSettlement? {
        try await database.pool.read { db in try Self.stored(db, period) }
    }

    private static func stored(_ db: Database, _ period: CivilDate) throws -> ClosedSettlement? {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT json, csv, content_hash, closed_at_ms, closed_by FROM settlements WHERE period = ?",
                arguments: [period.description])
        else { return nil }
        return ClosedSettlement(
            period: period, json: row["json"], csv: row["csv"], contentHash: row["content_hash"], alreadyClosed: true,
            closedAt: Timestamp(milliseconds: row["closed_at_ms"]), closedBy: row["closed_by"])
    }

    /// Reads the posting lines of the transactions posted in [start, end) and settles them
    /// (`SettlementCalculator`: the rules are there, not here).
    /// Each transaction is priced with the program version it was posted under (`programs`), not
    /// with the newest one, which may not even be in force.
    private static func compute(
        _ db: Database, programs: ProgramCatalogue, latest: ProgramCatalogue.Version, start: Timestamp, end: Timestamp
    ) throws -> Settlement {
        let program = latest.program
        let byVersion = Dictionary(programs.versions.map { ($0.version, $0.program) }, uniquingKeysWith: { $1 })
        // Posting times never go backwards: the period is a range of positions.
        let writer = LedgerWriter(db: db)
        let first = try writer.firstPosition(postedAtOrAfter: start)
        let last = try writer.firstPosition(postedAtOrAfter: end)
        /// The issue price of a merchant's points under a version (zero for the platform's own).
        func issuePrice(_ merchant: String?, _ version: Int64?) -> Rate {
            let priced = version.flatMap { byVersion[$0] } ?? program
            guard let id = merchant.flatMap(MerchantID.init), let (found, site) = priced.merchant(id) else {
                return .zero
            }
            return priced.settlement.prices(for: found, format: site.format)?.issuePrice ?? .zero
        }
        let lots = try Self.lotMovements(db, from: first, to: last).map { row in
            var lot = row.movement
            lot.price = issuePrice(row.merchant, row.version)
            return lot
        }
        let breakageReversed = try Row.fetchAll(
            db,
            sql: """
                SELECT -p.points AS points, o.merchant_id, o.program_version FROM transactions t
                JOIN postings p ON p.position = t.position AND p.account = 'expired'
                JOIN transactions o ON o.transaction_id = t.original_transaction_id
                WHERE t.kind = 'reverse' AND t.position >= ? AND t.position < ?
                """,
            arguments: [first, last]
        ).map { (points: Points($0["points"]), price: issuePrice($0["merchant_id"], $0["program_version"])) }
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
        let (activities, expired, platformAdjusted) = SettlementCalculator.activities(
            lines, program: program, start: start, programs: byVersion, latestVersion: latest.version)
        do {
            return try SettlementCalculator.settle(
                activities: activities,
                prices: { activity in
                    let priced = byVersion[activity.programVersion] ?? program
                    guard let (merchant, site) = priced.merchant(activity.merchant) else { return nil }
                    return priced.settlement.prices(for: merchant, format: site.format)
                },
                expired: expired, platformAdjusted: platformAdjusted, breakagePrice: program.settlement.breakagePrice,
                liability: SettlementCalculator.liability(lots),
                breakageReversed: SettlementCalculator.value(breakageReversed))
        } catch {
            throw SettlementRefusal(description: "\(error)")
        }
    }

    /// What happened to each lot created before `end` (a position) in the period from `start`, with
    /// the merchant and program version of the transaction that created it (its price). A lot of a
    /// referral bonus (`<transaction>-referral`) was created by that transaction.
    private static func lotMovements(_ db: Database, from start: Int64, to end: Int64) throws -> [(
        movement: LotMovement, merchant: String?, version: Int64?
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
                SELECT l.original_points, c.position AS created, c.merchant_id, c.program_version,
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
                row["merchant_id"], row["program_version"]
            )
        }
    }

    /// Canonical JSON: keys sorted, integers only, one line, so the same result is the same bytes.
    private static func json(
        _ settlement: Settlement, period: CivilDate, start: Timestamp, end: Timestamp, zone: ProgramTimeZone
    ) -> Data {
        func object(_ pairs: [(String, String)]) -> String {
            "{" + pairs.sorted { $0.0 < $1.0 }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        }
        func string(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        let merchants = settlement.merchants.map { m in
            object([
                ("merchant_id", string(m.activity.merchant.rawValue)), ("site_id", string(m.activity.site.rawValue)),
                ("program_version", "\(m.activity.programVersion)"),
                ("points_issued", "\(m.activity.issued)"), ("points_reversed", "\(m.activity.reversed)"),
                ("points_redeemed", "\(m.activity.redeemed)"), ("parking_points", "\(m.activity.parking)"),
                ("offline_risk_points", "\(m.activity.risk)"), ("points_adjusted", "\(m.activity.adjusted)"),
                ("issue_price", string(m.prices.issuePrice.description)),
                ("redeem_price", string(m.prices.redeemPrice.description)), ("payable_minor", "\(m.payable)"),
                ("receivable_minor", "\(m.receivable)"), ("risk_charge_minor", "\(m.riskCharge)"),
                ("net_minor", "\(m.net)"),
                ("late_items", "\(m.activity.lateItems)"),
            ])
        }
        let journal = settlement.journal.map { line in
            object([
                ("debit", string(line.debit)), ("credit", string(line.credit)), ("amount_minor", "\(line.amount)"),
                ("memo", string(line.memo)),
            ])
        }
        let platform = settlement.platform
        let totals = settlement.journalTotals
        let text = object([
            ("period", string(period.description)), ("time_zone", string(zone.identifier)),
            ("from_ms", "\(start.milliseconds)"),
            ("to_ms", "\(end.milliseconds)"), ("merchants", "[" + merchants.joined(separator: ",") + "]"),
            (
                "platform",
                object([
                    ("spread_minor", "\(platform.spread)"), ("breakage_minor", "\(platform.breakage)"),
                    ("risk_minor", "\(platform.risk)"),
                    ("net_minor", "\(platform.net)"), ("expired_points", "\(platform.expiredPoints)"),
                    ("adjusted_points", "\(platform.adjustedPoints)"), ("adjustments_minor", "\(platform.adjustments)"),
                    ("margin_minor", "\(platform.margin)"),
                    (
                        "liability",
                        object(
                            [
                                ("opening", platform.liability.opening), ("issued", platform.liability.issued),
                                ("redeemed", platform.liability.redeemed), ("expired", platform.liability.expired),
                                ("reversed", platform.liability.reversed), ("adjusted", platform.liability.adjusted),
                                ("closing", platform.liability.closing),
                            ].flatMap { name, figure in
                                [("\(name)_points", "\(figure.points)"), ("\(name)_minor", "\(figure.minor)")]
                            })
                    ),
                ])
            ),
            ("journal", "[" + journal.joined(separator: ",") + "]"),
            ("journal_debits_minor", "\(totals.debits)"), ("journal_credits_minor", "\(totals.credits)"),
        ])
        return Data((text + "\n").utf8)
    }

    private static func csv(_ settlement: Settlement, period: CivilDate) -> Data {
        var lines = [
            "period,party,site_id,program_version,points_issued,points_reversed,points_redeemed,parking_points,offline_risk_points,payable_minor,receivable_minor,risk_charge_minor,net_minor,late_items,spread_minor,breakage_minor,expired_points,points_adjusted,adjustments_minor,margin_minor,liability_points,liability_minor"
        ]
        for m in settlement.merchants {
            let a = m.activity
            lines.append(
                "\(period),\(a.merchant),\(a.site),\(a.programVersion),\(a.issued),\(a.reversed),\(a.redeemed),\(a.parking),\(a.risk),\(m.payable),\(m.receivable),\(m.riskCharge),\(m.net),\(a.lateItems),,,,\(a.adjusted),,,,"
            )
        }
        // The platform collects every payable and risk charge and pays every receivable.
        let p = settlement.platform
        let collected = settlement.merchants.reduce(Money.zero) { $0 + $1.payable }
        let paid = settlement.merchants.reduce(Money.zero) { $0 + $1.receivable }
        lines.append(
            "\(period),platform,,,,,,,,\(collected),\(paid),\(p.risk),\(p.net),,\(p.spread),\(p.breakage),\(p.expiredPoints),\(p.adjustedPoints),\(p.adjustments),\(p.margin),\(p.liability.closing.points),\(p.liability.closing.minor)"
        )
        return Data((lines.joined(separator: "\n") + "\n").utf8)
    }
}
