/// One of a member's ledger entries, as the member's views read it.
package struct MemberActivity: Sendable, Equatable {
    package var kind: TransactionKind?
    /// The member's points change.
    package var points: Points
    /// Where it happened; nil for the gateway's own entries (orders, adjustments, expiry).
    package var site: SiteID?
    package var merchant: MerchantID?
    package var occurredAt: Timestamp

    package init(
        kind: TransactionKind?, points: Points, site: SiteID?, merchant: MerchantID?, occurredAt: Timestamp
    ) {
        self.kind = kind
        self.points = points
        self.site = site
        self.merchant = merchant
        self.occurredAt = occurredAt
    }
}

/// Points a member earned and spent at one format.
package struct FormatTotals: Sendable, Equatable {
    package var earned: Points = .zero
    package var spent: Points = .zero

    package init(earned: Points = .zero, spent: Points = .zero) {
        self.earned = earned
        self.spent = spent
    }
}

/// A member's account as the member app shows it (docs/member-api.md, "GetAccount"): pure
/// functions of the ledger's entries, lots and the program.
package enum AccountView {
    /// The format the member's views give the points mall's orders and their cancellations.
    package static let pointsMallFormat = "points_mall"
    /// The format of operators' adjustments (customer service).
    package static let serviceFormat = "service"
    /// The windows of the expiring-points figures, in days.
    package static let expiryWindowsDays = [30, 60, 90]

    /// The format an entry counts under: its site's, `points_mall` for the gateway's orders, their
    /// cancellations and lottery draws, `service` for adjustments; nil for expiry (neither earned
    /// nor spent).
    package static func format(of entry: MemberActivity, program: Program) -> String? {
        if let site = entry.site { return program.site(site)?.format.rawValue ?? site.rawValue }
        switch entry.kind {
        case .order, .reverse, .draw: return pointsMallFormat
        case .adjust: return serviceFormat
        default: return nil
        }
    }

    /// Earned and spent per format over `entries`. Earned: enrolments, earns and credits less
    /// refunds (a `reverse` that takes points); spent: redemptions, parking and orders less
    /// cancellations (a `reverse` that gives points back). An adjustment counts, signed, as earned.
    package static func totalsByFormat(_ entries: [MemberActivity], program: Program) -> [String: FormatTotals] {
        var totals: [String: FormatTotals] = [:]
        for entry in entries {
            guard let format = format(of: entry, program: program) else { continue }
            switch entry.kind {
            case .enroll, .earn, .adjust:
                totals[format, default: FormatTotals()].earned += entry.points
            case .redeem, .parking, .order:
                totals[format, default: FormatTotals()].spent -= entry.points
            case .draw:
                // Net of its points prize: a draw that won more than it cost counts as earned.
                if entry.points < .zero {
                    totals[format, default: FormatTotals()].spent -= entry.points
                } else {
                    totals[format, default: FormatTotals()].earned += entry.points
                }
            case .reverse:
                if entry.points < .zero {
                    totals[format, default: FormatTotals()].earned += entry.points
                } else {
                    totals[format, default: FormatTotals()].spent -= entry.points
                }
            case .expire, .voucherUse, nil:
                break
            case .allowanceGrant, .allowanceReturn, .allowanceReclaim:
                // A reservation for one site, neither earned nor spent: its spend is the redemption.
                break
            }
        }
        return totals
    }

    /// The start of the calendar year of `now` in the program's time zone.
    package static func yearStart(now: Timestamp, timeZone: ProgramTimeZone) -> (year: Int, start: Timestamp) {
        let today = timeZone.date(of: now)
        let first = CivilDate(year: today.year, month: 1, day: 1)!
        return (today.year, timeZone.startOfDay(first))
    }

    /// Points of lots with points left expiring within each of `expiryWindowsDays` of `now`, and
    /// those lots as (expiry, points) per expiry instant, soonest first, up to the longest window.
    package static func expiring(_ lots: [(expiresAt: Timestamp, remaining: Points)], now: Timestamp)
        -> (windows: [Points], lots: [(expiresAt: Timestamp, points: Points)])
    {
        let day: Int64 = 86_400_000
        let longest = now.adding(milliseconds: Int64(expiryWindowsDays.max() ?? 0) * day)
        var byInstant: [Timestamp: Points] = [:]
        for lot in lots where lot.remaining > .zero && lot.expiresAt > now && lot.expiresAt <= longest {
            byInstant[lot.expiresAt, default: .zero] += lot.remaining
        }
        let windows = expiryWindowsDays.map { days in
            let end = now.adding(milliseconds: Int64(days) * day)
            return byInstant.filter { $0.key <= end }.values.reduce(.zero, +)
        }
        return (windows, byInstant.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// The next tier above `current` and the qualifying points still needed to reach it; nil at
    /// the top tier.
    package static func nextTier(after current: TierID, qualifying: Points, tiers: TierRules)
        -> (tier: Tier, needed: Points)?
    {
        let threshold = tiers.tiers.first { $0.id == current }?.threshold ?? .zero
        guard let next = tiers.tiers.first(where: { $0.threshold > threshold }) else { return nil }
        return (next, max(.zero, next.threshold - qualifying))
    }
}
