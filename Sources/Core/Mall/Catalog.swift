/// The points mall (积分商城): what members can buy with points in the group's member app
/// (`catalog` in the program, docs/rules.md "Points mall").
package struct Catalog: Sendable, Equatable {
    /// Items in document order; ids unique.
    package var items: [CatalogItem]

    /// No items.
    package static let empty = Catalog(items: [])

    /// The item with this id.
    package func item(_ id: ItemID) -> CatalogItem? {
        items.first { $0.id == id }
    }
}

/// What an item of the mall is.
package enum ItemKind: String, Sendable, Hashable, CaseIterable {
    /// A thing handed over or shipped by the app's fulfilment (a mug, a gift card).
    case goods
    /// A voucher a till honours (a coffee, a cinema ticket).
    case voucher
    /// An experience honoured at a site (a hotel afternoon tea, a gym week pass).
    case experience
    /// Parking time honoured at car parks' barriers.
    case parkingHours = "parking_hours"

    /// Whether an order of it issues a voucher (every kind but goods).
    package var issuesVoucher: Bool { self != .goods }
}

/// Who pays for an item of the mall.
package enum Sponsor: Hashable, Sendable, CustomStringConvertible {
    /// The platform: the points spent on it are the platform's (`platform_redeemed`), and it pays
    /// the merchant that honours the voucher.
    case platform
    /// A merchant of the program: the points spent on it are that merchant's (`redeemed:M`), as at
    /// its till, and it pays the merchant that honours the voucher.
    case merchant(MerchantID)

    /// `platform` or a merchant id; nil for anything else.
    package init?(_ text: String) {
        if text == "platform" {
            self = .platform
        } else if let id = MerchantID(text) {
            self = .merchant(id)
        } else {
            return nil
        }
    }

    package var description: String {
        switch self {
        case .platform: "platform"
        case .merchant(let id): id.rawValue
        }
    }

    /// The account the points spent on the item go to.
    package var account: Account {
        switch self {
        case .platform: .platformRedeemed
        case .merchant(let id): .redeemed(id)
        }
    }
}

/// An item of the mall (`catalog.items[]`).
package struct CatalogItem: Sendable, Equatable {
    package var id: ItemID
    package var name: String
    package var kind: ItemKind
    /// Points per unit (≥ 1).
    package var pricePoints: Points
    /// Money per unit paid with the points (points plus money), collected by the app; 0 when the
    /// item is sold for points only.
    package var priceMoney: Money
    /// Units the sale may sell in total, before operators' stock adjustments.
    package var stock: Int64
    /// Units one member may hold at most (orders not cancelled), if limited.
    package var perMemberMax: Int64?
    /// The tiers whose members may buy it; empty means every tier.
    package var tiers: Set<TierID>
    /// Half-open sale window [start, end).
    package var saleStart: Timestamp
    package var saleEnd: Timestamp
    package var sponsor: Sponsor
    /// The format the item belongs to, for recommendations (a hotel's tea: `hotel`).
    package var format: Format?
    /// The item's category, for recommendations (`dining`, `cinema`).
    package var category: Category?
    /// What the merchant that honours one of its vouchers is paid, in minor units.
    package var settlementPrice: Money
    /// How its vouchers may be used; nil for goods.
    package var voucher: VoucherTerms?

    /// Whether the sale is open at `instant`.
    package func onSale(at instant: Timestamp) -> Bool {
        saleStart <= instant && instant < saleEnd
    }
}

/// Where and for how long a voucher of an item may be used.
package struct VoucherTerms: Sendable, Equatable {
    /// Days a voucher stays valid from its issue (1 to 3,660).
    package var validDays: Int
    /// Formats of sites whose tills may honour it; empty means any.
    package var formats: Set<Format>
    /// Merchants that may honour it; empty means any (within `formats`).
    package var merchants: Set<MerchantID>
    /// Minutes of parking it pays (parking-hours items only).
    package var parkingMinutes: Int?

    package init(validDays: Int, formats: Set<Format>, merchants: Set<MerchantID>, parkingMinutes: Int? = nil) {
        self.validDays = validDays
        self.formats = formats
        self.merchants = merchants
        self.parkingMinutes = parkingMinutes
    }
}
