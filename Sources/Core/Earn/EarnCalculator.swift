/// What Core knows of a member when computing an earn.
package struct MemberEarnState: Hashable, Sendable {
    package var tier: TierID
    /// Month of birth 1-12, nil when unknown.
    package var birthMonth: Int?
    /// The member's last earn per format (for the cross-format bonus).
    package var lastEarnByFormat: [Format: Timestamp]
    /// The member's current streak of consecutive days with an earn.
    package var streak: Streak?

    package init(
        tier: TierID, birthMonth: Int? = nil, lastEarnByFormat: [Format: Timestamp] = [:], streak: Streak? = nil
    ) {
        self.tier = tier
        self.birthMonth = birthMonth
        self.lastEarnByFormat = lastEarnByFormat
        self.streak = streak
    }
}

/// Consecutive days (program time zone) on which the member earned.
package struct Streak: Hashable, Sendable {
    /// The last day with an earn.
    package var lastDay: CivilDate
    /// How many consecutive days end on `lastDay` (≥ 1).
    package var days: Int

    package init(lastDay: CivilDate, days: Int) {
        self.lastDay = lastDay
        self.days = days
    }
}

/// The inputs of an earn.
package struct EarnInput: Hashable, Sendable {
    package var merchant: MerchantID
    package var amount: Money
    /// Optional bill lines; when present they sum to `amount`.
    package var lines: [SaleLine]
    package var occurredAt: Timestamp
    package var member: MemberEarnState
    /// Points each budgeted promotion may still give, as the caller knows it. A budgeted promotion
    /// missing here is taken to have its whole budget left.
    package var promotionBudgetsLeft: [PromotionID: Points]
    /// The part of `amount` the member paid with points: it earns nothing.
    package var paidWithPoints: Money

    package init(
        merchant: MerchantID, amount: Money, lines: [SaleLine] = [], occurredAt: Timestamp, member: MemberEarnState,
        promotionBudgetsLeft: [PromotionID: Points] = [:], paidWithPoints: Money = .zero
    ) {
        self.paidWithPoints = paidWithPoints
        self.merchant = merchant
        self.amount = amount
        self.lines = lines
        self.occurredAt = occurredAt
        self.member = member
        self.promotionBudgetsLeft = promotionBudgetsLeft
    }
}

/// Which rule produced part of an earn.
package enum EarnComponentKind: String, Hashable, Sendable, CaseIterable {
    case base, tier, promotion, crossFormat, birthday, streak, signup, referral
}

/// One part of an earn, for the receipt.
package struct EarnComponent: Hashable, Sendable {
    package var kind: EarnComponentKind
    /// The promotion or tier id; empty for the others.
    package var ruleID: String
    package var points: Points
    package var description: String

    package init(kind: EarnComponentKind, ruleID: String = "", points: Points, description: String) {
        self.kind = kind
        self.ruleID = ruleID
        self.points = points
        self.description = description
    }
}

/// The result of an earn, with every point explained.
package struct EarnResult: Hashable, Sendable {
    /// The sum of `components`.
    package var total: Points
    /// Base first, then tier, promotions in program order, cross-format, birthday, streak. Zero
    /// components other than base are left out.
    package var components: [EarnComponent]
    /// The part of the bill that earns (excluded categories removed).
    package var eligibleAmount: Money
    /// The merchant's site format (the member's last earn at this format becomes `occurredAt`).
    package var format: Format
    /// The member's streak after this earn (unchanged when nothing was earned).
    package var streak: Streak?

    /// Points of one kind.
    package func points(of kind: EarnComponentKind) -> Points {
        components.filter { $0.kind == kind }.reduce(.zero) { $0 + $1.points }
    }
}

/// The earn rules of DESIGN §3 as a pure function. docs/rules.md gives the order and rounding:
///
/// 1. Lines in an excluded category earn nothing. Each other line earns at the merchant's rate,
///    else its category's rate, else the format's base rate, in points per major unit.
/// 2. base = floor(Σ line amount × rate / minor units per major unit): one rounding, down.
/// 3. Each bonus is computed from `base` on its own and rounded down on its own:
///    tier = floor(base × (multiplier − 1)); a promotion multiplier m gives floor(B × (m − 1))
///    where B is the base of the lines it matches (rounded down), a fixed bonus gives its points
///    once when any line matches and the bill earns base points, both capped by the budget left;
///    cross-format = floor(base × rate); birthday like a promotion on all lines; streak gives its
///    points when the streak reaches a multiple of its days.
/// 4. total = base + every bonus.
package enum EarnCalculator: Sendable {
    /// Computes an earn. Throws for input the program cannot accept (unknown merchant or tier,
    /// amount out of range, lines that do not sum to the amount).
    package static func earn(program: Program, input: EarnInput) throws(CalculationError) -> EarnResult {
        guard let (merchant, site) = program.merchant(input.merchant) else {
            throw CalculationError(.unknownReference, field: "merchant", "unknown merchant '\(input.merchant)'")
        }
        guard let tier = program.tier(input.member.tier) else {
            throw CalculationError(.unknownReference, field: "tier", "unknown tier '\(input.member.tier)'")
        }
        try BillValidation.validate(
            amount: input.amount, lines: input.lines, limits: program.limits, amountField: "amount")
        let rules = program.earn
        let denominator = Int128(program.currency.minorPerMajor) * Int128(Rate.scale)

        // Exact products per line, in (minor units × rate micros).
        var eligibleAmount = Money.zero
        var lineProducts: [(category: Category, product: Int128)] = []
        let paidInMoney = try paidWithMoney(
            BillValidation.effectiveLines(amount: input.amount, lines: input.lines, merchant: merchant),
            paidWithPoints: input.paidWithPoints, redeemExcluded: program.redeem.excludedCategories)
        for line in paidInMoney {
            guard !rules.excludedCategories.contains(line.category) else { continue }
            let rate = merchant.earnRate ?? rules.categoryRates[line.category] ?? rules.baseRates[site.format] ?? .zero
            eligibleAmount += line.amount
            lineProducts.append((line.category, Int128(line.amount.minorUnits) * Int128(rate.micros)))
        }
        let base = Points(Rounding.int64(Rounding.floor(lineProducts.reduce(0) { $0 + $1.product }, denominator)))

        var components = [
            EarnComponent(
                kind: .base, points: base, description: "base \(eligibleAmount) minor units at \(site.format) rates")
        ]
        func add(_ kind: EarnComponentKind, _ rule: String, _ points: Points, _ text: String) {
            if points > .zero {
                components.append(EarnComponent(kind: kind, ruleID: rule, points: points, description: text))
            }
        }

        if tier.multiplier > .one {
            add(
                .tier, tier.id.rawValue, Points((tier.multiplier - .one).floorTimes(base.value)),
                "\(tier.name) ×\(tier.multiplier)")
        }

        for promotion in rules.promotions where input.occurredAt >= promotion.start && input.occurredAt < promotion.end
        {
            let filter = promotion.filter
            guard filter.sites.isEmpty || filter.sites.contains(site.id),
                filter.formats.isEmpty || filter.formats.contains(site.format),
                filter.merchants.isEmpty || filter.merchants.contains(merchant.id)
            else { continue }
            let matching = lineProducts.filter { filter.categories.isEmpty || filter.categories.contains($0.category) }
            guard !matching.isEmpty else { continue }
            var points: Points
            switch promotion.bonus {
            case .multiplier(let multiplier):
                let matchingBase = Rounding.int64(Rounding.floor(matching.reduce(0) { $0 + $1.product }, denominator))
                points = Points((multiplier - .one).floorTimes(matchingBase))
            case .points(let fixed):
                // A bill that earns no base points earns no bonuses (a ¥0.50 dinner gets no
                // fixed bonus), as for the birthday's.
                points = base > .zero ? fixed : .zero
            }
            if let budget = promotion.budget {
                let left = max(.zero, input.promotionBudgetsLeft[promotion.id] ?? budget)
                points = min(points, left)
            }
            add(.promotion, promotion.id.rawValue, points, promotion.name)
        }

        if let cross = rules.crossFormat {
            let windowStart = input.occurredAt.adding(milliseconds: -Int64(cross.windowDays) * Timestamp.day)
            let earnedElsewhere = input.member.lastEarnByFormat.contains { format, time in
                format != site.format && time >= windowStart && time <= input.occurredAt
            }
            if earnedElsewhere {
                add(.crossFormat, "", Points(cross.rate.floorTimes(base.value)), "cross-format +\(cross.rate)")
            }
        }

        let today = program.timeZone.date(of: input.occurredAt)
        if let birthday = rules.birthday, input.member.birthMonth == today.month {
            switch birthday {
            case .multiplier(let multiplier):
                add(.birthday, "", Points((multiplier - .one).floorTimes(base.value)), "birthday month ×\(multiplier)")
            case .points(let fixed):
                add(.birthday, "", base > .zero ? fixed : .zero, "birthday month +\(fixed)")
            }
        }

        var streak = input.member.streak
        if base > .zero {
            let (next, advanced) = advance(streak, to: today)
            streak = next
            if advanced, let bonus = rules.streak, next.days % bonus.days == 0 {
                add(.streak, "", bonus.points, "\(next.days)-day streak")
            }
        }

        let total = components.reduce(Points.zero) { $0 + $1.points }
        return EarnResult(
            total: total, components: components, eligibleAmount: eligibleAmount, format: site.format, streak: streak)
    }

    /// The bill's lines less the part paid with points (docs/rules.md, "Earning on a bill paid
    /// partly with points"): it is taken off the lines points can pay (those not in the redeem
    /// rules' excluded categories) in proportion to their amounts, rounded down per line, and the
    /// minor units left over go one each to the lines with the largest remainders (the earlier line
    /// first on a tie). Throws when more was paid with points than those lines come to.
    package static func paidWithMoney(
        _ lines: [(category: Category, amount: Money)], paidWithPoints paid: Money, redeemExcluded: Set<Category>
    ) throws(CalculationError) -> [(category: Category, amount: Money)] {
        guard paid > .zero else {
            guard paid == .zero else {
                throw CalculationError(.invalidInput, field: "paidWithPoints", "must not be negative")
            }
            return lines
        }
        let payable = lines.indices.filter { !redeemExcluded.contains(lines[$0].category) }
        let total = payable.reduce(Int128(0)) { $0 + Int128(lines[$1].amount.minorUnits) }
        guard Int128(paid.minorUnits) <= total else {
            throw CalculationError(
                .invalidInput, field: "paidWithPoints",
                "\(paid) minor units paid with points is more than the \(total) of the bill points can pay")
        }
        var result = lines
        let shares = Rounding.largestRemainder(
            paid.minorUnits, weights: payable.map { lines[$0].amount.minorUnits })
        for (index, share) in zip(payable, shares) {
            result[index].amount = Money(minorUnits: lines[index].amount.minorUnits - share)
        }
        return result
    }

    /// The streak after an earn on `day`, and whether it moved to a new day.
    package static func advance(_ streak: Streak?, to day: CivilDate) -> (Streak, Bool) {
        guard let streak else { return (Streak(lastDay: day, days: 1), true) }
        if day <= streak.lastDay { return (streak, false) }
        if day == streak.lastDay.adding(days: 1) { return (Streak(lastDay: day, days: streak.days + 1), true) }
        return (Streak(lastDay: day, days: 1), true)
    }

    /// The points of an enrolment: the sign-up bonus to the new member, and the referral bonus to
    /// the referrer when there is one and the program pays it at enrolment (with
    /// `referral_paid_at: first_purchase` it is paid at the referred member's first purchase).
    package static func enrollment(program: Program, hasReferrer: Bool) -> (signup: EarnResult, referral: Points) {
        let signup = program.earn.signupPoints
        var components: [EarnComponent] = []
        if signup > .zero {
            components.append(EarnComponent(kind: .signup, points: signup, description: "sign-up bonus"))
        }
        let referral = hasReferrer && program.earn.referralPaidAt == .enrolment ? program.earn.referralPoints : .zero
        let result = EarnResult(
            total: signup, components: components, eligibleAmount: .zero, format: Format(unchecked: "enrollment"),
            streak: nil)
        return (result, referral)
    }
}
