import Core
import Foundation
import Wire

/// What both stores do with the rows a period's settlement reads: value each lot at what its
/// funders paid, settle the period's posting lines (`SettlementCalculator`: the rules are there),
/// and render the statement files. The stores only read the rows (`SQLiteLedgerStore+Settlement`,
/// `PostgresLedgerStore+Settlement`).
enum SettlementAssembly {
    /// A lot created before the period's end, with what happened to it in the period.
    struct LotRow {
        var movement: LotMovement
        var lotID: String
        var member: MemberID
        /// The position of the transaction that created it, and that transaction's program version.
        var created: Int64
        var version: Int64?
    }

    /// Settles a period from its rows. Each transaction is priced with the program version it was
    /// posted under, not with the newest one, which may not even be in force.
    static func settle(
        programs: ProgramCatalogue, latest: ProgramCatalogue.Version, start: Timestamp, lots rows: [LotRow],
        funders: [Int64: [Posting]], breakageReversed reversedRows: [(points: Points, lot: String)],
        lines: [SettlementLine], vouchers voucherRows: [VoucherUseRow] = []
    ) throws -> Settlement {
        let program = latest.program
        let byVersion = Dictionary(programs.versions.map { ($0.version, $0.program) }, uniquingKeysWith: { $1 })
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
        var lotsByID: [String: LotMovement] = [:]
        let lots = rows.map { row in
            // Each lot is valued at what its funders paid for it: the funder lines of the
            // transaction that created it, for the lot's member.
            let funding = PostingRules.funding(of: funders[row.created] ?? [], member: row.member)
            var lot = row.movement
            let priced = LotMovement(funding: funding.map { ($0.points, issuePrice($0.account, row.version)) })
            lot.valueMicros = priced.valueMicros
            lot.fundedPoints = priced.fundedPoints
            lotsByID[row.lotID] = lot
            return lot
        }
        let breakageReversed = reversedRows.compactMap { row -> (points: Points, lot: LotMovement)? in
            lotsByID[row.lot].map { (row.points, $0) }
        }
        let (activities, expired, platformAdjusted, platformBonus) = SettlementCalculator.activities(
            lines, program: program, start: start, programs: byVersion, latestVersion: latest.version)
        let vouchers = voucherRows.compactMap { row -> HonouredVoucher? in
            let priced = row.version.flatMap { byVersion[$0] } ?? program
            guard let merchant = MerchantID(row.merchant), let site = SiteID(row.site) else { return nil }
            let sponsor =
                row.sponsor.flatMap(Sponsor.init) ?? ItemID(row.item).flatMap { priced.catalog.item($0)?.sponsor }
                ?? .platform
            return HonouredVoucher(
                merchant: merchant, site: site, sponsor: sponsor,
                sponsorSite: sponsor.merchant.flatMap { priced.merchant($0)?.1.id },
                price: Money(minorUnits: row.price))
        }
        do {
            return try SettlementCalculator.settle(
                activities: activities,
                prices: { activity in
                    let priced = byVersion[activity.programVersion] ?? program
                    guard let (merchant, site) = priced.merchant(activity.merchant) else { return nil }
                    return priced.settlement.prices(for: merchant, format: site.format)
                },
                expired: expired, platformAdjusted: platformAdjusted, platformBonus: platformBonus,
                breakagePrice: program.settlement.breakagePrice, liability: SettlementCalculator.liability(lots),
                breakageReversed: SettlementCalculator.value(breakageReversed), vouchers: vouchers)
        } catch {
            throw SettlementRefusal(description: "\(error)")
        }
    }

    /// A lot's movement from its row: `original` points, created at `created` (before the period
    /// from `start` or in it), `before` drawn before it, the period's draws by kind.
    static func movement(
        original: Points, created: Int64, start: Int64, before: Points, redeemed: Points, expired: Points,
        reversed: Points, adjusted: Points
    ) -> LotMovement {
        let old = created < start
        return LotMovement(
            price: .zero, opening: old ? original - before : .zero, issued: old ? .zero : original,
            redeemed: redeemed, expired: expired, reversed: reversed, adjusted: adjusted)
    }

    /// The statement files of a closed period, and the per-merchant files as stored (a JSON object
    /// of file name to content).
    static func files(
        _ settlement: Settlement, lateItems: [LateItem], period: CivilDate, start: Timestamp, end: Timestamp,
        latest: ProgramCatalogue.Version, closedAt now: Timestamp, closedBy operatorName: String
    ) -> (files: StatementFiles, merchantFiles: Data) {
        let files = SettlementStatement.render(
            settlement,
            header: StatementHeader(
                period: period, start: start, end: end, zone: latest.program.timeZone,
                currency: latest.program.currency, closedAt: now, closedBy: operatorName),
            lateItems: lateItems)
        let merchantFiles = SettlementStatement.object(
            files.merchants.map { ($0.name, SettlementStatement.string(String(decoding: $0.content, as: UTF8.self))) })
        return (files, Data(merchantFiles.utf8))
    }

    /// The per-merchant files as stored, by name.
    static func merchantFiles(_ stored: Data?) throws -> [(name: String, content: Data)] {
        guard let stored, let files = try JSONSerialization.jsonObject(with: stored) as? [String: String] else {
            return []
        }
        return files.sorted { $0.key < $1.key }.map { ($0.key, Data($0.value.utf8)) }
    }

    /// A voucher use that stands (the first posted), posted in the period.
    struct VoucherUseRow {
        var merchant: String
        var site: String
        /// The settlement price posted with it, minor units.
        var price: Int64
        var version: Int64?
        var item: String
        /// `platform` for a lottery prize's voucher; nil: the item's sponsor.
        var sponsor: String?
    }

    /// The SQL that reads a period's voucher uses that stand, for both stores.
    static let voucherUsesSQL = """
        SELECT t.merchant_id, t.site_id, t.amount_minor, t.program_version, v.item_id, v.sponsor
        FROM transactions t JOIN vouchers v ON v.used_transaction_id = t.transaction_id
        WHERE t.kind = 'voucher_use' AND t.position >= $START AND t.position < $END
        ORDER BY t.position
        """

    /// The SQL that reads a period's lot movements, for both stores: `$START` and `$END` are the
    /// period's positions, bound by each store in its own way.
    static let lotMovementsSQL = """
        WITH draws AS (
            SELECT d.lot_number AS lot,
                SUM(CASE WHEN d.position < $START THEN d.points ELSE 0 END) AS before,
                SUM(CASE WHEN d.position >= $START AND (t.kind IN ('redeem', 'parking', 'order', 'draw')
                    OR (t.kind = 'reverse' AND d.points < 0)) THEN d.points ELSE 0 END) AS redeemed,
                SUM(CASE WHEN d.position >= $START AND t.kind = 'expire' THEN d.points ELSE 0 END) AS expired,
                SUM(CASE WHEN d.position >= $START AND t.kind = 'reverse' AND d.points > 0 THEN d.points ELSE 0 END)
                    AS reversed,
                SUM(CASE WHEN d.position >= $START AND t.kind = 'adjust' THEN d.points ELSE 0 END) AS adjusted
            FROM lot_draws d JOIN transactions t ON t.position = d.position
            WHERE d.position < $END GROUP BY d.lot_number
        )
        SELECT l.lot_id, l.member_id, l.original_points, c.position AS created, c.program_version,
            CAST(COALESCE(w.before, 0) AS BIGINT) AS before, CAST(COALESCE(w.redeemed, 0) AS BIGINT) AS redeemed,
            CAST(COALESCE(w.expired, 0) AS BIGINT) AS expired, CAST(COALESCE(w.reversed, 0) AS BIGINT) AS reversed,
            CAST(COALESCE(w.adjusted, 0) AS BIGINT) AS adjusted
        FROM lots l
        JOIN transactions c ON c.transaction_id = CASE WHEN l.lot_id LIKE '%-referral'
            THEN substr(l.lot_id, 1, length(l.lot_id) - 9) ELSE l.lot_id END
        LEFT JOIN draws w ON w.lot = l.lot_number
        WHERE c.position < $END
        """

    /// The posting lines of every transaction that created a lot before `$END`.
    static let lotFundingSQL = """
        SELECT p.position, p.account, p.points FROM postings p
        WHERE p.position IN (
            SELECT c.position FROM lots l
            JOIN transactions c ON c.transaction_id = CASE WHEN l.lot_id LIKE '%-referral'
                THEN substr(l.lot_id, 1, length(l.lot_id) - 9) ELSE l.lot_id END
            WHERE c.position < $END)
        ORDER BY p.position, p.line
        """

    /// Breakage reversed in the period: refunds that took points back from `expired`.
    static let breakageReversedSQL = """
        SELECT -p.points AS points, t.original_transaction_id AS lot FROM transactions t
        JOIN postings p ON p.position = t.position AND p.account = 'expired'
        WHERE t.kind = 'reverse' AND t.position >= $START AND t.position < $END
        """

    /// The period's posting lines.
    static let linesSQL = """
        SELECT t.position, t.kind, t.merchant_id, t.occurred_at_ms, t.program_version, o.kind AS original_kind,
            p.account, p.points
        FROM transactions t
        JOIN postings p ON p.position = t.position
        LEFT JOIN transactions o ON o.transaction_id = t.original_transaction_id
        WHERE t.position >= $START AND t.position < $END
        ORDER BY t.position, p.line
        """

    /// The period's late items: posted in it, occurred before it (`$OCCURRED`, the period's start).
    static let lateItemsSQL = """
        SELECT transaction_id, kind, merchant_id, occurred_at_ms, posted_at_ms, points, amount_minor
        FROM transactions
        WHERE position >= $START AND position < $END AND occurred_at_ms < $OCCURRED AND merchant_id IS NOT NULL
            AND kind IS NOT NULL
        ORDER BY position
        """
}
