/// Why an order of the points mall was refused. Each has a stable name (`reason`) that the member
/// API carries in the `coalition-reason` trailing metadata (docs/member-api.md).
package enum OrderRefusal: Error, Equatable, Sendable {
    case unknownMember
    case unknownItem(String)
    /// Outside the item's sale window.
    case notOnSale(start: Timestamp, end: Timestamp)
    case tierNotAllowed(tier: TierID, allowed: Set<TierID>)
    /// Fewer units left than ordered.
    case soldOut(left: Int64)
    /// Over the item's per-member limit (units the member holds already).
    case memberLimit(limit: Int64, held: Int64)
    /// Not enough points (balance less holds).
    case insufficientPoints(available: Points, needed: Points)

    /// The stable reason name.
    package var reason: String {
        switch self {
        case .unknownMember: "UNKNOWN_MEMBER"
        case .unknownItem: "UNKNOWN_ITEM"
        case .notOnSale: "NOT_ON_SALE"
        case .tierNotAllowed: "TIER_NOT_ALLOWED"
        case .soldOut: "SOLD_OUT"
        case .memberLimit: "MEMBER_LIMIT"
        case .insufficientPoints: "INSUFFICIENT_POINTS"
        }
    }

    /// A sentence for the member.
    package var message: String {
        switch self {
        case .unknownMember: "the member is not known to the network"
        case .unknownItem(let id): "item '\(id)' is not in the catalog"
        case .notOnSale(let start, let end):
            "the item is on sale from \(start.milliseconds) to \(end.milliseconds) (Unix ms), not now"
        case .tierNotAllowed(let tier, let allowed):
            "the item is for tiers \(allowed.sorted().map(\.rawValue).joined(separator: ", ")); the member is \(tier)"
        case .soldOut(let left): left == 0 ? "sold out" : "only \(left) left"
        case .memberLimit(let limit, let held):
            "at most \(limit) per member; the member holds \(held) already"
        case .insufficientPoints(let available, let needed):
            "the order needs \(needed) points; the member may spend \(available)"
        }
    }
}

/// The points mall's rules for an order, as a pure function of what the store read in the order's
/// transaction (docs/member-api.md, "Orders").
package enum OrderRules {
    /// The most units of an item one order may buy.
    package static let quantityMax: Int64 = 10

    /// What the store read for an order, under its locks: the item's stock row and the member.
    package struct Inputs: Sendable, Equatable {
        /// Units sold (orders not cancelled) and added or removed by operators.
        package var sold: Int64
        package var adjusted: Int64
        /// Units of the item the member holds (orders not cancelled).
        package var memberHolds: Int64
        package var tier: TierID
        /// Balance less holds.
        package var available: Points

        package init(sold: Int64, adjusted: Int64, memberHolds: Int64, tier: TierID, available: Points) {
            self.sold = sold
            self.adjusted = adjusted
            self.memberHolds = memberHolds
            self.tier = tier
            self.available = available
        }
    }

    /// Units of `item` left to sell: its stock, plus operators' adjustments, less what was sold;
    /// never below zero.
    package static func left(_ item: CatalogItem, sold: Int64, adjusted: Int64) -> Int64 {
        max(0, item.stock + adjusted - sold)
    }

    /// The points an order of `quantity` units costs, or nil when the quantity is out of range.
    package static func cost(_ item: CatalogItem, quantity: Int64) -> (points: Points, money: Money)? {
        guard (1...quantityMax).contains(quantity) else { return nil }
        return (Points(item.pricePoints.value * quantity), Money(minorUnits: item.priceMoney.minorUnits * quantity))
    }

    /// What refuses an order of `quantity` units whatever the member: the sale window, then the
    /// units left. Nil when the item can be sold.
    package static func itemRefusal(_ item: CatalogItem, quantity: Int64, sold: Int64, adjusted: Int64, now: Timestamp)
        -> OrderRefusal?
    {
        guard item.onSale(at: now) else { return .notOnSale(start: item.saleStart, end: item.saleEnd) }
        let left = left(item, sold: sold, adjusted: adjusted)
        guard quantity <= left else { return .soldOut(left: left) }
        return nil
    }

    /// The decision on an order of `quantity` (1 to `quantityMax`) units of `item` at `now`: the
    /// item's checks first (the sale window, the units left), then the member's (the tier, the
    /// per-member limit, the points); the first that fails is the refusal.
    package static func decide(_ item: CatalogItem, quantity: Int64, inputs: Inputs, now: Timestamp)
        -> Result<Points, OrderRefusal>
    {
        precondition((1...quantityMax).contains(quantity), "an order of \(quantity) units")
        if let refusal = itemRefusal(item, quantity: quantity, sold: inputs.sold, adjusted: inputs.adjusted, now: now) {
            return .failure(refusal)
        }
        if !item.tiers.isEmpty, !item.tiers.contains(inputs.tier) {
            return .failure(.tierNotAllowed(tier: inputs.tier, allowed: item.tiers))
        }
        if let limit = item.perMemberMax, inputs.memberHolds + quantity > limit {
            return .failure(.memberLimit(limit: limit, held: inputs.memberHolds))
        }
        let points = Points(item.pricePoints.value * quantity)
        guard points <= inputs.available else {
            return .failure(.insufficientPoints(available: max(.zero, inputs.available), needed: points))
        }
        return .success(points)
    }
}
