/// What happened in a settlement period to the points of one lot (docs/operations.md, "The points
/// liability"): each lot is valued at the price its issuer paid for it.
package struct LotMovement: Hashable, Sendable {
    /// What the lot's funders paid for it, in millionths of a minor unit (Σ points × issue price
    /// over its funders; the platform's own points count zero), for `fundedPoints` points: each
    /// point of the lot is worth `valueMicros / fundedPoints`.
    package var valueMicros: Int128
    package var fundedPoints: Points
    /// Points the lot held when the period began (zero for a lot created in it).
    package var opening: Points
    /// The lot's points when it was created in the period (zero for an older lot).
    package var issued: Points
    /// Points redeemed from it in the period, net of cancelled redemptions given back.
    package var redeemed: Points
    /// Points that expired from it in the period.
    package var expired: Points
    /// Points refunds took back from it in the period.
    package var reversed: Points
    /// Points operators' debits took from it in the period.
    package var adjusted: Points

    /// A lot funded at one price.
    package init(
        price: Rate, opening: Points = .zero, issued: Points = .zero, redeemed: Points = .zero,
        expired: Points = .zero, reversed: Points = .zero, adjusted: Points = .zero
    ) {
        self.init(
            funding: [(Points(1), price)], opening: opening, issued: issued, redeemed: redeemed, expired: expired,
            reversed: reversed, adjusted: adjusted)
    }

    /// A lot whose points were paid for by several funders, each at its price.
    package init(
        funding: [(points: Points, price: Rate)], opening: Points = .zero, issued: Points = .zero,
        redeemed: Points = .zero, expired: Points = .zero, reversed: Points = .zero, adjusted: Points = .zero
    ) {
        let funded = funding.reduce(Points.zero) { $0 + $1.points }
        self.fundedPoints = funded > .zero ? funded : Points(1)
        self.valueMicros = funding.reduce(Int128(0)) { $0 + Int128($1.points.value) * Int128($1.price.micros) }
        self.opening = opening
        self.issued = issued
        self.redeemed = redeemed
        self.expired = expired
        self.reversed = reversed
        self.adjusted = adjusted
    }

    /// Points left at the end of the period.
    package var closing: Points { opening + issued - redeemed - expired - reversed - adjusted }

    /// The value of `points` of this lot in millionths of a minor unit: exact for a lot of one
    /// price, rounded half to even to the millionth for a lot of several.
    package func micros(of points: Points) -> Int128 {
        Rounding.halfEven(Int128(points.value) * valueMicros, Int128(fundedPoints.value))
    }
}

/// A figure of the liability roll-forward: points and their value in minor units.
package struct Valued: Hashable, Sendable {
    package var points: Points
    package var minor: Money

    package init(points: Points, minor: Money) {
        self.points = points
        self.minor = minor
    }
}

/// The points liability over a period (IFRS 15 style): what members hold, valued at what issuers
/// paid for those very points, rolled forward. opening + issued − redeemed − expired − reversed −
/// adjusted = closing, in points and in money.
package struct LiabilityRollForward: Hashable, Sendable {
    package var opening: Valued
    package var issued: Valued
    /// Released on redemption: the revenue the platform earns when the points are spent.
    package var redeemed: Valued
    /// Released on expiry.
    package var expired: Valued
    package var reversed: Valued
    package var adjusted: Valued
    package var closing: Valued
}

extension SettlementCalculator {
    /// Rolls the liability forward. Each figure's exact value (points × price, summed over the lots)
    /// is rounded once, half to even, except `issued`, which is the balancing figure (it differs
    /// from its own rounding by at most a minor unit per figure), so that the roll-forward adds up
    /// to the minor unit and a period's closing is the next period's opening.
    package static func liability(_ lots: [LotMovement]) -> LiabilityRollForward {
        func valued(_ points: (LotMovement) -> Points) -> Valued {
            var total = Points.zero
            var exact = Int128(0)
            for lot in lots {
                let part = points(lot)
                total += part
                exact += lot.micros(of: part)
            }
            return Valued(points: total, minor: Money(minorUnits: value(exact)))
        }
        let opening = valued(\.opening)
        let redeemed = valued(\.redeemed)
        let expired = valued(\.expired)
        let reversed = valued(\.reversed)
        let adjusted = valued(\.adjusted)
        let closing = valued(\.closing)
        let issued = Valued(
            points: lots.reduce(Points.zero) { $0 + $1.issued },
            minor: closing.minor - opening.minor + redeemed.minor + expired.minor + reversed.minor + adjusted.minor)
        return LiabilityRollForward(
            opening: opening, issued: issued, redeemed: redeemed, expired: expired, reversed: reversed,
            adjusted: adjusted, closing: closing)
    }

    /// The value of points of lots, rounded once, half to even.
    package static func value(_ parts: [(points: Points, lot: LotMovement)]) -> Money {
        Money(minorUnits: value(parts.reduce(Int128(0)) { $0 + $1.lot.micros(of: $1.points) }))
    }

    private static func value(_ exact: Int128) -> Int64 {
        Rounding.int64(Rounding.halfEven(exact, Int128(Rate.scale)))
    }
}
