import Core
import GRPCCore
import Wire

/// Operators' view of the points mall's orders: an order's story and a sales report.
extension OpsService {
    /// The longest range a sales report covers.
    static var salesDaysMax: Int64 { 366 }

    package func getOrder(
        request: ServerRequest<Coalition_Ops_V1_GetOrderRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_GetOrderResponse> {
        try await handle(request, context) { _, message in
            let order = try await store.existingOrder(message.orderID)
            let uses = try await store.voucherUses(order: order.orderID)
            var response = Coalition_Ops_V1_GetOrderResponse()
            response.orderID = order.orderID
            response.channel = order.channel
            response.requestID = order.requestID
            response.requestedMemberID = order.requestedMember.description
            response.memberID = order.member.description
            response.itemID = order.item.rawValue
            response.kind = order.kind.rawValue
            response.quantity = order.quantity
            response.points = order.points.value
            response.moneyMinor = order.money.minorUnits
            response.status = order.status.rawValue
            response.placedAtMs = order.placedAt.milliseconds
            response.cancelledAtMs = order.cancelledAt?.milliseconds ?? 0
            response.cancelTransactionID = order.cancelTransactionID ?? ""
            response.vouchers = order.vouchers.map { voucher in
                let standing = uses.first { $0.voucherID == voucher.voucherID && $0.conflict == nil }
                return Coalition_Ops_V1_VoucherEntry(
                    VoucherEntry(
                        voucherID: voucher.voucherID, orderID: order.orderID, item: order.item.rawValue,
                        member: order.member.description, status: voucher.status.rawValue,
                        validUntil: voucher.validUntil, usedTransactionID: standing?.transactionID,
                        usedSite: standing?.site, usedMerchant: standing?.merchant, usedAt: standing?.usedAt))
            }
            response.uses = uses.map { use in
                var wire = Coalition_Ops_V1_OrderVoucherUse()
                wire.voucherID = use.voucherID
                wire.transactionID = use.transactionID
                wire.siteID = use.site
                wire.merchantID = use.merchant
                wire.usedAtMs = use.usedAt.milliseconds
                wire.conflict = use.conflict ?? ""
                return wire
            }
            return response
        }
    }

    package func salesReport(
        request: ServerRequest<Coalition_Ops_V1_SalesReportRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_SalesReportResponse> {
        try await handle(request, context) { _, message in
            let from = try Self.period(message.from, field: "from")
            let to = try Self.period(message.to, field: "to")
            guard from <= to else { throw ServiceError.invalid("to", "must not be before from (\(from))") }
            guard to.daysSinceEpoch - from.daysSinceEpoch < Self.salesDaysMax else {
                throw ServiceError.invalid("to", "a report covers at most \(Self.salesDaysMax) days")
            }
            guard let program = store.programs.latest?.program else {
                throw ServiceError(.failedPrecondition, "no program is published", reason: "NO_PROGRAM")
            }
            let zone = program.timeZone
            let rows = try await store.sales(from: zone.startOfDay(from), to: zone.startOfDay(to.adding(days: 1)))
            var response = Coalition_Ops_V1_SalesReportResponse()
            response.from = from.description
            response.to = to.description
            response.items = rows.map { row in
                var wire = Coalition_Ops_V1_ItemSales()
                wire.itemID = row.item
                if let item = ItemID(row.item).flatMap(program.catalog.item) {
                    wire.name = item.name
                    wire.kind = item.kind.rawValue
                    wire.sponsor = item.sponsor.merchant?.rawValue ?? "platform"
                }
                wire.orders = row.orders
                wire.units = row.units
                wire.unitsCancelled = row.unitsCancelled
                wire.points = row.points
                wire.moneyMinor = row.money
                wire.vouchersUsed = row.vouchersUsed
                wire.vouchersOpen = row.vouchersOpen
                return wire
            }
            return response
        }
    }
}

extension MallLedger {
    /// The order an API request names: INVALID_ARGUMENT for a malformed id, NOT_FOUND
    /// `UNKNOWN_ORDER` for one the ledger does not hold (the member and Ops APIs alike).
    func existingOrder(_ id: String) async throws -> MallOrder {
        guard TransactionID(id) != nil else {
            throw ServiceError.invalid("order_id", "must be a 26-character order id")
        }
        guard let order = try await order(id) else {
            throw ServiceError(.notFound, "order_id: no order '\(id)'", reason: "UNKNOWN_ORDER")
        }
        return order
    }
}
