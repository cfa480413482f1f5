/// The inputs of a car park exit.
package struct ParkingInput: Hashable, Sendable {
    package var site: SiteID
    package var entry: Timestamp
    package var exit: Timestamp
    /// The member's tier, nil for a driver who is not a member.
    package var tier: TierID?
    /// Tier free minutes the member already used today (program time zone, day of exit).
    package var freeMinutesUsedToday: Int

    package init(site: SiteID, entry: Timestamp, exit: Timestamp, tier: TierID?, freeMinutesUsedToday: Int = 0) {
        self.site = site
        self.entry = entry
        self.exit = exit
        self.tier = tier
        self.freeMinutesUsedToday = freeMinutesUsedToday
    }
}

/// The price of a stay.
package struct ParkingQuote: Hashable, Sendable {
    /// Length of the stay in whole minutes, rounded up.
    package var stayMinutes: Int64
    /// True when the stay is within the grace period (free).
    package var withinGrace: Bool
    /// Tier free minutes used for this stay.
    package var freeMinutesApplied: Int64
    /// Minutes charged after grace and free minutes.
    package var chargedMinutes: Int64
    package var fee: Money
    /// Points that pay the whole fee, rounded up so the fee is covered.
    package var pointsForFullFee: Points
}

/// A payment of a quoted fee, partly or wholly with points.
package struct ParkingPayment: Hashable, Sendable {
    package var points: Points
    /// Money the points pay (at most the fee).
    package var pointsValue: Money
    /// Money still due.
    package var amountDue: Money
}

/// The parking rules of DESIGN §3 as a pure function. docs/rules.md gives the order:
///
/// 1. stay = exit − entry in minutes, rounded up; a stay within the grace minutes is free.
/// 2. The member's tier free minutes per day, less those used today, are taken off the stay.
/// 3. The rest is charged per started hour, in 24-hour blocks each capped at the daily cap:
///    fee = full days × cap + min(cap, started hours of the remainder × price).
package enum ParkingCalculator: Sendable {
    /// The longest stay priced, in minutes (31 days).
    package static let stayMinutesMax: Int64 = 31 * 24 * 60

    /// Prices a stay. Throws for an unknown site, a site without a tariff, or impossible times.
    package static func quote(program: Program, input: ParkingInput) throws(CalculationError) -> ParkingQuote {
        guard let site = program.site(input.site) else {
            throw CalculationError(.unknownReference, field: "site", "unknown site '\(input.site)'")
        }
        guard let tariff = site.parking else {
            throw CalculationError(.unknownReference, field: "site", "site '\(site.id)' has no parking tariff")
        }
        guard input.exit >= input.entry else {
            throw CalculationError(.invalidInput, field: "exit_at", "the exit is before the entry")
        }
        let stay = Int64(
            Rounding.ceiling(Int128(input.exit.milliseconds - input.entry.milliseconds), Int128(Timestamp.minute)))
        guard stay <= stayMinutesMax else {
            throw CalculationError(
                .invalidInput, field: "entry_at", "a stay is at most \(stayMinutesMax) minutes (found \(stay))")
        }
        var freeAvailable: Int64 = 0
        if let tierID = input.tier {
            guard let tier = program.tier(tierID) else {
                throw CalculationError(.unknownReference, field: "tier", "unknown tier '\(tierID)'")
            }
            freeAvailable = max(0, Int64(tier.freeParkingMinutesPerDay) - Int64(max(0, input.freeMinutesUsedToday)))
        }
        if stay <= Int64(tariff.graceMinutes) {
            return ParkingQuote(
                stayMinutes: stay, withinGrace: true, freeMinutesApplied: 0, chargedMinutes: 0, fee: .zero,
                pointsForFullFee: .zero)
        }
        let free = min(freeAvailable, stay)
        let charged = stay - free
        let fee = fee(minutes: charged, tariff: tariff)
        return ParkingQuote(
            stayMinutes: stay, withinGrace: false, freeMinutesApplied: free, chargedMinutes: charged, fee: fee,
            pointsForFullFee: RedeemCalculator.pointsCovering(fee, program.redeem))
    }

    /// The fee for `minutes` charged minutes under `tariff`.
    package static func fee(minutes: Int64, tariff: ParkingTariff) -> Money {
        let dayMinutes: Int64 = 24 * 60
        func hoursPrice(_ minutes: Int64) -> Int64 {
            (minutes + 59) / 60 * tariff.pricePerHour.minorUnits
        }
        guard let cap = tariff.dailyCap else { return Money(minorUnits: hoursPrice(minutes)) }
        let days = minutes / dayMinutes
        let rest = minutes % dayMinutes
        return Money(minorUnits: days * cap.minorUnits + min(cap.minorUnits, hoursPrice(rest)))
    }

    /// Pays a quoted fee with `points` (0 for none). Returns a refusal when the member lacks the
    /// points; `points` above what the full fee needs is invalid input.
    package static func pay(
        program: Program, quote: ParkingQuote, points: Points, available: Points
    ) throws(CalculationError) -> Result<ParkingPayment, Refusal> {
        guard points >= .zero, points <= quote.pointsForFullFee else {
            throw CalculationError(
                .invalidInput, field: "points",
                "must be between 0 and \(quote.pointsForFullFee) for this fee (found \(points))")
        }
        guard points <= available else { return .failure(.insufficientPoints) }
        let value = min(quote.fee, RedeemCalculator.valueOf(points, program.redeem))
        return .success(ParkingPayment(points: points, pointsValue: value, amountDue: quote.fee - value))
    }
}
