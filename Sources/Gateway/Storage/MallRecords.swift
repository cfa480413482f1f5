import Core
import Foundation

/// The points mall's orders (`coalition.member.v1.Member`): stock and per-member limits are
/// enforced inside the order's database transaction, so they hold however many gateways share
/// the ledger.
package protocol MallLedger: Sendable {
    var programs: ProgramCatalogue { get }
    /// The store's current instant (its injected clock).
    var clockNow: Timestamp { get }
    /// Places an order, or returns the order the channel placed before with the same request id;
    /// with the member's balance after it. Throws `OrderRefusal` (nothing written),
    /// `MallRequestConflict` (the request id was used for another order), or `MallBusy`.
    func placeOrder(_ command: OrderCommand, vouchers: VoucherIssuer?) async throws -> (
        order: MallOrder, balance: Points
    )
    /// Cancels an order whose voucher is unused and gives its points back; an order cancelled
    /// before is returned as it is. Throws `MallCancelRefusal` or `MallBusy`.
    func cancelOrder(_ orderID: String) async throws -> (order: MallOrder, balance: Points)
    /// The order with this id, if any.
    func order(_ orderID: String) async throws -> MallOrder?
    /// The order a channel placed with this request id, if any.
    func order(channel: String, requestID: RequestID) async throws -> MallOrder?
    /// A member's orders, newest first, placed before the ledger position `before` when given.
    func orders(member: MemberID, before: Int64?, limit: Int) async throws -> [MallOrder]
    /// Records the public half of a voucher key under its id, once; throws `VoucherKeyError` when
    /// the id is registered with another key.
    func registerVoucherKey(id: UInt8, publicKey: [UInt8]) async throws
    /// The public halves of every voucher key registered, by id.
    func voucherKeys() async throws -> [UInt8: [UInt8]]
    /// Units sold and adjusted by operators, per item (items never ordered are absent).
    func stock(_ items: [ItemID]) async throws -> [ItemID: MallStock]
    /// Adds (or, negative, removes) units of `item`, recorded with the operator and the reason;
    /// in turn with orders. Throws `MallStockRefusal` when removing more than are left.
    func adjustStock(_ item: CatalogItem, units: Int64, reason: String, by operatorName: String) async throws
        -> MallStock
    /// Vouchers matching `filter`, newest first (voucher ids are time-ordered), those before the
    /// voucher id `before` when given.
    func vouchers(_ filter: VoucherFilter, before: String?, limit: Int) async throws -> [VoucherEntry]
    /// Issues the tier benefits due today (docs/rules.md, "Tier benefits") to every member of a
    /// tier that has them, once per member, benefit and period, whichever gateway runs it and
    /// however often; returns the vouchers issued. Without a voucher key it issues nothing.
    @discardableResult
    func grantTierBenefits(vouchers: VoucherIssuer?) async throws -> Int
    /// The benefit grants of a member in `periods` (benefit key `TIER/BENEFIT` to period), with
    /// their vouchers, by benefit key.
    func benefitGrants(member: MemberID, periods: [String: String]) async throws -> [String: [IssuedVoucher]]
    /// Every use of the vouchers of order `orderID` at the tills, in posting order.
    func voucherUses(order orderID: String) async throws -> [VoucherUseEntry]
    /// Sales per item of the orders placed in [from, to), by item id.
    func sales(from: Timestamp, to: Timestamp) async throws -> [ItemSalesEntry]
}

/// A use of a voucher at a till as the gateway posted it (an order's story).
package struct VoucherUseEntry: Sendable, Equatable {
    package var voucherID: String
    package var transactionID: String
    package var site: String
    package var merchant: String
    package var usedAt: Timestamp
    /// Nil for the use that stands; else the conflict it was booked with.
    package var conflict: String?

    /// The SQL both stores read an order's voucher uses with (`$1`: the order id).
    static let select = """
        SELECT t.detail AS voucher_id, t.transaction_id, t.site_id, t.merchant_id, t.occurred_at_ms,
            (SELECT MIN(c.kind) FROM conflicts c WHERE c.transaction_id = t.transaction_id) AS conflict
        FROM transactions t
        WHERE t.kind = 'voucher_use' AND t.detail IN (SELECT voucher_id FROM vouchers WHERE order_id = $1)
        ORDER BY t.position
        """
}

/// One item's sales in a range of days (`coalition admin orders report`).
package struct ItemSalesEntry: Sendable, Equatable {
    package var item: String
    package var orders: Int64
    package var units: Int64
    package var unitsCancelled: Int64
    /// Points and money of the orders not cancelled.
    package var points: Int64
    package var money: Int64
    package var vouchersUsed: Int64
    package var vouchersOpen: Int64

    /// The SQL both stores report sales with (`$1`, `$2`: the range's first and end instants, ms).
    static let select = """
        SELECT o.item_id, COUNT(*) AS orders, CAST(SUM(o.quantity) AS BIGINT) AS units,
            CAST(SUM(CASE WHEN o.status = 'cancelled' THEN o.quantity ELSE 0 END) AS BIGINT) AS units_cancelled,
            CAST(SUM(CASE WHEN o.status = 'placed' THEN o.points ELSE 0 END) AS BIGINT) AS points,
            CAST(SUM(CASE WHEN o.status = 'placed' THEN o.money_minor ELSE 0 END) AS BIGINT) AS money,
            CAST(SUM((SELECT COUNT(*) FROM vouchers v WHERE v.order_id = o.order_id AND v.status = 'used')) AS BIGINT)
                AS used_count,
            CAST(SUM((SELECT COUNT(*) FROM vouchers v WHERE v.order_id = o.order_id AND v.status = 'issued')) AS BIGINT)
                AS open_count
        FROM mall_orders o
        WHERE o.placed_at_ms >= $1 AND o.placed_at_ms < $2
        GROUP BY o.item_id ORDER BY o.item_id
        """
}

/// What the benefits job and the account view share.
enum BenefitGranting {
    /// The benefits due at `today`: (tier, benefit, its key, the period, the birth month it is
    /// for when a birthday benefit).
    static func due(_ program: Program, today: CivilDate) -> [(
        tier: TierID, benefit: TierBenefit, key: String, period: String, birthMonth: Int?
    )] {
        program.tiers.tiers.flatMap { tier in
            tier.benefits.compactMap { benefit in
                let birthMonth = benefit.per == .birthday ? today.month : nil
                guard let period = benefit.per.period(today: today, birthMonth: birthMonth ?? today.month),
                    program.catalog.item(benefit.item)?.voucher != nil
                else { return nil }
                return (tier.id, benefit, "\(tier.id)/\(benefit.id)", period, birthMonth)
            }
        }
    }

    /// Members read and granted per transaction of the job.
    static let batch = 500
}

/// An operator's stock change that cannot be made.
package struct MallStockRefusal: Error, Sendable, Equatable {
    package var item: String
    package var left: Int64
    package var units: Int64
}

/// Which vouchers an operator lists (nil: any).
package struct VoucherFilter: Sendable, Equatable {
    package var member: MemberID?
    package var item: ItemID?
    package var status: VoucherStatus?
    package var usedSite: SiteID?

    package init(member: MemberID? = nil, item: ItemID? = nil, status: VoucherStatus? = nil, usedSite: SiteID? = nil) {
        self.member = member
        self.item = item
        self.status = status
        self.usedSite = usedSite
    }
}

/// A voucher as operators see it: its order, its status and the use that stands.
package struct VoucherEntry: Sendable, Equatable {
    package var voucherID: String
    package var orderID: String
    package var item: String
    package var member: String
    package var status: String
    package var validUntil: Timestamp
    package var usedTransactionID: String?
    package var usedSite: String?
    package var usedMerchant: String?
    package var usedAt: Timestamp?

    /// The SQL both stores list vouchers with: `$FILTER` is replaced by their own conditions.
    /// The signed code (for the member's own list; operators are not shown it).
    package var code = ""
    /// What issued it: `order`, `prize` (a draw's transaction is its order id) or `benefit`.
    package var source = "order"

    static let select = """
        SELECT voucher_id, order_id, item_id, member_id, status, valid_until_ms, used_transaction_id, used_site,
            used_merchant, used_at_ms, code,
            CASE WHEN sponsor IS NULL THEN 'order'
                WHEN EXISTS (SELECT 1 FROM transactions t WHERE t.transaction_id = vouchers.order_id) THEN 'prize'
                ELSE 'benefit' END AS source
        FROM vouchers
        """
}

/// What an order asks.
package struct OrderCommand: Sendable, Equatable {
    /// The caller: the name in its `channel` certificate; request ids are the channel's own.
    package var channel: String
    package var requestID: RequestID
    package var member: MemberID
    package var item: ItemID
    package var quantity: Int64

    package init(channel: String, requestID: RequestID, member: MemberID, item: ItemID, quantity: Int64) {
        self.channel = channel
        self.requestID = requestID
        self.member = member
        self.item = item
        self.quantity = quantity
    }
}

/// An item's sales as the store counts them.
package struct MallStock: Sendable, Equatable {
    /// Units of orders not cancelled.
    package var sold: Int64
    /// Units operators added (or, negative, took away).
    package var adjusted: Int64

    package init(sold: Int64, adjusted: Int64) {
        self.sold = sold
        self.adjusted = adjusted
    }
}

/// A placed order.
package struct MallOrder: Sendable, Equatable {
    package enum Status: String, Sendable, Equatable {
        case placed, cancelled
    }

    /// The order's id: its ledger transaction's id.
    package var orderID: String
    /// Its ledger transaction's position (orders list by it).
    package var position: Int64
    /// The vouchers it issued (one per unit; none for goods).
    package var vouchers: [IssuedVoucher] = []
    package var channel: String
    package var requestID: String
    /// The member as the request named it, and the member it was booked to (after merges).
    package var requestedMember: MemberID
    package var member: MemberID
    package var item: ItemID
    package var kind: ItemKind
    package var quantity: Int64
    package var points: Points
    package var money: Money
    package var status: Status
    package var placedAt: Timestamp
    package var cancelledAt: Timestamp?
    /// The cancellation's ledger transaction.
    package var cancelTransactionID: String?

    /// Whether `command` asks for this very order (a retry), rather than another under the same id.
    package func answers(_ command: OrderCommand) -> Bool {
        command.member == requestedMember && command.item == item && command.quantity == quantity
    }
}

/// Signs the vouchers an order issues, with the gateway's voucher key.
package struct VoucherIssuer: Sendable {
    package var keyID: UInt8
    package var sign: @Sendable (VoucherClaim) throws -> VoucherCode

    package init(keyID: UInt8, sign: @escaping @Sendable (VoucherClaim) throws -> VoucherCode) {
        self.keyID = keyID
        self.sign = sign
    }
}

/// A voucher an order issued.
package struct IssuedVoucher: Sendable, Equatable {
    package var voucherID: String
    package var code: String
    package var validUntil: Timestamp
    package var status: VoucherStatus
}

/// An order of an item that issues vouchers, on a gateway with no voucher key.
package struct MallVouchersDisabled: Error, Sendable {
    package init() {}
}

/// Too many orders are waiting for the ledger: nothing was written; the caller may try again.
package struct MallBusy: Error, Sendable, CustomStringConvertible {
    package var cause: String
    package init(_ cause: String) { self.cause = cause }
    package var description: String { "too many orders are waiting for the ledger (\(cause)); try again" }
}

/// A request id the channel used before for a different order.
package struct MallRequestConflict: Error, Sendable, Equatable {
    package var requestID: String
    package var orderID: String
}

/// Why an order cannot be cancelled.
package enum MallCancelRefusal: Error, Sendable, Equatable {
    case unknownOrder(String)
    /// Goods are handed over by the app's fulfilment: a return is the app's business.
    case notCancellable(ItemKind)
    /// A voucher of the order has been used.
    case voucherUsed(String)
}
