/// How a budgeted promotion's remaining budget is split into quotas for the sites its filter
/// reaches, so that a site offline gives bonus only within its own quota and the budget holds
/// (docs/rules.md, "Promotion quotas").
package struct PromotionQuotaRules: Sendable, Equatable {
    /// The days of use (bonus points given at each site) the split is proportional to.
    package var historyDays: Int
    /// The least quota a reached site gets, when the remaining budget allows it for all.
    package var floorPoints: Points

    package init(historyDays: Int, floorPoints: Points) {
        self.historyDays = historyDays
        self.floorPoints = floorPoints
    }

    /// The rules of a program without `promotion_quotas`.
    package static let defaults = PromotionQuotaRules(historyDays: 7, floorPoints: Points(100))
}

package enum PromotionQuotas {
    /// Splits `remaining` (≥ 0) over `sites` (each at most once; their `use` ≥ 0): every site gets
    /// `floor` first, then the rest in proportion to its use (equally if none was used), each
    /// share rounded down, and the points left by rounding one by one to the largest remainders
    /// (ties: the larger use, then the smaller site id). When `remaining` cannot give every site
    /// its floor, it is split equally the same way. The quotas sum to `remaining` exactly: no
    /// point is lost and none is made.
    package static func split(remaining: Points, uses: [SiteID: Int64], floor: Points) -> [SiteID: Points] {
        let sites = uses.keys.sorted()
        guard !sites.isEmpty else { return [:] }
        let total = max(0, remaining.value)
        let count = Int64(sites.count)
        let floorEach = max(0, floor.value)
        // Each site's floor, when the budget allows a floor for every site (no overflow: checked
        // by division).
        let affordable = floorEach <= total / count
        let floors = affordable ? floorEach : 0
        let rest = total - floors * count
        var weights = sites.map { max(0, uses[$0] ?? 0) }
        // Uses so large that their sum overflows are halved together until it does not (the
        // proportions stay within rounding).
        var summed = Self.sum(weights)
        while summed == nil {
            weights = weights.map { $0 >> 1 }
            summed = Self.sum(weights)
        }
        let useTotal = summed ?? 0
        // Proportional when the floors were affordable and some site was used; equal otherwise.
        let proportional = affordable && useTotal > 0
        var shares: [Int64] = []
        var remainders: [(index: Int, remainder: Int64, weight: Int64)] = []
        for (index, weight) in weights.enumerated() {
            let (numerator, denominator) = proportional ? (weight, useTotal) : (1, count)
            // rest × numerator / denominator without overflow: rest ≤ 10^12-ish, weights any Int64.
            let product = rest.multipliedFullWidth(by: numerator)
            let (quotient, remainder) = denominator.dividingFullWidth(product)
            shares.append(quotient)
            remainders.append((index, remainder, weight))
        }
        var left = rest - shares.reduce(0, +)
        let order = remainders.sorted { a, b in
            if a.remainder != b.remainder { return a.remainder > b.remainder }
            if a.weight != b.weight { return a.weight > b.weight }
            return sites[a.index] < sites[b.index]
        }
        var position = 0
        while left > 0 {
            shares[order[position % order.count].index] += 1
            left -= 1
            position += 1
        }
        var quotas: [SiteID: Points] = [:]
        for (index, site) in sites.enumerated() { quotas[site] = Points(floors + shares[index]) }
        return quotas
    }

    /// The sum of `values`, or nil when it overflows.
    private static func sum(_ values: [Int64]) -> Int64? {
        var total: Int64 = 0
        for value in values {
            let (next, overflow) = total.addingReportingOverflow(value)
            if overflow { return nil }
            total = next
        }
        return total
    }
}

/// One site's standing in a budgeted promotion, as the gateway keeps it (docs/protocol.md,
/// "Promotion quotas").
package struct QuotaHolding: Sendable, Equatable {
    /// Bonus points posted from the site's transactions, in all.
    package var given: Points
    /// The most bonus points, in all, the site may give under any quota it may still hold: the
    /// gateway keeps this much of the budget for it (`held − given` not yet posted).
    package var held: Points
    /// The entitlement (`given` at issue + quota) of the latest quota issued, and its number.
    package var issued: Points
    package var issue: Int64

    package init(given: Points = .zero, held: Points = .zero, issued: Points = .zero, issue: Int64 = 0) {
        self.given = given
        self.held = held
        self.issued = issued
        self.issue = issue
    }

    /// Points reserved for the site and not posted yet (never negative).
    package var outstanding: Points { max(.zero, held - given) }
}

extension PromotionQuotas {
    /// The holding once the site says the quota it holds is issue `heldIssue`, applied when its
    /// outbox's newest sequence was `appliedAt`, and the gateway has every transaction of the site
    /// up to `highWater`. Then every bonus given under an earlier quota is posted, and later ones
    /// stay within the latest: what the site may give in all is the latest entitlement, or what
    /// it has given if that is more. Otherwise (a lost answer, or transactions still on their
    /// way) nothing is known for sure and the holding stays as it was.
    package static func confirmed(_ holding: QuotaHolding, heldIssue: Int64, appliedAt: Int64, highWater: Int64)
        -> QuotaHolding
    {
        guard heldIssue > 0, heldIssue == holding.issue, appliedAt <= highWater else { return holding }
        var confirmed = holding
        confirmed.held = max(holding.issued, holding.given)
        return confirmed
    }

    /// The quota to issue `site`: bonus points it may give from its transactions after its
    /// high-water mark. Its share of the remaining budget (`split` over the sites reached, by their
    /// use), but never more than the other sites' outstanding reservations leave, so the
    /// reservations never add up to more than the budget left; none for a promotion that ended or
    /// a site it does not reach.
    package static func quota(
        for site: SiteID, budget: Points, given: Points, uses: [SiteID: Int64], holdings: [SiteID: QuotaHolding],
        floor: Points, ended: Bool
    ) -> Points {
        guard !ended, uses[site] != nil else { return .zero }
        let remaining = max(.zero, budget - given)
        let target = split(remaining: remaining, uses: uses, floor: floor)[site] ?? .zero
        var reserved: Int64 = 0
        for (other, holding) in holdings where other != site {
            let (sum, overflow) = reserved.addingReportingOverflow(holding.outstanding.value)
            reserved = overflow ? Int64.max : sum
        }
        let room = remaining.value > reserved ? remaining.value - reserved : 0
        return min(target, Points(room))
    }

    /// The holding after issuing `quota` as issue `issue`: the new entitlement counts from what the
    /// site has given, and the gateway keeps the larger of it and what the site held before (the
    /// site may not have the new quota yet).
    package static func issuing(_ holding: QuotaHolding, quota: Points, issue: Int64) -> QuotaHolding {
        var next = holding
        next.issued = holding.given + quota
        next.held = max(holding.held, next.issued)
        next.issue = issue
        return next
    }
}

extension PromotionQuotas {
    /// Whether some budgeted promotion of `program` reaches `site` (most pulls of most sites: no,
    /// and then the ledger reads and writes nothing for quotas).
    package static func reach(_ program: Program, site: SiteID) -> Bool {
        guard let here = program.site(site) else { return false }
        return program.earn.promotions.contains { $0.budget != nil && $0.reaches(here) }
    }
}

extension Promotion {
    /// Whether the promotion can give bonus at `site`: the site, its format and one of its
    /// merchants pass the filter (categories are per bill line, so any site passes them).
    package func reaches(_ site: Site) -> Bool {
        (filter.sites.isEmpty || filter.sites.contains(site.id))
            && (filter.formats.isEmpty || filter.formats.contains(site.format))
            && (filter.merchants.isEmpty || site.merchants.contains { filter.merchants.contains($0.id) })
    }
}

/// One issue of quotas to a site: what its pull's answer carries, and the holdings to store.
package struct QuotaIssuePlan: Sendable, Equatable {
    /// The issue's number (one more than the site's last).
    package var issue: Int64
    /// The quota of each promotion: bonus points the site may give after the high-water mark.
    package var quotas: [PromotionID: Points]
    /// The site's holdings once issued.
    package var holdings: [PromotionID: QuotaHolding]
}

extension PromotionQuotas {
    /// The quotas to issue `site` at `now`, for every budgeted promotion of `program` that reaches
    /// it or that it holds a quota of; nil when there is none. `holdings` are every site's (by
    /// promotion), `given` each promotion's bonus posted in all, `uses` each site's bonus over the
    /// program's `history_days`; `heldIssue` and `appliedAt` what the site said it holds
    /// (`confirmed`), `highWater` its high-water mark.
    package static func plan(
        program: Program, site: SiteID, now: Timestamp, given: [PromotionID: Points],
        holdings: [PromotionID: [SiteID: QuotaHolding]], uses: [PromotionID: [SiteID: Int64]], highWater: Int64,
        heldIssue: Int64, appliedAt: Int64
    ) -> QuotaIssuePlan? {
        guard let here = program.site(site) else { return nil }
        let promotions = program.earn.promotions.filter { promotion in
            promotion.budget != nil && (promotion.reaches(here) || holdings[promotion.id]?[site] != nil)
        }
        guard !promotions.isEmpty else { return nil }
        let issue = (holdings.values.compactMap { $0[site]?.issue }.max() ?? 0) + 1
        var plan = QuotaIssuePlan(issue: issue, quotas: [:], holdings: [:])
        for promotion in promotions {
            guard let budget = promotion.budget else { continue }
            var all = holdings[promotion.id] ?? [:]
            let mine = confirmed(
                all[site] ?? QuotaHolding(), heldIssue: heldIssue, appliedAt: appliedAt, highWater: highWater)
            all[site] = mine
            var reached: [SiteID: Int64] = [:]
            for other in program.sites where promotion.reaches(other) {
                reached[other.id] = uses[promotion.id]?[other.id] ?? 0
            }
            let quota = quota(
                for: site, budget: budget, given: given[promotion.id] ?? .zero, uses: reached, holdings: all,
                floor: program.promotionQuotas.floorPoints, ended: now >= promotion.end)
            plan.quotas[promotion.id] = quota
            plan.holdings[promotion.id] = issuing(mine, quota: quota, issue: issue)
        }
        return plan
    }
}

extension QuotaIssuePlan {
    /// This plan as the site's latest issue again, when it changes nothing the gateway keeps of
    /// the site's holdings in the plan's promotions (`current`: the site's holdings, those of
    /// promotions no longer in the program included and left aside) but the issue's number: the
    /// site's entitlements are the same, only counted from a later sequence, so nothing need be
    /// written. Nil when something changes.
    package func unchanged(from current: [PromotionID: QuotaHolding]) -> QuotaIssuePlan? {
        guard let issue = holdings.keys.first.flatMap({ current[$0]?.issue }), issue > 0 else { return nil }
        var same = holdings
        for (promotion, next) in holdings {
            guard let old = current[promotion], old.issue == issue, old.held == next.held, old.issued == next.issued,
                old.given == next.given
            else { return nil }
            same[promotion] = old
        }
        return QuotaIssuePlan(issue: issue, quotas: quotas, holdings: same)
    }
}
