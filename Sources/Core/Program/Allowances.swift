/// Allowances (escrow): points of a member the gateway moves into `escrow(site)` while it can reach
/// the site, so that the site can spend them offline with no risk (docs/rules.md, "Allowances").
/// The program says, per site format, what grants one, how many points at most and for how long;
/// and how far the clocks of sites may drift, which the lease's two ends allow for.
package struct AllowanceRules: Sendable, Equatable {
    /// The most a site's clock may differ from the gateway's, in either direction.
    package var clockSkewMaxMinutes: Int
    /// How long after a lease ends the gateway waits before it may reclaim an allowance the site
    /// has not returned; more than `clockSkewMaxMinutes`.
    package var reclaimMarginMinutes: Int
    /// After this long past the lease's end the gateway reclaims an allowance even from a site it
    /// has not heard from; a spend of it that arrives later is charged to the site's offline risk.
    package var unheardReclaimHours: Int
    /// The rule of each format that has one; a site of another format gets no allowance.
    package var formats: [Format: AllowanceRule]

    package init(
        clockSkewMaxMinutes: Int, reclaimMarginMinutes: Int, unheardReclaimHours: Int, formats: [Format: AllowanceRule]
    ) {
        self.clockSkewMaxMinutes = clockSkewMaxMinutes
        self.reclaimMarginMinutes = reclaimMarginMinutes
        self.unheardReclaimHours = unheardReclaimHours
        self.formats = formats
    }

    /// No allowances: a program without the `allowances` section.
    package static let none = AllowanceRules(
        clockSkewMaxMinutes: 0, reclaimMarginMinutes: 0, unheardReclaimHours: 0, formats: [:])

    /// The rule for `site`, if its format has one.
    package func rule(for site: Site) -> AllowanceRule? {
        formats[site.format]
    }
}

/// What grants an allowance at the sites of a format. An operator may grant one at any site whose
/// format has a rule, whatever its trigger.
package enum AllowanceTrigger: String, Sendable, CaseIterable {
    /// A car park's entry barrier (`Parking.Enter`); only for formats whose sites all run a tariff.
    case entry
    /// A hotel's check-in (`Points.CheckIn`, or an operator at the front desk).
    case checkIn = "check_in"
    /// The member's home site: where the member earned most often over the last 90 days,
    /// refreshed by the gateway's daily job.
    case homeSite = "home_site"
    /// Only an operator's call.
    case operatorOnly = "operator"
}

/// One format's allowance.
package struct AllowanceRule: Sendable, Equatable {
    package var trigger: AllowanceTrigger
    /// The most points one allowance reserves (never more than the member has).
    package var pointsMax: Points
    /// How long an allowance lasts, from its grant (the gateway's clock).
    package var leaseMinutes: Int

    package init(trigger: AllowanceTrigger, pointsMax: Points, leaseMinutes: Int) {
        self.trigger = trigger
        self.pointsMax = pointsMax
        self.leaseMinutes = leaseMinutes
    }
}

/// An allowance about to be granted: its points and lease, checked against the rules.
package struct AllowanceTerms: Sendable, Equatable {
    package var points: Points
    package var grantedAt: Timestamp
    /// The lease's end on the gateway's clock.
    package var leaseUntil: Timestamp
}

/// Why an allowance is not granted.
package enum AllowanceRefusal: Error, Sendable, Equatable {
    /// The site's format has no allowance rule.
    case noRule(Format)
    /// The trigger is not the one the format's rule names (operators may always grant).
    case wrongTrigger(expected: AllowanceTrigger)
    /// The member has no points to reserve.
    case nothingAvailable
    /// More points were asked for than the member has (not reserved elsewhere) or the rule allows.
    case tooManyPoints(asked: Points, allowed: Points)
    /// The lease asked for ends before the grant or lasts longer than the rule allows.
    case lease(String)

    /// A message for the caller, naming the problem.
    package var message: String {
        switch self {
        case .noRule(let format): "sites of format '\(format)' get no allowance (no allowances.formats.\(format))"
        case .wrongTrigger(let expected):
            "allowances at this site are granted on '\(expected.rawValue)' (or by an operator)"
        case .nothingAvailable: "the member has no points that are not reserved already"
        case .tooManyPoints(let asked, let allowed):
            "\(asked.value) points asked for; at most \(allowed.value) can be reserved for this member here"
        case .lease(let problem): problem
        }
    }
}

extension AllowanceRules {
    /// The terms of an allowance at `site` on `trigger` at `now`, for a member with `available`
    /// points (the balance less holds and other sites' allowances): `points` when the caller asks
    /// for a number (at most the rule's maximum and `available`; an operator may ask), otherwise
    /// as many as the rule allows and the member has; the lease the rule's, or `leaseUntil` when an
    /// operator asks for a shorter one.
    package func terms(
        at site: Site, trigger: AllowanceTrigger, available: Points, points asked: Points? = nil,
        leaseUntil askedLease: Timestamp? = nil, now: Timestamp
    ) -> Result<AllowanceTerms, AllowanceRefusal> {
        guard let rule = rule(for: site) else { return .failure(.noRule(site.format)) }
        guard trigger == .operatorOnly || trigger == rule.trigger else {
            return .failure(.wrongTrigger(expected: rule.trigger))
        }
        let allowed = Points(min(rule.pointsMax.value, max(0, available.value)))
        guard allowed.value > 0 else { return .failure(.nothingAvailable) }
        let points = asked ?? allowed
        guard points.value > 0, points.value <= allowed.value else {
            return .failure(.tooManyPoints(asked: points, allowed: allowed))
        }
        let longest = Timestamp(milliseconds: now.milliseconds + Int64(rule.leaseMinutes) * 60_000)
        let leaseUntil = askedLease ?? longest
        // The edge stops spending `clockSkewMaxMinutes` before the end: a lease must outlast that.
        let shortest = now.milliseconds + Int64(clockSkewMaxMinutes) * 60_000
        guard leaseUntil.milliseconds > shortest else {
            return .failure(
                .lease(
                    "the lease must end more than allowances.clock_skew_max_minutes (\(clockSkewMaxMinutes)) after now")
            )
        }
        guard leaseUntil <= longest else {
            return .failure(.lease("the lease may last at most \(rule.leaseMinutes) minutes at this site"))
        }
        return .success(AllowanceTerms(points: points, grantedAt: now, leaseUntil: leaseUntil))
    }

    /// When the site stops spending an allowance whose lease ends at `leaseUntil` (on its own
    /// clock): `clockSkewMaxMinutes` early, so that a site whose clock runs that much slow still
    /// stops by the lease's end on the gateway's clock.
    package func edgeStop(leaseUntil: Timestamp) -> Timestamp {
        Timestamp(milliseconds: leaseUntil.milliseconds - Int64(clockSkewMaxMinutes) * 60_000)
    }

    /// Whether the gateway may reclaim, at `now`, an allowance whose lease ended at `leaseUntil`
    /// and that the site has not returned. `caughtUpAt` is the last time (gateway clock) the site
    /// asked for a pull with every transaction of its outbox acknowledged: a site caught up after
    /// the lease ended has pushed every spend of it. Without that the gateway waits
    /// `unheardReclaimHours`.
    package func mayReclaim(leaseUntil: Timestamp, caughtUpAt: Timestamp?, now: Timestamp) -> Bool {
        let margin = leaseUntil.milliseconds + Int64(reclaimMarginMinutes) * 60_000
        guard now.milliseconds >= margin else { return false }
        if let caughtUpAt, caughtUpAt.milliseconds >= leaseUntil.milliseconds { return true }
        return now.milliseconds >= leaseUntil.milliseconds + Int64(unheardReclaimHours) * 3_600_000
    }
}

extension AllowanceRules {
    /// How far back the home-site job counts a member's earns.
    package static let homeSiteDays = 90

    /// Each member's home site (the site of their most earns in `earns`, ties to the first site id),
    /// kept only where the site's format grants on `home_site`; in member id order.
    package func homeSites(_ earns: [MemberID: [SiteID: Int]], program: Program) -> [(MemberID, SiteID)] {
        guard formats.values.contains(where: { $0.trigger == .homeSite }) else { return [] }
        return earns.keys.sorted().compactMap { member in
            guard
                let home = earns[member]?.max(by: { ($0.value, $1.key.rawValue) < ($1.value, $0.key.rawValue) })?
                    .key,
                let site = program.site(home), rule(for: site)?.trigger == .homeSite
            else { return nil }
            return (member, home)
        }
    }
}
