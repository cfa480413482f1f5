/// What an edge knows when it must decide a redemption without the gateway.
package struct OfflineSituation: Hashable, Sendable {
    /// Points of this redemption.
    package var points: Points
    /// Points this member already redeemed offline at the site today (program time zone).
    package var memberRedeemedToday: Points
    /// Points redeemed offline at the site that the gateway has not acknowledged yet.
    package var siteExposure: Points
    /// How long the site has been without the gateway, in milliseconds.
    package var offlineMilliseconds: Int64

    package init(points: Points, memberRedeemedToday: Points, siteExposure: Points, offlineMilliseconds: Int64) {
        self.points = points
        self.memberRedeemedToday = memberRedeemedToday
        self.siteExposure = siteExposure
        self.offlineMilliseconds = offlineMilliseconds
    }
}

/// The floor limit of DESIGN §4, step 3: an offline redemption is allowed only within the site's
/// caps (the member's locally known balance is checked by `RedeemCalculator`). Checked in this
/// order, each limit inclusive: offline duration, per transaction, per member per day, site
/// exposure.
package enum OfflineRedemptionPolicy: Sendable {
    /// Nil when allowed, else the refusal and a sentence for the cashier.
    package static func check(_ situation: OfflineSituation, limits: OfflineLimits) -> (Refusal, String)? {
        if situation.offlineMilliseconds > Int64(limits.offlineMinutesMax) * Timestamp.minute {
            return (
                .offlineTooLong,
                "The centre has been unreachable for more than \(limits.offlineMinutesMax) minutes; points cannot be redeemed until it is back."
            )
        }
        if situation.points > limits.pointsPerTransactionMax {
            return (
                .offlineTransactionCap,
                "Offline, at most \(limits.pointsPerTransactionMax) points can be used per transaction."
            )
        }
        if situation.memberRedeemedToday + situation.points > limits.pointsPerMemberPerDayMax {
            let left = max(.zero, limits.pointsPerMemberPerDayMax - situation.memberRedeemedToday)
            return (.offlineDailyCap, "Offline, this member can use \(left) more points today.")
        }
        if situation.siteExposure + situation.points > limits.siteExposureMax {
            return (
                .offlineSiteExposure,
                "Offline, this site has reached its limit of unconfirmed redemptions; try again when the centre is reachable."
            )
        }
        return nil
    }
}
