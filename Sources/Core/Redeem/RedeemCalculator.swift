/// The inputs of a redemption quote.
package struct RedeemInput: Hashable, Sendable {
    package var merchant: MerchantID
    package var bill: Money
    package var lines: [SaleLine]
    /// Points the member asks to use; 0 asks for the most allowed.
    package var requestedPoints: Points
    /// Points the member may spend, as the caller knows it.
    package var availablePoints: Points

    package init(
        merchant: MerchantID, bill: Money, lines: [SaleLine] = [], requestedPoints: Points, availablePoints: Points
    ) {
        self.merchant = merchant
        self.bill = bill
        self.lines = lines
        self.requestedPoints = requestedPoints
        self.availablePoints = availablePoints
    }
}

/// A redemption quote: what would be taken and paid, or why not.
package struct RedeemQuote: Hashable, Sendable {
    /// Points that would be taken (0 when refused).
    package var points: Points
    /// Money those points pay.
    package var value: Money
    /// What is left to pay in money.
    package var remainingDue: Money
    /// The most points this bill accepts for this member now.
    package var maxPoints: Points
    /// Set when the redemption is not allowed.
    package var refusal: Refusal?
    /// A sentence for the cashier when refused.
    package var message: String

    /// True when the redemption may go ahead.
    package var allowed: Bool { refusal == nil }
}

/// The redeem rules of DESIGN §3 as a pure function. docs/rules.md gives the rounding:
///
/// - value of p points = floor(p × money / points) of the point value (`valueOf`);
/// - points taken for a request are normalised down to the fewest points that buy the same value,
///   so no point buys a fraction of a minor unit (`normalise`);
/// - the eligible bill excludes lines in excluded categories; at most floor(eligible × share) of it
///   may be paid with points.
package enum RedeemCalculator: Sendable {
    /// Quotes a redemption. Throws only for input the program cannot accept; a redemption the rules
    /// refuse is a quote with `refusal` set.
    package static func quote(program: Program, input: RedeemInput) throws(CalculationError) -> RedeemQuote {
        guard let (merchant, _) = program.merchant(input.merchant) else {
            throw CalculationError(.unknownReference, field: "merchant", "unknown merchant '\(input.merchant)'")
        }
        try BillValidation.validate(amount: input.bill, lines: input.lines, limits: program.limits, amountField: "bill")
        guard input.requestedPoints >= .zero, input.requestedPoints <= program.limits.pointsPerTransactionMax else {
            throw CalculationError(
                .invalidInput, field: "points",
                "must be between 0 and \(program.limits.pointsPerTransactionMax) (found \(input.requestedPoints))")
        }
        let rules = program.redeem
        var eligible = Money.zero
        for line in BillValidation.effectiveLines(amount: input.bill, lines: input.lines, merchant: merchant)
        where !rules.excludedCategories.contains(line.category) {
            eligible += line.amount
        }
        func refuse(_ refusal: Refusal, _ maxPoints: Points, _ message: String) -> RedeemQuote {
            RedeemQuote(
                points: .zero, value: .zero, remainingDue: input.bill, maxPoints: maxPoints, refusal: refusal,
                message: message)
        }
        guard eligible > .zero else {
            return refuse(.excludedCategory, .zero, "Nothing on this bill can be paid with points.")
        }
        let maxValue = Money(minorUnits: rules.maximumBillShare.floorTimes(eligible.minorUnits))
        let maxByShare = pointsBuying(maxValue, rules)
        let available = max(.zero, input.availablePoints)
        let maxPoints = normalise(min(maxByShare, available), rules)

        if input.requestedPoints > maxByShare {
            return refuse(
                .overBillShare, maxPoints,
                "At most \(maxByShare) points (\(rules.maximumBillShare) of the bill) can pay this bill.")
        }
        if input.requestedPoints > available {
            return refuse(
                .insufficientPoints, maxPoints, "The member has \(available) points, not \(input.requestedPoints).")
        }
        let points = input.requestedPoints == .zero ? maxPoints : normalise(input.requestedPoints, rules)
        if points < rules.minimumPoints || points == .zero {
            if input.requestedPoints == .zero, available < rules.minimumPoints {
                return refuse(
                    .insufficientPoints, maxPoints,
                    "The member has \(available) points; the minimum redemption is \(rules.minimumPoints).")
            }
            return refuse(.belowMinimum, maxPoints, "The minimum redemption is \(rules.minimumPoints) points.")
        }
        let value = valueOf(points, rules)
        return RedeemQuote(
            points: points, value: value, remainingDue: input.bill - value, maxPoints: maxPoints, refusal: nil,
            message: "")
    }

    /// The money `points` pay: floor(points × money / points-per-value).
    package static func valueOf(_ points: Points, _ rules: RedeemRules) -> Money {
        Money(
            minorUnits: Rounding.int64(
                Rounding.floor(
                    Int128(points.value) * Int128(rules.pointValueMoney.minorUnits), Int128(rules.pointValuePoints))))
    }

    /// The most points whose value does not exceed `money`: floor(money × points / money-per-value).
    package static func pointsBuying(_ money: Money, _ rules: RedeemRules) -> Points {
        Points(
            Rounding.int64(
                Rounding.floor(
                    Int128(money.minorUnits) * Int128(rules.pointValuePoints), Int128(rules.pointValueMoney.minorUnits))
            ))
    }

    /// The fewest points that cover `money` in full: ceiling(money × points / money-per-value).
    package static func pointsCovering(_ money: Money, _ rules: RedeemRules) -> Points {
        Points(
            Rounding.int64(
                Rounding.ceiling(
                    Int128(money.minorUnits) * Int128(rules.pointValuePoints), Int128(rules.pointValueMoney.minorUnits))
            ))
    }

    /// The fewest points with the same value as `points`, so no point buys a fraction of a minor unit.
    package static func normalise(_ points: Points, _ rules: RedeemRules) -> Points {
        pointsCovering(valueOf(points, rules), rules)
    }
}
