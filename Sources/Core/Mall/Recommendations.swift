/// An item recommended to a member, with its score and the reasons behind it.
package struct Recommendation: Sendable, Equatable {
    package var item: CatalogItem
    package var score: Int64
    package var reasons: [String]
}

/// Ranks the mall's items for one member (docs/member-api.md, "Recommend"): from the formats and
/// categories of the merchants where the member bought or paid with points in the last 90 days,
/// and from what the member's points afford. Deterministic: the same inputs give the same list.
package enum Recommendations {
    /// Days of the member's activity that count.
    package static let windowDays = 90
    /// Visits counted per format or category at most (so one habit does not drown the rest).
    package static let visitsCounted = 10

    /// What a member's activity says about their habits: visits per format and per category.
    package struct Habits: Sendable, Equatable {
        package var formats: [Format: Int] = [:]
        package var categories: [Category: Int] = [:]
    }

    /// Visits (earns, redemptions, parking payments) per format and per merchant category among
    /// `entries` that occurred in the `windowDays` before `now`.
    package static func habits(_ entries: [MemberActivity], program: Program, now: Timestamp) -> Habits {
        let since = now.adding(milliseconds: -Int64(windowDays) * 86_400_000)
        var habits = Habits()
        for entry in entries where entry.occurredAt >= since && entry.occurredAt <= now {
            guard [.earn, .redeem, .parking].contains(entry.kind), let id = entry.merchant,
                let (merchant, site) = program.merchant(id)
            else { continue }
            habits.formats[site.format, default: 0] += 1
            habits.categories[merchant.category, default: 0] += 1
        }
        return habits
    }

    /// The items a member may buy now (on sale, units left, tier allowed), best first, at most
    /// `limit`. Score: 40 + 2 per visit for the item's format, 30 + 2 per visit for its category
    /// (visits counted up to `visitsCounted`), 20 when the member's points cover it, else minus one
    /// per 100 points short (at most 50); ties go to the cheaper item, then the item id.
    package static func rank(
        _ catalog: Catalog, left: (CatalogItem) -> Int64, tier: TierID, available: Points, habits: Habits,
        now: Timestamp, limit: Int
    ) -> [Recommendation] {
        var ranked: [Recommendation] = []
        for item in catalog.items where item.onSale(at: now) && left(item) > 0 {
            if !item.tiers.isEmpty, !item.tiers.contains(tier) { continue }
            var score: Int64 = 0
            var reasons: [String] = []
            if let format = item.format, let visits = habits.formats[format] {
                score += 40 + 2 * Int64(min(visits, visitsCounted))
                reasons.append("you visited \(format) \(visits) time\(visits == 1 ? "" : "s") in the last \(windowDays) days")
            }
            if let category = item.category, let visits = habits.categories[category] {
                score += 30 + 2 * Int64(min(visits, visitsCounted))
                reasons.append("you bought \(category) \(visits) time\(visits == 1 ? "" : "s") in the last \(windowDays) days")
            }
            if item.pricePoints <= available {
                score += 20
                reasons.append("your \(max(.zero, available)) points cover it")
            } else {
                let short = item.pricePoints - max(.zero, available)
                score -= min(50, (short.value + 99) / 100)
                reasons.append("\(short) more points needed")
            }
            ranked.append(Recommendation(item: item, score: score, reasons: reasons))
        }
        ranked.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.item.pricePoints != b.item.pricePoints { return a.item.pricePoints < b.item.pricePoints }
            return a.item.id < b.item.id
        }
        return Array(ranked.prefix(max(0, limit)))
    }
}
