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
