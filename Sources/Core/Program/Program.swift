/// One version of the program: the rules of the network, as operations wrote them and the gateway
/// validated them. Immutable once published; built only by `ProgramLoader`, which guarantees every
/// invariant listed on the properties below.
package struct Program: Sendable, Equatable {
    /// The program's slug, for example `coalition-group`.
    package var id: String
    package var name: String
    package var currency: Currency
    package var timeZone: ProgramTimeZone
    package var limits: ProgramLimits
    /// Sites in document order; ids unique.
    package var sites: [Site]
    package var earn: EarnRules
    package var redeem: RedeemRules
    package var tiers: TierRules
    package var expiry: ExpiryRules
    package var settlement: SettlementRules
    /// The points mall's items (`catalog`); empty when the program has none.
    package var catalog: Catalog = .empty
    /// The points mall's lotteries (`lotteries`); none when the program has none.
    package var lotteries: Lotteries = .empty
    /// Allowances (escrow) per site format (`allowances`); none when the program has none.
    package var allowances: AllowanceRules = .none
    /// How budgeted promotions are split into per-site quotas (`promotion_quotas`).
    package var promotionQuotas: PromotionQuotaRules = .defaults

    /// The site with this id.
    package func site(_ id: SiteID) -> Site? {
        sites.first { $0.id == id }
    }

    /// The merchant with this id, with its site.
    package func merchant(_ id: MerchantID) -> (merchant: Merchant, site: Site)? {
        for site in sites {
            if let merchant = site.merchants.first(where: { $0.id == id }) { return (merchant, site) }
        }
        return nil
    }

    /// The tier with this id.
    package func tier(_ id: TierID) -> Tier? {
        tiers.tiers.first { $0.id == id }
    }
}

/// The program's single currency.
package struct Currency: Sendable, Equatable {
    /// ISO 4217 code, for example `CNY`.
    package var code: String
    /// Decimal places of the minor unit (2 for CNY: 1 yuan = 100 fen), 0 to 4.
    package var minorUnitDigits: Int

    /// Minor units in one major unit (100 for CNY).
    package var minorPerMajor: Int64 {
        var result: Int64 = 1
        for _ in 0..<minorUnitDigits { result *= 10 }
        return result
    }
}

/// Bounds on the amounts a request may carry.
package struct ProgramLimits: Sendable, Equatable {
    /// The largest bill, refund or fee accepted, in minor units (> 0).
    package var transactionAmountMax: Money
    /// The most lines a bill may have (1 to 1,000).
    package var linesMax: Int
    /// The most points one transaction may move (> 0).
    package var pointsPerTransactionMax: Points
}

/// A property of the group.
package struct Site: Sendable, Equatable {
    package var id: SiteID
    package var name: String
    package var format: Format
    /// Merchants of this site; a merchant belongs to exactly one site.
    package var merchants: [Merchant]
    /// The car park tariff, for sites that run one.
    package var parking: ParkingTariff?
    /// Offline redemption limits (the site's own, or the program default).
    package var offline: OfflineLimits
}

/// A merchant (a store, a restaurant, a front desk, a car park operator).
package struct Merchant: Sendable, Equatable {
    package var id: MerchantID
    package var name: String
    package var site: SiteID
    package var category: Category
    /// Overrides the format and category earn rate for this merchant.
    package var earnRate: Rate?
    /// Overrides the format default settlement prices for this merchant.
    package var settlementPrices: SettlementPrices?
}

/// A bonus: either a multiplier on base points (2 = double points) or a fixed number of points.
package enum Bonus: Sendable, Equatable {
    /// Extra points = floor(base × (multiplier − 1)).
    case multiplier(Rate)
    /// A fixed number of extra points.
    case points(Points)
}

/// How points are earned.
package struct EarnRules: Sendable, Equatable {
    /// Points per major unit of money (per yuan) for each format; every site's format has one.
    package var baseRates: [Format: Rate]
    /// Points per major unit for a category, overriding the format rate.
    package var categoryRates: [Category: Rate]
    /// Categories that earn nothing.
    package var excludedCategories: Set<Category>
    /// Promotions in document order.
    package var promotions: [Promotion]
    /// Bonus when the member earned at another format recently.
    package var crossFormat: CrossFormatBonus?
    /// Bonus on earns in the member's birthday month.
    package var birthday: Bonus?
    /// Points at enrolment.
    package var signupPoints: Points
    /// Points to the referrer when a referred member enrols.
    package var referralPoints: Points
    /// Bonus for consecutive days with an earn.
    package var streak: StreakBonus?
    /// When the referral bonus is paid (`earn.referral_paid_at`).
    package var referralPaidAt: ReferralTiming = .enrolment
    /// Who pays for each kind of bonus (`earn.funded_by`).
    package var funding: BonusFunding = .defaults
}

/// When a referrer is paid the referral bonus.
package enum ReferralTiming: String, Sendable, Equatable {
    /// When the referred member enrols.
    case enrolment
    /// At the referred member's first purchase that earns base points.
    case firstPurchase = "first_purchase"
}

/// A time-limited promotion.
package struct Promotion: Sendable, Equatable {
    package var id: PromotionID
    package var name: String
    /// Half-open window [start, end) of instants; start < end.
    package var start: Timestamp
    package var end: Timestamp
    /// Which earns it applies to.
    package var filter: PromotionFilter
    package var bonus: Bonus
    /// The most bonus points it may give in total across members, if limited.
    package var budget: Points?
    /// Who pays for its bonus points (`funded_by`).
    package var fundedBy: Funder = .recordingMerchant
}

/// Which earns a promotion applies to; an empty set means "any".
package struct PromotionFilter: Sendable, Equatable {
    package var sites: Set<SiteID>
    package var formats: Set<Format>
    package var merchants: Set<MerchantID>
    /// Matched against each bill line's category.
    package var categories: Set<Category>

    /// No restriction.
    package static let any = PromotionFilter(sites: [], formats: [], merchants: [], categories: [])
}

/// +rate × base when the member earned at a different format within `windowDays` days.
package struct CrossFormatBonus: Sendable, Equatable {
    package var windowDays: Int
    package var rate: Rate
}

/// Fixed points each time a streak of consecutive days with an earn reaches a multiple of `days`.
package struct StreakBonus: Sendable, Equatable {
    package var days: Int
    package var points: Points
}

/// How points pay for things.
package struct RedeemRules: Sendable, Equatable {
    /// `pointValuePoints` points are worth `pointValueMoney` (for example 100 points = 100 fen).
    package var pointValuePoints: Int64
    package var pointValueMoney: Money
    /// The fewest points one redemption may use (≥ 1).
    package var minimumPoints: Points
    /// The largest share of the eligible bill payable with points, 0 < share ≤ 1.
    package var maximumBillShare: Rate
    /// Categories that cannot be paid with points.
    package var excludedCategories: Set<Category>
}

/// A tier of membership.
package struct Tier: Sendable, Equatable {
    package var id: TierID
    package var name: String
    /// Qualifying points earned in the rolling 12 months needed to reach it.
    package var threshold: Points
    /// Earn multiplier (1.5 = +50 % of base points).
    package var multiplier: Rate
    /// Free parking minutes per day.
    package var freeParkingMinutesPerDay: Int
    /// Vouchers issued to its members each period (`benefits`).
    package var benefits: [TierBenefit] = []
}

/// The ordered tiers. The first has threshold 0; thresholds strictly increase.
package struct TierRules: Sendable, Equatable {
    package var tiers: [Tier]
    /// Months between tier reviews (downgrades happen only at a review), 1 to 36.
    package var reviewMonths: Int
    /// The length of the rolling qualifying window, in months (12).
    package var qualifyingMonths: Int
}

/// When points expire.
package struct ExpiryRules: Sendable, Equatable {
    /// Points expire at the end of the month `months` after the month they were earned (1 to 120).
    package var months: Int
    /// Members with points expiring within this many days are on the reminder list (0 to 365).
    package var reminderDays: Int
}

/// A car park's tariff.
package struct ParkingTariff: Sendable, Equatable {
    /// A stay no longer than this is free.
    package var graceMinutes: Int
    /// Price of each started hour.
    package var pricePerHour: Money
    /// The most charged for one 24-hour block of the stay, if capped.
    package var dailyCap: Money?
}

/// Limits on redemptions a site may approve while it cannot reach the gateway.
package struct OfflineLimits: Sendable, Equatable {
    package var pointsPerTransactionMax: Points
    package var pointsPerMemberPerDayMax: Points
    /// Total offline-redeemed points not yet acknowledged by the gateway.
    package var siteExposureMax: Points
    /// After this long without the gateway, offline redemptions are refused.
    package var offlineMinutesMax: Int
}

/// The money a merchant pays per point it issues and receives per point it takes.
package struct SettlementPrices: Hashable, Sendable {
    /// Minor units per point issued (for example 1.2 fen).
    package var issuePrice: Rate
    /// Minor units per point redeemed (for example 1 fen).
    package var redeemPrice: Rate

    package init(issuePrice: Rate, redeemPrice: Rate) {
        self.issuePrice = issuePrice
        self.redeemPrice = redeemPrice
    }
}

/// Settlement configuration.
package struct SettlementRules: Sendable, Equatable {
    /// Prices per format; every site's format has them.
    package var formatPrices: [Format: SettlementPrices]
    /// Price of a point when it expires (breakage is valued at this), minor units per point.
    package var breakagePrice: Rate
    /// Whether a redeem price may exceed every issue price (`settlement.redeem_above_issue: allow`).
    package var redeemAboveIssueAllowed = false

    /// The prices that apply to a merchant: its own, else its format's.
    package func prices(for merchant: Merchant, format: Format) -> SettlementPrices? {
        merchant.settlementPrices ?? formatPrices[format]
    }
}
