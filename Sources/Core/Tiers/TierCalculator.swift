/// A member's tier and the date of their next review.
package struct TierStatus: Hashable, Sendable {
    package var tier: TierID
    /// The day downgrades are considered (program time zone).
    package var reviewDate: CivilDate

    package init(tier: TierID, reviewDate: CivilDate) {
        self.tier = tier
        self.reviewDate = reviewDate
    }
}

/// A qualifying earning for the rolling window: when it was posted and its points (negative for a
/// refund of an earn).
package struct QualifyingEntry: Hashable, Sendable {
    package var at: Timestamp
    package var points: Points

    package init(at: Timestamp, points: Points) {
        self.at = at
        self.points = points
    }
}

/// Tier rules of DESIGN §3: upgrade as soon as the threshold is crossed, downgrade only at review.
package enum TierCalculator: Sendable {
    /// The highest tier whose threshold is at most `qualifying`.
    package static func eligibleTier(_ rules: TierRules, qualifying: Points) -> Tier {
        rules.tiers.last { $0.threshold <= qualifying } ?? rules.tiers[0]
    }

    /// The status of a member enrolling on `day`: the first tier, reviewed `reviewMonths` later.
    package static func initial(_ rules: TierRules, enrolledOn day: CivilDate) -> TierStatus {
        TierStatus(tier: rules.tiers[0].id, reviewDate: day.adding(months: rules.reviewMonths))
    }

    /// The status after a posting on `day` that brought the member's qualifying points to
    /// `qualifying`: an upgrade when a higher tier is reached (with a new review date a full review
    /// period away), otherwise unchanged. Never a downgrade.
    package static func afterPosting(_ rules: TierRules, status: TierStatus, qualifying: Points, on day: CivilDate)
        -> TierStatus
    {
        let eligible = eligibleTier(rules, qualifying: qualifying)
        guard rank(rules, eligible.id) > rank(rules, status.tier) else { return status }
        return TierStatus(tier: eligible.id, reviewDate: day.adding(months: rules.reviewMonths))
    }

    /// The status at a review on `day`: when the review date has come, the tier becomes the
    /// eligible one (down or up) and the next review is moved forward by whole review periods
    /// until it is after `day`; before the review date, unchanged.
    package static func atReview(_ rules: TierRules, status: TierStatus, qualifying: Points, on day: CivilDate)
        -> TierStatus
    {
        guard day >= status.reviewDate else { return status }
        var next = status.reviewDate
        var periods = 0
        while next <= day {
            periods += 1
            next = status.reviewDate.adding(months: rules.reviewMonths * periods)
        }
        return TierStatus(tier: eligibleTier(rules, qualifying: qualifying).id, reviewDate: next)
    }

    /// The first instant of the rolling qualifying window ending on `day`: the day after the same
    /// date `qualifyingMonths` earlier, at local midnight. (On 2026-11-23 the window is
    /// 2025-11-24 through 2026-11-23.)
    package static func windowStart(_ rules: TierRules, timeZone: ProgramTimeZone, endingOn day: CivilDate) -> Timestamp
    {
        timeZone.startOfDay(day.adding(months: -rules.qualifyingMonths).adding(days: 1))
    }

    /// Qualifying points in the rolling window ending at `asOf`; never below zero.
    package static func qualifyingPoints(
        _ rules: TierRules, timeZone: ProgramTimeZone, entries: [QualifyingEntry], asOf: Timestamp
    ) -> Points {
        let start = windowStart(rules, timeZone: timeZone, endingOn: timeZone.date(of: asOf))
        let sum = entries.reduce(Points.zero) { $1.at >= start && $1.at <= asOf ? $0 + $1.points : $0 }
        return max(.zero, sum)
    }

    /// The tier after a reversal took back qualifying points: `current` is kept only while the
    /// qualifying points still reach it or the member held it before the reversed transaction
    /// (`before`); otherwise the member falls to the higher of the tier the points reach and
    /// `before`. Never an upgrade.
    package static func afterReversal(_ rules: TierRules, current: TierID, qualifying: Points, before: TierID)
        -> TierID
    {
        let eligible = eligibleTier(rules, qualifying: qualifying).id
        let floor = rank(rules, eligible) >= rank(rules, before) ? eligible : before
        return rank(rules, floor) < rank(rules, current) ? floor : current
    }

    private static func rank(_ rules: TierRules, _ tier: TierID) -> Int {
        rules.tiers.firstIndex { $0.id == tier } ?? 0
    }
}
