import Core
import GRPCCore
import Logging
import Wire

/// The points mall's orders: placed exactly once per (channel, request id), cancelled while the
/// voucher is unused.
extension MemberService {
    package func placeOrder(
        request: ServerRequest<Coalition_Member_V1_PlaceOrderRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_PlaceOrderResponse> {
        try await handle(request, context) { channel, message in
            guard let requestID = RequestID(message.requestID) else {
                throw ServiceError.invalid("request_id", RequestID.rule)
            }
            guard let member = MemberID(message.memberID) else {
                throw ServiceError.invalid("member_id", "must be a 26-character member id")
            }
            guard let item = ItemID(message.itemID) else { throw ServiceError.invalid("item_id", Slug.rule) }
            let quantity = message.quantity == 0 ? 1 : message.quantity
            guard (1...OrderRules.quantityMax).contains(quantity) else {
                throw ServiceError.invalid("quantity", "0 (meaning 1) or 1 to \(OrderRules.quantityMax)")
            }
            let command = OrderCommand(
                channel: channel, requestID: requestID, member: member, item: item, quantity: quantity)
            if let answer = try await refusedBeforeWriting(command) { return answer }
            let (order, balance) = try await store.placeOrder(command, vouchers: vouchers)
            logger.info(
                "order placed",
                metadata: [
                    "order.id": "\(order.orderID)", "member.id": "\(order.member)", "item.id": "\(order.item)",
                    "channel": "\(channel)",
                ])
            var response = Coalition_Member_V1_PlaceOrderResponse()
            response.order = Coalition_Member_V1_Order(order)
            response.balanceAfterPoints = balance.value
            return response
        }
    }

    /// A flash sale's thousands of late orders are answered from one read of the item's counts,
    /// without queueing for the ledger's writer: closed or sold out is refused at once. A retry of
    /// an order that was placed is answered with it (its units are in the counts read first, so
    /// its row is visible when read after them). Nil when the order must go to the ledger.
    private func refusedBeforeWriting(_ command: OrderCommand) async throws -> Coalition_Member_V1_PlaceOrderResponse? {
        let now = store.clockNow
        guard let item = try program(at: now).catalog.item(command.item) else { return nil }
        if item.kind.issuesVoucher, vouchers == nil { throw MallVouchersDisabled() }
        let stock = try await store.stock([item.id])[item.id] ?? MallStock(sold: 0, adjusted: 0)
        guard
            let refusal = OrderRules.itemRefusal(
                item, quantity: command.quantity, sold: stock.sold, adjusted: stock.adjusted, now: now)
        else { return nil }
        guard let first = try await store.order(channel: command.channel, requestID: command.requestID) else {
            throw refusal
        }
        guard first.answers(command) else {
            throw MallRequestConflict(requestID: command.requestID.rawValue, orderID: first.orderID)
        }
        var response = Coalition_Member_V1_PlaceOrderResponse()
        response.order = Coalition_Member_V1_Order(first)
        response.balanceAfterPoints = try await store.memberDetail(first.member)?.balance.value ?? 0
        return response
    }

    package func cancelOrder(
        request: ServerRequest<Coalition_Member_V1_CancelOrderRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_CancelOrderResponse> {
        try await handle(request, context) { channel, message in
            guard TransactionID(message.orderID) != nil else {
                throw ServiceError.invalid("order_id", "must be a 26-character order id")
            }
            let (order, balance) = try await store.cancelOrder(message.orderID)
            logger.info("order cancelled", metadata: ["order.id": "\(order.orderID)", "channel": "\(channel)"])
            var response = Coalition_Member_V1_CancelOrderResponse()
            response.order = Coalition_Member_V1_Order(order)
            response.balanceAfterPoints = balance.value
            return response
        }
    }

    package func getOrder(
        request: ServerRequest<Coalition_Member_V1_GetOrderRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_GetOrderResponse> {
        try await handle(request, context) { _, message in
            let order = try await store.existingOrder(message.orderID)
            var response = Coalition_Member_V1_GetOrderResponse()
            response.order = Coalition_Member_V1_Order(order)
            return response
        }
    }

    package func listOrders(
        request: ServerRequest<Coalition_Member_V1_ListOrdersRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_ListOrdersResponse> {
        try await handle(request, context) { _, message in
            let (detail, _) = try await member(message.memberID)
            let size = try Self.pageSize(message.pageSize)
            let orders = try await store.orders(
                member: detail.id, before: try Self.positionToken(message.pageToken), limit: size + 1)
            var response = Coalition_Member_V1_ListOrdersResponse()
            response.orders = orders.prefix(size).map(Coalition_Member_V1_Order.init)
            if orders.count > size, let last = orders.prefix(size).last {
                response.nextPageToken = String(last.position)
            }
            return response
        }
    }

    package func listVouchers(
        request: ServerRequest<Coalition_Member_V1_ListVouchersRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_ListVouchersResponse> {
        try await handle(request, context) { _, message in
            let (detail, program) = try await member(message.memberID)
            let size = try Self.pageSize(message.pageSize)
            var filter = VoucherFilter(member: detail.id)
            switch message.status {
            case .unspecified: break
            case .issued: filter.status = .issued
            case .used: filter.status = .used
            case .cancelled: filter.status = .cancelled
            case .UNRECOGNIZED(let value): throw ServiceError.invalid("status", "unknown voucher status \(value)")
            }
            let page = try await store.vouchers(
                filter, before: try VoucherFilter.pageStart(message.pageToken), limit: size + 1)
            var response = Coalition_Member_V1_ListVouchersResponse()
            response.vouchers = page.prefix(size).map { entry in
                var wire = Coalition_Member_V1_MemberVoucher()
                wire.voucher = Coalition_Member_V1_Voucher(
                    IssuedVoucher(
                        voucherID: entry.voucherID, code: entry.code, validUntil: entry.validUntil,
                        status: VoucherStatus(rawValue: entry.status) ?? .issued))
                wire.itemID = entry.item
                wire.itemName = ItemID(entry.item).flatMap(program.catalog.item)?.name ?? ""
                wire.source = entry.source
                wire.sourceID = entry.orderID
                return wire
            }
            if page.count > size, let last = response.vouchers.last { response.nextPageToken = last.voucher.voucherID }
            return response
        }
    }
}
