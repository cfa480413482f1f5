/// A merchant's points in a settlement period, as counted from the ledger.
package struct MerchantActivity: Hashable, Sendable {
    package var merchant: MerchantID
    package var site: SiteID
    /// Base points the merchant's tills issued (docs/rules.md, "Who funds each point").
    package var issued: Points
    /// Bonus points the merchant funded, wherever they were earned.
    package var bonus: Points
    /// Base and bonus points given back to the merchant by refunds.
    package var reversed: Points
    /// Points taken at the merchant as payment (net of cancellations).
    package var redeemed: Points
    /// Points taken at the merchant for parking (net of cancellations).
    package var parking: Points
    /// Points of redemptions at the merchant that the member did not have (offline_risk).
    package var risk: Points
    /// Points operators gave members at the merchant's expense, net of those given back to it.
    package var adjusted: Points
    /// Transactions posted in the period that happened before it.
    package var lateItems: Int
    /// The program version its transactions were posted under, whose prices settle them (0 when
    /// not known: the latest).
    package var programVersion: Int64

    package init(
        merchant: MerchantID, site: SiteID, issued: Points = .zero, bonus: Points = .zero, reversed: Points = .zero,
        redeemed: Points = .zero, parking: Points = .zero, risk: Points = .zero, adjusted: Points = .zero,
        lateItems: Int = 0, programVersion: Int64 = 0
    ) {
        self.bonus = bonus
        self.programVersion = programVersion
        self.adjusted = adjusted
        self.merchant = merchant
        self.site = site
        self.issued = issued
        self.reversed = reversed
        self.redeemed = redeemed
        self.parking = parking
        self.risk = risk
        self.lateItems = lateItems
    }
}

/// One merchant's settlement.
package struct MerchantSettlement: Hashable, Sendable {
    package var activity: MerchantActivity
    package var prices: SettlementPrices
    /// halfEven((issued + bonus − reversed + adjusted) × issue price): what the merchant pays for
    /// the base points it issued, the bonus points and the adjustments it funded.
    package var payable: Money
    /// halfEven((redeemed + parking) × redeem price): what the merchant receives for points it took.
    package var receivable: Money
    /// halfEven(risk × redeem price): the unbacked points its site let be spent, charged back.
    package var riskCharge: Money
    /// receivable − payable − risk charge + voucher income − voucher cost (positive: the platform
    /// pays the merchant).
    package var net: Money
    /// Points-mall vouchers honoured at the merchant's tills in the period (the use that stands of
    /// each), and what their sponsors pay it for them: each at its item's settlement price.
    package var vouchersHonoured: Int = 0
    package var voucherIncome: Money = .zero
    /// Vouchers of items the merchant sponsors honoured in the period (at any merchant, itself
    /// included), and what it pays for them.
    package var vouchersSponsored: Int = 0
    package var voucherCost: Money = .zero
}

/// A points-mall voucher honoured in a settlement period (the use that stands): the honouring
/// merchant is paid the item's settlement price by the item's sponsor.
package struct HonouredVoucher: Hashable, Sendable {
    package var merchant: MerchantID
    package var site: SiteID
    package var sponsor: Sponsor
    /// The sponsoring merchant's site (nil for the platform).
    package var sponsorSite: SiteID?
    package var price: Money

    package init(merchant: MerchantID, site: SiteID, sponsor: Sponsor, sponsorSite: SiteID?, price: Money) {
        self.merchant = merchant
        self.site = site
        self.sponsor = sponsor
        self.sponsorSite = sponsorSite
        self.price = price
    }
}

/// The platform's line.
package struct PlatformSettlement: Hashable, Sendable {
    /// Σ payable − Σ receivable: the cash the points fund kept in the period (not a margin: it holds
    /// the money for points issued and not yet redeemed).
    package var spread: Money
    /// The value of the points that expired in the period at the prices their issuers paid (less
    /// breakage refunds took back): revenue of points that will never be paid out.
    package var breakage: Money
    /// Σ risk charges recovered from sites.
    package var risk: Money
    /// spread + risk − voucher cost: the platform's cash for the period. Σ merchant nets + this = 0.
    package var net: Money
    /// Vouchers of items the platform sponsors honoured in the period, and what it pays the
    /// honouring merchants for them.
    package var vouchersSponsored: Int = 0
    package var voucherCost: Money = .zero
    package var expiredPoints: Points
    /// Points operators gave members at the platform's expense, net of debits.
    package var adjustedPoints: Points
    /// halfEven(adjusted points × breakage price): their value, an expense shown, not a cash line.
    package var adjustments: Money
    /// Bonus points the platform funded (sign-up, tier, … as the program says), net of those
    /// refunds gave back.
    package var bonusPoints: Points
    /// halfEven(bonus points × breakage price): their value, an expense shown, not a cash line.
    package var bonuses: Money
    /// The points members hold, valued at what their issuers paid, rolled over the period.
    package var liability: LiabilityRollForward
    /// The platform's earned margin: the liability released by redemptions (orders of the points
    /// mall included), less what it pays the redeeming merchants and for the vouchers it sponsors,
    /// plus the risk charges it recovers and the breakage.
    package var margin: Money
}

/// A journal line: `amount` debited to one account and credited to another.
package struct JournalLine: Hashable, Sendable {
    package var debit: String
    package var credit: String
    package var amount: Money
    package var memo: String
}

/// The settlement of one period.
package struct Settlement: Hashable, Sendable {
    package var merchants: [MerchantSettlement]
    package var platform: PlatformSettlement
    package var journal: [JournalLine]

    /// Σ debits and Σ credits of the journal (always equal: every line has both sides).
    package var journalTotals: (debits: Money, credits: Money) {
        let total = journal.reduce(Money.zero) { $0 + $1.amount }
        return (total, total)
    }
}

/// Settlement arithmetic of DESIGN §7, pure. Money rounds half to even at the line level: each
/// line is rounded once, and totals are sums of rounded lines.
package enum SettlementCalculator: Sendable {
    package static func settle(
        activities: [MerchantActivity], prices: (MerchantActivity) -> SettlementPrices?, expired: Points,
        platformAdjusted: Points = .zero, platformBonus: Points = .zero, breakagePrice: Rate,
        liability: LiabilityRollForward, breakageReversed: Money = .zero, vouchers: [HonouredVoucher] = []
    ) throws(CalculationError) -> Settlement {
        var merchants: [MerchantSettlement] = []
        var journal: [JournalLine] = []
        for activity in activities.sorted(by: {
            ($0.merchant, $0.programVersion) < ($1.merchant, $1.programVersion)
        }) {
            guard let price = prices(activity) else {
                throw CalculationError(
                    .unknownReference, field: "merchant", "no settlement prices for '\(activity.merchant)'")
            }
            let payable = Money(
                minorUnits: price.issuePrice.halfEvenTimes(
                    (activity.issued + activity.bonus - activity.reversed + activity.adjusted).value))
            let receivable = Money(
                minorUnits: price.redeemPrice.halfEvenTimes((activity.redeemed + activity.parking).value))
            let riskCharge = Money(minorUnits: price.redeemPrice.halfEvenTimes(activity.risk.value))
            let account = "merchant:\(activity.merchant)"
            journal.append(
                JournalLine(debit: account, credit: "platform:points_fund", amount: payable, memo: "points issued"))
            journal.append(
                JournalLine(debit: "platform:points_fund", credit: account, amount: receivable, memo: "points redeemed")
            )
            journal.append(
                JournalLine(debit: account, credit: "platform:risk_recovered", amount: riskCharge, memo: "offline risk")
            )
            merchants.append(
                MerchantSettlement(
                    activity: activity, prices: price, payable: payable, receivable: receivable, riskCharge: riskCharge,
                    net: receivable - payable - riskCharge))
        }
        let platformVouchers = try settleVouchers(vouchers, merchants: &merchants, journal: &journal, prices: prices)
        let spread = merchants.reduce(Money.zero) { $0 + $1.payable - $1.receivable }
        let risk = merchants.reduce(Money.zero) { $0 + $1.riskCharge }
        let breakage = liability.expired.minor - breakageReversed
        let receivable = merchants.reduce(Money.zero) { $0 + $1.receivable }
        journal.append(
            JournalLine(
                debit: "platform:points_fund", credit: "platform:breakage", amount: breakage, memo: "points expired"))
        let adjustments = Money(minorUnits: breakagePrice.halfEvenTimes(platformAdjusted.value))
        journal.append(
            JournalLine(
                debit: "platform:adjustments_expense", credit: "platform:points_fund", amount: adjustments,
                memo: "points given by operators"))
        let bonuses = Money(minorUnits: breakagePrice.halfEvenTimes(platformBonus.value))
        journal.append(
            JournalLine(
                debit: "platform:bonus_expense", credit: "platform:points_fund", amount: bonuses,
                memo: "bonus points the platform funds"))
        return Settlement(
            merchants: merchants,
            platform: PlatformSettlement(
                spread: spread, breakage: breakage, risk: risk, net: spread + risk - platformVouchers.cost,
                vouchersSponsored: platformVouchers.count, voucherCost: platformVouchers.cost, expiredPoints: expired,
                adjustedPoints: platformAdjusted, adjustments: adjustments, bonusPoints: platformBonus,
                bonuses: bonuses, liability: liability,
                margin: liability.redeemed.minor - receivable - platformVouchers.cost + risk + breakage),
            journal: journal.filter { $0.amount != .zero })
    }
}

extension SettlementCalculator {
    /// Books the period's honoured vouchers: each pays its honouring merchant the item's settlement
    /// price, from its sponsor (a merchant, or the platform). Amounts go on each merchant's row of
    /// the highest program version (a row is made for a merchant without one) and into its net;
    /// the journal has one line per sponsor and honouring merchant (none when they are the same).
    /// Returns the platform's count and cost.
    static func settleVouchers(
        _ vouchers: [HonouredVoucher], merchants: inout [MerchantSettlement], journal: inout [JournalLine],
        prices: (MerchantActivity) -> SettlementPrices?
    ) throws(CalculationError) -> (count: Int, cost: Money) {
        guard !vouchers.isEmpty else { return (0, .zero) }
        func row(_ merchant: MerchantID, site: SiteID) throws(CalculationError) -> Int {
            if let index = merchants.lastIndex(where: { $0.activity.merchant == merchant }) { return index }
            let activity = MerchantActivity(merchant: merchant, site: site)
            guard let price = prices(activity) else {
                throw CalculationError(
                    .unknownReference, field: "merchant", "no settlement prices for '\(merchant)'")
            }
            merchants.append(
                MerchantSettlement(
                    activity: activity, prices: price, payable: .zero, receivable: .zero, riskCharge: .zero,
                    net: .zero))
            return merchants.count - 1
        }
        var platform = (count: 0, cost: Money.zero)
        var lines: [String: [String: Money]] = [:]
        for voucher in vouchers {
            let honourer = try row(voucher.merchant, site: voucher.site)
            merchants[honourer].vouchersHonoured += 1
            merchants[honourer].voucherIncome += voucher.price
            merchants[honourer].net += voucher.price
            let payer: String
            switch voucher.sponsor {
            case .platform:
                platform.count += 1
                platform.cost += voucher.price
                payer = "platform:voucher_expense"
            case .merchant(let sponsor):
                let index = try row(sponsor, site: voucher.sponsorSite ?? voucher.site)
                merchants[index].vouchersSponsored += 1
                merchants[index].voucherCost += voucher.price
                merchants[index].net = merchants[index].net - voucher.price
                payer = "merchant:\(sponsor)"
            }
            lines["merchant:\(voucher.merchant)", default: [:]][payer, default: .zero] += voucher.price
        }
        for (credit, payers) in lines.sorted(by: { $0.key < $1.key }) {
            for (debit, amount) in payers.sorted(by: { $0.key < $1.key }) where debit != credit {
                journal.append(JournalLine(debit: debit, credit: credit, amount: amount, memo: "vouchers honoured"))
            }
        }
        merchants.sort {
            ($0.activity.merchant, $0.activity.programVersion) < ($1.activity.merchant, $1.activity.programVersion)
        }
        return platform
    }
}

/// One posting line of a transaction posted in a settlement period, as the ledger stores it.
package struct SettlementLine: Sendable, Equatable {
    package var position: Int64
    package var kind: String
    package var merchant: String?
    package var occurredAt: Timestamp
    /// The kind of the transaction a reversal reverses.
    package var originalKind: String?
    /// The account's stored key (`Account.key`).
    package var account: String
    package var points: Points
    /// The program version the transaction was posted under (nil: the latest).
    package var programVersion: Int64?

    package init(
        position: Int64, kind: String, merchant: String?, occurredAt: Timestamp, originalKind: String?,
        account: String, points: Points, programVersion: Int64? = nil
    ) {
        self.programVersion = programVersion
        self.position = position
        self.kind = kind
        self.merchant = merchant
        self.occurredAt = occurredAt
        self.originalKind = originalKind
        self.account = account
        self.points = points
    }
}

extension SettlementCalculator {
    /// Each merchant's activity in a period, and the points expired in it, from the posting lines
    /// of the transactions posted in it (docs/operations.md, "Settlement"): points leaving
    /// `issued:M` were issued by M (base points), leaving `bonus:M` were bonus points M funded,
    /// coming back to either were reversed; `platform_bonus` lines are the platform's bonus points; points reaching `redeemed:M` were taken at M (as parking when the
    /// transaction, or the one it cancels, is a parking payment); `offline_risk` lines of M's
    /// transactions are M's risk; an adjustment's line on `issued:M` is M's adjusted points, on
    /// `adjustments` the platform's; a transaction that happened before `start` is a late item.
    ///
    /// Activity is kept apart by the program version its transactions were posted under, so that
    /// each is priced with that version's prices: every merchant of the latest version has a row,
    /// and a merchant of an earlier version (one a later version removed) has one when it had
    /// activity.
    package static func activities(
        _ lines: [SettlementLine], program: Program, start: Timestamp, programs: [Int64: Program] = [:],
        latestVersion: Int64 = 0
    ) -> (activities: [MerchantActivity], expired: Points, platformAdjusted: Points, platformBonus: Points) {
        struct Key: Hashable {
            var merchant: MerchantID
            var version: Int64
        }
        var activities: [Key: MerchantActivity] = [:]
        for site in program.sites {
            for merchant in site.merchants {
                activities[Key(merchant: merchant.id, version: latestVersion)] = MerchantActivity(
                    merchant: merchant.id, site: site.id, programVersion: latestVersion)
            }
        }
        /// The row of `merchant` under `version`, made when the version names the merchant.
        func key(_ merchant: MerchantID, _ version: Int64) -> Key? {
            let key = Key(merchant: merchant, version: version)
            if activities[key] != nil { return key }
            guard let (_, site) = (programs[version] ?? program).merchant(merchant) else { return nil }
            activities[key] = MerchantActivity(merchant: merchant, site: site.id, programVersion: version)
            return key
        }
        var expired = Points.zero
        var platformAdjusted = Points.zero
        var platformBonus = Points.zero
        var late: Set<Int64> = []
        for line in lines {
            if line.account == Account.expired.key {
                expired += line.points
                continue
            }
            if line.account == Account.adjustments.key {
                platformAdjusted -= line.points
                continue
            }
            if line.account == Account.platformBonus.key {
                platformBonus -= line.points
                continue
            }
            let version = line.programVersion ?? latestVersion
            guard let text = line.merchant, let merchant = MerchantID(text), let own = key(merchant, version) else {
                continue
            }
            if line.occurredAt < start, late.insert(line.position).inserted {
                activities[own]?.lateItems += 1
            }
            if let issuer = accountMerchant(line.account, prefix: "issued:"), let row = key(issuer, version) {
                if line.kind == TransactionKind.adjust.rawValue {
                    activities[row]?.adjusted -= line.points
                } else if line.points < .zero {
                    activities[row]?.issued += -line.points
                } else {
                    activities[row]?.reversed += line.points
                }
            } else if let funder = accountMerchant(line.account, prefix: "bonus:"), let row = key(funder, version) {
                if line.points < .zero {
                    activities[row]?.bonus += -line.points
                } else {
                    activities[row]?.reversed += line.points
                }
            } else if let taker = accountMerchant(line.account, prefix: "redeemed:"), let row = key(taker, version) {
                let parking = TransactionKind.parking.rawValue
                if line.kind == parking || line.originalKind == parking {
                    activities[row]?.parking += line.points
                } else {
                    activities[row]?.redeemed += line.points
                }
            } else if line.account.hasPrefix("offline_risk:") {
                activities[own]?.risk += -line.points
            }
        }
        return (
            activities.values.sorted { ($0.merchant, $0.programVersion) < ($1.merchant, $1.programVersion) },
            expired, platformAdjusted, platformBonus
        )
    }

    private static func accountMerchant(_ account: String, prefix: String) -> MerchantID? {
        guard account.hasPrefix(prefix) else { return nil }
        return MerchantID(String(account.dropFirst(prefix.count)))
    }
}
