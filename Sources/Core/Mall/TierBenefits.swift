/// Tier benefits issued as vouchers (`tiers.levels[].benefits`; docs/rules.md, "Tier benefits"):
/// for example gold: two coffee vouchers a month and an afternoon tea in the birthday month. The
/// daily job issues each benefit to each member of the tier once per period.
package struct TierBenefit: Sendable, Equatable {
    /// A slug, unique within its tier.
    package var id: String
    /// A catalog item that issues vouchers.
    package var item: ItemID
    /// Vouchers issued each period (1 to 10).
    package var count: Int
    package var per: BenefitPeriod

    package init(id: String, item: ItemID, count: Int, per: BenefitPeriod) {
        self.id = id
        self.item = item
        self.count = count
        self.per = per
    }
}

/// How often a benefit is issued.
package enum BenefitPeriod: String, Sendable, Equatable, CaseIterable {
    /// Each calendar month of the program's time zone.
    case month
    /// Each calendar year.
    case year
    /// Once a year, in the member's birth month (not for a member without one).
    case birthday

    /// The period `today` falls in for this benefit (`2026-11`, `2026`, `2026-birthday`), or nil
    /// when the benefit is not due (a birthday benefit outside the member's birth month).
    package func period(today: CivilDate, birthMonth: Int?) -> String? {
        switch self {
        case .month: return fourDigits(today.year) + "-" + (today.month < 10 ? "0" : "") + String(today.month)
        case .year: return fourDigits(today.year)
        case .birthday:
            guard let birthMonth, birthMonth == today.month else { return nil }
            return fourDigits(today.year) + "-birthday"
        }
    }
}

/// A year as four digits.
private func fourDigits(_ year: Int) -> String {
    let text = String(year)
    return String(repeating: "0", count: max(0, 4 - text.count)) + text
}
