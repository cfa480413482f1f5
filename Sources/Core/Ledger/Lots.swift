/// Points of one earning, held until spent or expired.
package struct Lot: Hashable, Sendable {
    /// The earning transaction that created the lot.
    package var id: TransactionID
    /// Points still in the lot (≥ 0).
    package var remaining: Points
    /// The instant the lot expires: expired once `now >= expiresAt`.
    package var expiresAt: Timestamp

    package init(id: TransactionID, remaining: Points, expiresAt: Timestamp) {
        self.id = id
        self.remaining = remaining
        self.expiresAt = expiresAt
    }
}

/// Points taken from one lot.
package struct LotDraw: Hashable, Sendable {
    package var lot: TransactionID
    package var points: Points
}

/// Why lots could not cover a debit.
package struct InsufficientPoints: Error, Hashable, Sendable {
    /// What the lots hold in total.
    package var available: Points
    package var requested: Points
}

/// Lot rules of DESIGN §3: a debit consumes the lots that expire soonest first.
package enum LotConsumption: Sendable {
    /// The draws that take `points` from `lots`, soonest expiry first (ties: older lot first).
    /// Throws when the lots hold fewer points.
    package static func consume(_ lots: [Lot], points: Points) throws(InsufficientPoints) -> [LotDraw] {
        precondition(points >= .zero, "a debit of negative points")
        let ordered = lots.filter { $0.remaining > .zero }.sorted { ($0.expiresAt, $0.id) < ($1.expiresAt, $1.id) }
        var draws: [LotDraw] = []
        var left = points
        for lot in ordered where left > .zero {
            let take = min(left, lot.remaining)
            draws.append(LotDraw(lot: lot.id, points: take))
            left -= take
        }
        guard left == .zero else {
            throw InsufficientPoints(available: ordered.reduce(.zero) { $0 + $1.remaining }, requested: points)
        }
        return draws
    }
}

/// Expiry rules of DESIGN §3: points expire at the end of the month N months after the month they
/// were earned, in the program time zone.
package enum ExpiryCalculator: Sendable {
    /// The instant a lot earned at `earnedAt` expires: local midnight starting the month after the
    /// month N months later. (Earned any time in November 2026 with N = 12: expires at
    /// 2027-12-01T00:00 local, the end of November 2027.)
    package static func expiresAt(earnedAt: Timestamp, rules: ExpiryRules, timeZone: ProgramTimeZone) -> Timestamp {
        let earnedOn = timeZone.date(of: earnedAt)
        return timeZone.startOfDay(earnedOn.firstOfMonth.adding(months: rules.months + 1))
    }

    /// The lots an expiry run as of the end of `day` expires: those that expire at or before the
    /// end of that day, with points left.
    package static func expiring(_ lots: [Lot], asOfEndOf day: CivilDate, timeZone: ProgramTimeZone) -> [Lot] {
        let endOfDay = timeZone.startOfDay(day.adding(days: 1))
        return lots.filter { $0.remaining > .zero && $0.expiresAt <= endOfDay }
    }

    /// Points that expire after `asOf` and within the reminder window, and when the first of them
    /// expire (nil when none).
    package static func reminder(_ lots: [Lot], asOf: Timestamp, rules: ExpiryRules) -> (
        points: Points, first: Timestamp?
    ) {
        let horizon = asOf.adding(milliseconds: Int64(rules.reminderDays) * Timestamp.day)
        let soon = lots.filter { $0.remaining > .zero && $0.expiresAt > asOf && $0.expiresAt <= horizon }
        return (soon.reduce(.zero) { $0 + $1.remaining }, soon.map(\.expiresAt).min())
    }
}
