import Core
import Foundation
import NodeSupport
import PostgresNIO
import Wire

/// The points mall's orders on PostgreSQL. An order locks its member (as every posting does), then
/// its item's stock row (`FOR UPDATE`), in that order everywhere: concurrent orders of one item
/// queue on the row, on any gateway, and each sees the units the one before it sold.
extension PostgresLedgerStore {
    package func placeOrder(_ command: OrderCommand, vouchers issuer: VoucherIssuer?) async throws -> (
        order: MallOrder, balance: Points
    ) {
        let now = clockNow
        return try await ordering("placing an order") { [logger] connection in
            let reads = PostgresLedgerReads(connection: connection, logger: logger)
            let target = try await self.lockResolved(command.member, connection)
            if let first = try await Self.order(
                connection, "o.channel = \(command.channel) AND o.request_id = \(command.requestID.rawValue)", logger)
            {
                guard first.answers(command) else {
                    throw MallRequestConflict(requestID: command.requestID.rawValue, orderID: first.orderID)
                }
                return (
                    try await Self.withVouchers(connection, first, logger),
                    try await reads.balance(.member(first.member))
                )
            }
            let catalogue = try await self.currentPrograms(connection)
            guard let item = catalogue.active(at: now)?.program.catalog.item(command.item) else {
                throw OrderRefusal.unknownItem(command.item.rawValue)
            }
            if item.kind.issuesVoucher, issuer == nil { throw MallVouchersDisabled() }
            guard let member = target else { throw OrderRefusal.unknownMember }
            try await connection.run(
                """
                INSERT INTO mall_stock (item_id, sold, adjusted) VALUES (\(item.id.rawValue), 0, 0)
                ON CONFLICT (item_id) DO NOTHING
                """, logger)
            let stock = try await Self.lockStock(connection, item.id, logger)
            // Closed or sold out: no need to read the member's view (the engine would refuse the same).
            if let refusal = OrderRules.itemRefusal(
                item, quantity: command.quantity, sold: stock.sold, adjusted: stock.adjusted, now: now)
            {
                throw refusal
            }
            let holds =
                try await connection.value(
                    """
                    SELECT COALESCE(SUM(quantity), 0)::BIGINT FROM mall_orders
                    WHERE member_id = \(member.description) AND item_id = \(item.id.rawValue) AND status = 'placed'
                    """, as: Int64.self, logger) ?? 0
            var keys = PostingKeys()
            keys.members = [member]
            keys.debitedMembers = keys.members
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator).description
            let (booked, instant) = try await self.postOwn(connection, keys: keys, count: 8, now: now) { engine in
                (
                    // The member the id resolved to (its merge record is not in the view).
                    try engine.order(
                        member: member, item: item, quantity: command.quantity,
                        stock: (stock.sold, stock.adjusted), memberHolds: holds, transactionID: transaction,
                        requestID: command.requestID.rawValue,
                        detail: "order of \(command.quantity) × \(item.id) by \(command.channel)"
                    ).get(), engine.now
                )
            }
            var order = MallOrder(
                orderID: transaction, position: booked.position, channel: command.channel,
                requestID: command.requestID.rawValue,
                requestedMember: command.member, member: booked.member, item: item.id, kind: item.kind,
                quantity: command.quantity, points: booked.points,
                money: OrderRules.cost(item, quantity: command.quantity)?.money ?? .zero, status: .placed,
                placedAt: instant, cancelledAt: nil, cancelTransactionID: nil)
            try await connection.run(
                """
                INSERT INTO mall_orders (order_id, channel, request_id, requested_member_id, member_id, item_id,
                    item_kind, quantity, points, money_minor, status, placed_at_ms)
                VALUES (\(order.orderID), \(order.channel), \(order.requestID), \(order.requestedMember.description),
                    \(order.member.description), \(order.item.rawValue), \(order.kind.rawValue), \(order.quantity),
                    \(order.points.value), \(order.money.minorUnits), 'placed', \(instant.milliseconds))
                """, logger)
            try await connection.run(
                "UPDATE mall_stock SET sold = sold + \(command.quantity) WHERE item_id = \(item.id.rawValue)", logger)
            if let issuer {
                let ids = (0..<command.quantity).map { _ in TransactionID(time: instant, using: &generator) }
                for claim in VoucherRules.issue(item, at: instant, keyID: issuer.keyID, ids: ids) {
                    let voucher = IssuedVoucher(
                        voucherID: claim.voucherID.description, code: try issuer.sign(claim).text,
                        validUntil: claim.validUntil, status: .issued)
                    try await connection.run(
                        """
                        INSERT INTO vouchers (voucher_id, order_id, item_id, member_id, key_id, code, valid_until_ms,
                            status, changed_position)
                        VALUES (\(voucher.voucherID), \(order.orderID), \(item.id.rawValue), \(order.member.description),
                            \(Int64(claim.keyID)), \(voucher.code), \(voucher.validUntil.milliseconds), 'issued',
                            \(order.position))
                        """, logger)
                    order.vouchers.append(voucher)
                }
            }
            return (order, try await reads.balance(.member(order.member)))
        }
    }

    package func cancelOrder(_ orderID: String) async throws -> (order: MallOrder, balance: Points) {
        let now = clockNow
        return try await ordering("cancelling an order") { [logger] connection in
            let reads = PostgresLedgerReads(connection: connection, logger: logger)
            guard let found = try await Self.order(connection, "o.order_id = \(orderID)", logger) else {
                throw MallCancelRefusal.unknownOrder(orderID)
            }
            _ = try await self.lockResolved(found.member, connection)
            // Read again under the member's lock: another gateway may have cancelled it meanwhile.
            guard let current = try await Self.order(connection, "o.order_id = \(orderID)", logger) else {
                throw MallCancelRefusal.unknownOrder(orderID)
            }
            // Its vouchers locked before they are read: a gateway posting a use of one waits, or is
            // waited for and its use seen (a used voucher's order is not cancelled).
            try await connection.run(
                "SELECT voucher_id FROM vouchers WHERE order_id = \(orderID) ORDER BY voucher_id FOR UPDATE", logger)
            var order = try await Self.withVouchers(connection, current, logger)
            guard order.status == .placed else { return (order, try await reads.balance(.member(order.member))) }
            guard order.kind.issuesVoucher else { throw MallCancelRefusal.notCancellable(order.kind) }
            if let used = order.vouchers.first(where: { $0.status == .used }) {
                throw MallCancelRefusal.voucherUsed(used.voucherID)
            }
            _ = try await Self.lockStock(connection, order.item, logger)
            var keys = PostingKeys()
            keys.members = [order.member]
            keys.originals = [order.orderID]
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator).description
            let (instant, position) = try await self.postOwn(connection, keys: keys, count: 8, now: now) { engine in
                switch engine.cancelOrder(
                    orderTransaction: order.orderID, transactionID: transaction, requestID: order.requestID,
                    detail: "cancel of order \(order.orderID)")
                {
                case .success(let cancelled): return (engine.now, cancelled.position)
                case .failure(let refusal):
                    preconditionFailure(
                        "order \(order.orderID) is placed but its transaction cannot be cancelled: \(refusal)")
                }
            }
            try await connection.run(
                """
                UPDATE mall_orders SET status = 'cancelled', cancelled_at_ms = \(instant.milliseconds),
                    cancel_transaction_id = \(transaction)
                WHERE order_id = \(order.orderID)
                """, logger)
            try await connection.run(
                "UPDATE mall_stock SET sold = sold - \(order.quantity) WHERE item_id = \(order.item.rawValue)", logger)
            try await connection.run(
                "UPDATE vouchers SET status = 'cancelled', changed_position = \(position) WHERE order_id = \(order.orderID)",
                logger)
            for index in order.vouchers.indices { order.vouchers[index].status = .cancelled }
            order.status = .cancelled
            order.cancelledAt = instant
            order.cancelTransactionID = transaction
            return (order, try await reads.balance(.member(order.member)))
        }
    }

    package func order(channel: String, requestID: RequestID) async throws -> MallOrder? {
        try await reading("reading an order") { connection in
            guard
                let order = try await Self.order(
                    connection, "o.channel = \(channel) AND o.request_id = \(requestID.rawValue)", self.logger)
            else { return nil }
            return try await Self.withVouchers(connection, order, self.logger)
        }
    }

    package func order(_ orderID: String) async throws -> MallOrder? {
        try await reading("reading an order") { connection in
            guard let order = try await Self.order(connection, "o.order_id = \(orderID)", self.logger) else {
                return nil
            }
            return try await Self.withVouchers(connection, order, self.logger)
        }
    }

    package func orders(member: MemberID, before: Int64?, limit: Int) async throws -> [MallOrder] {
        try await reading("reading orders") { connection in
            var query = PostgresQuery(unsafeSQL: Self.selectOrders)
            let condition: PostgresQuery =
                " WHERE o.member_id = \(member.description) AND t.position < \(before ?? Int64.max) ORDER BY t.position DESC LIMIT \(Int64(limit))"
            query.sql += condition.sql
            query.binds = condition.binds
            var orders: [MallOrder] = []
            for order in try await connection.rows(query, self.logger).map(Self.mallOrder) {
                orders.append(try await Self.withVouchers(connection, order, self.logger))
            }
            return orders
        }
    }

    package func stock(_ items: [ItemID]) async throws -> [ItemID: MallStock] {
        try await reading("reading stock") { connection in
            var result: [ItemID: MallStock] = [:]
            for row in try await connection.rows(
                "SELECT item_id, sold, adjusted FROM mall_stock WHERE item_id = ANY(\(items.map(\.rawValue)))",
                self.logger)
            {
                result[ItemID(unchecked: try row.text("item_id"))] = MallStock(
                    sold: try row.int("sold"), adjusted: try row.int("adjusted"))
            }
            return result
        }
    }

    package func registerVoucherKey(id: UInt8, publicKey: [UInt8]) async throws {
        let now = clockNow
        try await transaction("registering the voucher key") { [logger] connection in
            try await connection.run(
                """
                INSERT INTO voucher_keys (key_id, public_key, registered_at_ms)
                VALUES (\(Int64(id)), \(Data(publicKey)), \(now.milliseconds)) ON CONFLICT (key_id) DO NOTHING
                """, logger)
            let known = try await connection.rows(
                "SELECT public_key FROM voucher_keys WHERE key_id = \(Int64(id))", logger
            ).first.map { try $0["public_key"].decode(Data.self) }
            guard known.map(Array.init) == publicKey else { throw VoucherKeyError.idTaken(id) }
        }
    }

    package func voucherKeys() async throws -> [UInt8: [UInt8]] {
        try await reading("reading the voucher keys") { connection in
            var keys: [UInt8: [UInt8]] = [:]
            for row in try await connection.rows("SELECT key_id, public_key FROM voucher_keys", self.logger) {
                keys[UInt8(truncatingIfNeeded: try row.int("key_id"))] = Array(try row["public_key"].decode(Data.self))
            }
            return keys
        }
    }

    // MARK: Rows

    /// Runs an order's transaction in its turn at the gate (`order_transactions_max`).
    func ordering<Result: Sendable>(
        _ doing: String, _ body: @escaping (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await orderGate.withPermit(waiting: .milliseconds(limits.orderWaitMilliseconds)) {
                try await transaction(doing, body)
            }
        } catch let refusal as AsyncGateRefusal {
            throw MallBusy("\(refusal)")
        }
    }

    func reading<Result: Sendable>(
        _ doing: String, _ body: @escaping (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await guarded(doing) { try await client.leased(waiting: databaseWait, body) }
    }

    static func lockStock(_ connection: PostgresConnection, _ item: ItemID, _ logger: Logger) async throws
        -> MallStock
    {
        guard
            let row = try await connection.rows(
                "SELECT sold, adjusted FROM mall_stock WHERE item_id = \(item.rawValue) FOR UPDATE", logger
            ).first
        else { return MallStock(sold: 0, adjusted: 0) }
        return MallStock(sold: try row.int("sold"), adjusted: try row.int("adjusted"))
    }

    private static func order(_ connection: PostgresConnection, _ condition: PostgresQuery, _ logger: Logger)
        async throws -> MallOrder?
    {
        var query = PostgresQuery(unsafeSQL: selectOrders + " WHERE ")
        query.sql += condition.sql
        query.binds = condition.binds
        return try await connection.rows(query, logger).first.map(mallOrder)
    }

    /// The order with the vouchers it issued.
    private static func withVouchers(_ connection: PostgresConnection, _ order: MallOrder, _ logger: Logger)
        async throws -> MallOrder
    {
        var order = order
        order.vouchers = try await connection.rows(
            """
            SELECT voucher_id, code, valid_until_ms, status FROM vouchers WHERE order_id = \(order.orderID)
            ORDER BY voucher_id
            """, logger
        ).map { row in
            IssuedVoucher(
                voucherID: try row.text("voucher_id"), code: try row.text("code"),
                validUntil: Timestamp(milliseconds: try row.int("valid_until_ms")),
                status: VoucherStatus(rawValue: try row.text("status")) ?? .issued)
        }
        return order
    }

    /// Orders with their ledger positions.
    private static let selectOrders =
        "SELECT o.*, t.position FROM mall_orders o JOIN transactions t ON t.transaction_id = o.order_id"

    private static func mallOrder(_ row: PostgresRandomAccessRow) throws -> MallOrder {
        MallOrder(
            orderID: try row.text("order_id"), position: try row.int("position"), channel: try row.text("channel"),
            requestID: try row.text("request_id"),
            requestedMember: MemberID(try row.text("requested_member_id")) ?? MemberID(value: 0),
            member: MemberID(try row.text("member_id")) ?? MemberID(value: 0),
            item: ItemID(unchecked: try row.text("item_id")),
            kind: ItemKind(rawValue: try row.text("item_kind")) ?? .goods, quantity: try row.int("quantity"),
            points: Points(try row.int("points")), money: Money(minorUnits: try row.int("money_minor")),
            status: MallOrder.Status(rawValue: try row.text("status")) ?? .placed,
            placedAt: Timestamp(milliseconds: try row.int("placed_at_ms")),
            cancelledAt: try row.intOrNil("cancelled_at_ms").map(Timestamp.init(milliseconds:)),
            cancelTransactionID: try row.textOrNil("cancel_transaction_id"))
    }
}
