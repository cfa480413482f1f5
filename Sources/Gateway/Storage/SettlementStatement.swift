import Core
import Crypto
import Foundation
import Wire

/// A transaction posted in a settlement period that happened before it (a late item).
package struct LateItem: Sendable, Equatable {
    package var transactionID: String
    package var kind: String
    package var merchant: String
    package var occurredAt: Timestamp
    package var postedAt: Timestamp
    /// The member's points change.
    package var points: Points
    /// The bill the transaction was recorded with, minor units (zero when it has none).
    package var amount: Money
}

/// What a statement says about itself (docs/operations.md, "Statement files").
package struct StatementHeader: Sendable {
    package var period: CivilDate
    package var start: Timestamp
    package var end: Timestamp
    package var zone: ProgramTimeZone
    package var currency: Currency
    package var closedAt: Timestamp
    package var closedBy: String
}

/// The files of a closed period: the statement of record (canonical JSON with its content hash),
/// the same as one CSV, and one CSV per merchant with activity.
package struct StatementFiles: Sendable {
    package var json: Data
    package var csv: Data
    package var contentHash: String
    /// File name (`merchants/<merchant>.csv`) to content.
    package var merchants: [(name: String, content: Data)]
}

/// Renders settlements as files a finance team reads without the product at hand: currency, unit,
/// sign convention, period in local time, who closed it and when, late items listed, merchants
/// without activity apart.
package enum SettlementStatement {
    package static let signConvention =
        "net_minor > 0: the platform pays the merchant; net_minor < 0: the merchant pays the platform; "
        + "the platform's net_minor is the cash it keeps (all nets sum to 0)"

    package static func unit(_ currency: Currency) -> String {
        "_minor columns are minor units: 1 \(currency.code) = \(currency.minorPerMajor) minor units; "
            + "_points columns are whole points"
    }

    /// The files an export writes: `PERIOD.json`, `PERIOD.csv`, each merchant's `PERIOD/…csv`, and
    /// `PERIOD.manifest.txt` with the content hash and every file's SHA-256 (`sha256sum -c` reads
    /// its file lines).
    package static func exportFiles(_ closed: ClosedSettlement) -> [(name: String, content: Data)] {
        let period = closed.period.description
        var files: [(name: String, content: Data)] = [("\(period).json", closed.json), ("\(period).csv", closed.csv)]
        for file in closed.merchantFiles {
            files.append((period + "/" + file.name.replacingOccurrences(of: "merchants/", with: ""), file.content))
        }
        var manifest = [
            "# settlement of \(period), closed by \(closed.closedBy) at \(Date(timeIntervalSince1970: Double(closed.closedAt.milliseconds) / 1_000).ISO8601Format())",
            "# content hash (SHA-256 of the statement object in \(period).json): \(closed.contentHash)",
            "# each file's SHA-256, as sha256sum prints it:",
        ]
        for file in files {
            let digest = Hex.string(SHA256.hash(data: file.content))
            manifest.append("\(digest)  \(file.name)")
        }
        files.append(("\(period).manifest.txt", Data((manifest.joined(separator: "\n") + "\n").utf8)))
        return files
    }

    /// Whether a merchant row has anything to say.
    static func active(_ merchant: MerchantSettlement) -> Bool {
        let a = merchant.activity
        return a.issued != .zero || a.bonus != .zero || a.reversed != .zero || a.redeemed != .zero
            || a.parking != .zero || a.risk != .zero || a.adjusted != .zero || a.lateItems != 0
            || merchant.vouchersHonoured != 0 || merchant.vouchersSponsored != 0
    }

    package static func render(_ settlement: Settlement, header: StatementHeader, lateItems: [LateItem])
        -> StatementFiles
    {
        let active = settlement.merchants.filter(active)
        let inactive = Set(settlement.merchants.filter { !Self.active($0) }.map(\.activity.merchant.rawValue))
            .subtracting(active.map(\.activity.merchant.rawValue)).sorted()
        let statement = object([
            ("period", string(header.period.description)), ("time_zone", string(header.zone.identifier)),
            ("period_start", string(header.zone.localText(header.start))),
            ("period_end", string(header.zone.localText(header.end))),
            ("from_ms", "\(header.start.milliseconds)"), ("to_ms", "\(header.end.milliseconds)"),
            ("currency", string(header.currency.code)),
            ("minor_units_per_major", "\(header.currency.minorPerMajor)"), ("unit", string(unit(header.currency))),
            ("sign_convention", string(signConvention)),
            ("closed_by", string(header.closedBy)), ("closed_at", string(header.zone.localText(header.closedAt))),
            ("closed_at_ms", "\(header.closedAt.milliseconds)"),
            ("merchants", array(active.map(merchantJSON))),
            ("merchants_without_activity", array(inactive.map(string))),
            ("late_items", array(lateItems.map { lateJSON($0, header.zone) })),
            ("platform", platformJSON(settlement.platform)),
            (
                "journal",
                array(
                    settlement.journal.map { line in
                        object([
                            ("debit", string(line.debit)), ("credit", string(line.credit)),
                            ("amount_minor", "\(line.amount)"), ("memo", string(line.memo)),
                        ])
                    })
            ),
            ("journal_debits_minor", "\(settlement.journalTotals.debits)"),
            ("journal_credits_minor", "\(settlement.journalTotals.credits)"),
        ])
        let hash = Hex.string(SHA256.hash(data: Data(statement.utf8)))
        let json = Data((object([("content_hash", string(hash)), ("statement", statement)]) + "\n").utf8)
        var csv = preamble(header, hash: hash, merchant: nil)
        csv += table(active, platform: settlement)
        csv += lateTable(lateItems, header.zone)
        if !inactive.isEmpty {
            csv += ["", "merchants_without_activity"] + inactive.map(cell)
        }
        let merchants = Dictionary(grouping: active, by: \.activity.merchant.rawValue).sorted { $0.key < $1.key }.map {
            id, rows in
            var lines = preamble(header, hash: hash, merchant: id)
            lines += table(rows, platform: nil)
            lines += lateTable(lateItems.filter { $0.merchant == id }, header.zone)
            return (name: "merchants/\(id).csv", content: Data((lines.joined(separator: "\n") + "\n").utf8))
        }
        return StatementFiles(
            json: json, csv: Data((csv.joined(separator: "\n") + "\n").utf8), contentHash: hash, merchants: merchants)
    }

    /// `field,value` rows that say what the file is, then a blank line.
    private static func preamble(_ header: StatementHeader, hash: String, merchant: String?) -> [String] {
        var rows: [(String, String)] = [
            (
                "statement",
                merchant.map { "settlement of merchant \($0) for \(header.period)" }
                    ?? "settlement of \(header.period)"
            ),
            (
                "period",
                "\(header.zone.localText(header.start)) to \(header.zone.localText(header.end)) (\(header.zone.identifier))"
            ),
            ("currency", header.currency.code), ("unit", unit(header.currency)), ("sign_convention", signConvention),
            ("closed_by", header.closedBy), ("closed_at", header.zone.localText(header.closedAt)),
            ("content_hash", hash),
        ]
        if merchant != nil {
            rows.append(("content_hash_of", "the period's statement of record, \(header.period).json"))
        }
        return rows.map { "\(cell($0.0)),\(cell($0.1))" } + [""]
    }

    /// How many of `columns` a merchant row fills (the rest are the platform's).
    private static let merchantColumns = 19

    private static let columns = [
        "party", "site_id", "program_version", "base_points", "bonus_points", "points_reversed", "points_redeemed",
        "parking_points", "offline_risk_points", "points_adjusted", "payable_minor", "receivable_minor",
        "risk_charge_minor", "vouchers_honoured", "vouchers_honoured_minor", "vouchers_sponsored",
        "vouchers_sponsored_minor", "net_minor", "late_items", "spread_minor", "breakage_minor", "expired_points",
        "adjustments_minor", "platform_bonus_points", "platform_bonus_minor", "margin_minor", "liability_points",
        "liability_minor",
    ]

    /// The merchant rows (and the platform's, for the period's file); a merchant's own file has only
    /// the columns a merchant row fills.
    private static func table(_ merchants: [MerchantSettlement], platform settlement: Settlement?) -> [String] {
        let columns = settlement == nil ? Array(Self.columns.prefix(merchantColumns)) : Self.columns
        var lines = [columns.joined(separator: ",")]
        for m in merchants {
            let a = m.activity
            let values: [String] = [
                cell(a.merchant.rawValue), cell(a.site.rawValue), "\(a.programVersion)", "\(a.issued)", "\(a.bonus)",
                "\(a.reversed)", "\(a.redeemed)", "\(a.parking)", "\(a.risk)", "\(a.adjusted)", "\(m.payable)",
                "\(m.receivable)", "\(m.riskCharge)", "\(m.vouchersHonoured)", "\(m.voucherIncome)",
                "\(m.vouchersSponsored)", "\(m.voucherCost)", "\(m.net)", "\(a.lateItems)",
            ]
            lines.append((values + Array(repeating: "", count: columns.count - values.count)).joined(separator: ","))
        }
        if let settlement {
            // The platform collects every payable and risk charge, pays every receivable and the
            // vouchers it sponsors.
            let p = settlement.platform
            let collected = settlement.merchants.reduce(Money.zero) { $0 + $1.payable }
            let paid = settlement.merchants.reduce(Money.zero) { $0 + $1.receivable }
            let values: [String] = [
                "platform", "", "", "", "", "", "", "", "", "\(p.adjustedPoints)", "\(collected)", "\(paid)",
                "\(p.risk)", "", "", "\(p.vouchersSponsored)", "\(p.voucherCost)", "\(p.net)", "", "\(p.spread)",
                "\(p.breakage)", "\(p.expiredPoints)", "\(p.adjustments)",
                "\(p.bonusPoints)", "\(p.bonuses)", "\(p.margin)", "\(p.liability.closing.points)",
                "\(p.liability.closing.minor)",
            ]
            lines.append(values.joined(separator: ","))
        }
        return lines
    }

    private static func lateTable(_ items: [LateItem], _ zone: ProgramTimeZone) -> [String] {
        guard !items.isEmpty else { return [] }
        return ["", "late_items", "transaction_id,kind,merchant_id,occurred_at,posted_at,points,amount_minor"]
            + items.map {
                [
                    cell($0.transactionID), cell($0.kind), cell($0.merchant), zone.localText($0.occurredAt),
                    zone.localText($0.postedAt), "\($0.points)", "\($0.amount)",
                ].joined(separator: ",")
            }
    }

    private static func merchantJSON(_ m: MerchantSettlement) -> String {
        object([
            ("merchant_id", string(m.activity.merchant.rawValue)), ("site_id", string(m.activity.site.rawValue)),
            ("program_version", "\(m.activity.programVersion)"),
            ("base_points", "\(m.activity.issued)"), ("bonus_points", "\(m.activity.bonus)"),
            ("points_reversed", "\(m.activity.reversed)"),
            ("points_redeemed", "\(m.activity.redeemed)"), ("parking_points", "\(m.activity.parking)"),
            ("offline_risk_points", "\(m.activity.risk)"), ("points_adjusted", "\(m.activity.adjusted)"),
            ("issue_price", string(m.prices.issuePrice.description)),
            ("redeem_price", string(m.prices.redeemPrice.description)), ("payable_minor", "\(m.payable)"),
            ("receivable_minor", "\(m.receivable)"), ("risk_charge_minor", "\(m.riskCharge)"),
            ("vouchers_honoured", "\(m.vouchersHonoured)"), ("vouchers_honoured_minor", "\(m.voucherIncome)"),
            ("vouchers_sponsored", "\(m.vouchersSponsored)"), ("vouchers_sponsored_minor", "\(m.voucherCost)"),
            ("net_minor", "\(m.net)"), ("late_items", "\(m.activity.lateItems)"),
        ])
    }

    private static func lateJSON(_ item: LateItem, _ zone: ProgramTimeZone) -> String {
        object([
            ("transaction_id", string(item.transactionID)), ("kind", string(item.kind)),
            ("merchant_id", string(item.merchant)), ("occurred_at", string(zone.localText(item.occurredAt))),
            ("occurred_at_ms", "\(item.occurredAt.milliseconds)"), ("posted_at", string(zone.localText(item.postedAt))),
            ("posted_at_ms", "\(item.postedAt.milliseconds)"), ("points", "\(item.points)"),
            ("amount_minor", "\(item.amount)"),
        ])
    }

    private static func platformJSON(_ platform: PlatformSettlement) -> String {
        object([
            ("spread_minor", "\(platform.spread)"), ("breakage_minor", "\(platform.breakage)"),
            ("risk_minor", "\(platform.risk)"),
            ("net_minor", "\(platform.net)"), ("expired_points", "\(platform.expiredPoints)"),
            ("adjusted_points", "\(platform.adjustedPoints)"), ("adjustments_minor", "\(platform.adjustments)"),
            ("bonus_points", "\(platform.bonusPoints)"), ("bonus_minor", "\(platform.bonuses)"),
            ("margin_minor", "\(platform.margin)"),
            ("vouchers_sponsored", "\(platform.vouchersSponsored)"),
            ("vouchers_sponsored_minor", "\(platform.voucherCost)"),
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
    }

    /// Canonical JSON: keys sorted, one line, no spaces, integers only; strings escaped as
    /// Python's `json.dumps(…, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` does,
    /// so a reader can recompute the content hash (docs/operations.md).
    static func object(_ pairs: [(String, String)]) -> String {
        "{" + pairs.sorted { $0.0 < $1.0 }.map { "\(string($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    static func array(_ items: [String]) -> String { "[" + items.joined(separator: ",") + "]" }

    static func string(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A CSV field: quoted when it holds a comma, a quote or a line break.
    static func cell(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
