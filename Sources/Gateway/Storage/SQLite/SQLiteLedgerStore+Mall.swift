import Core
import Foundation
import GRDB
import NodeSupport
import Wire

/// The points mall's orders on SQLite: each order is a job of the orders' group committer (the one
/// writer, so the stock read and the sale are one step); orders arriving together share one
/// transaction, in a queue apart from the sites' pushes.
extension SQLiteLedgerStore {
    package func placeOrder(_ command: OrderCommand, vouchers issuer: VoucherIssuer?) async throws -> (
        order: MallOrder, balance: Points
    ) {
        let now = clock.now()
        let catalogue = programs
        return try await write { db in
            let writer = LedgerWriter(db: db)
            if let first = try Self.order(db, channel: command.channel, requestID: command.requestID.rawValue) {
                guard first.answers(command) else {
                    throw MallRequestConflict(requestID: command.requestID.rawValue, orderID: first.orderID)
                }
                return (try Self.withVouchers(db, first), try writer.balance(.member(first.member)))
            }
            let instant = try writer.postingInstant(now)
            guard let item = catalogue.active(at: instant)?.program.catalog.item(command.item) else {
                throw OrderRefusal.unknownItem(command.item.rawValue)
            }
            if item.kind.issuesVoucher, issuer == nil { throw MallVouchersDisabled() }
            var keys = PostingKeys()
            keys.members = [command.member]
            keys.debitedMembers = keys.members
            let view = try SQLitePosting.load(db, keys: keys, catalogue: catalogue)
            var engine = PostingEngine(
                view: view, catalogue: catalogue, site: SiteID(unchecked: "gateway"), now: instant,
                programGraceMilliseconds: 0, clockSkewMaxMilliseconds: 0)
            guard let member = engine.orderingMember(command.member)?.member else { throw OrderRefusal.unknownMember }
            let stock = try Self.stock(db, item.id)
            let holds =
                try Int64.fetchOne(
                    db.cachedStatement(
                        sql:
                            "SELECT COALESCE(SUM(quantity), 0) FROM mall_orders WHERE member_id = ? AND item_id = ? AND status = 'placed'"
                    ), arguments: [member.description, item.id.rawValue]) ?? 0
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: instant, using: &generator).description
            let booked = try engine.order(
                member: command.member, item: item, quantity: command.quantity,
                stock: (stock.sold, stock.adjusted), memberHolds: holds, transactionID: transaction,
                requestID: command.requestID.rawValue,
                detail: "order of \(command.quantity) × \(item.id) by \(command.channel)"
            ).get()
            try SQLitePosting.apply(db, engine.finish(), outbox: [:], now: instant)
            var order = MallOrder(
                orderID: transaction, position: booked.position, channel: command.channel,
                requestID: command.requestID.rawValue,
                requestedMember: command.member, member: booked.member, item: item.id, kind: item.kind,
                quantity: command.quantity, points: booked.points,
                money: OrderRules.cost(item, quantity: command.quantity)?.money ?? .zero, status: .placed,
                placedAt: instant, cancelledAt: nil, cancelTransactionID: nil)
            try db.execute(
                sql: """
                    INSERT INTO mall_orders (order_id, channel, request_id, requested_member_id, member_id, item_id,
                        item_kind, quantity, points, money_minor, status, placed_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'placed', ?)
                    """,
                arguments: [
                    order.orderID, order.channel, order.requestID, order.requestedMember.description,
                    order.member.description, order.item.rawValue, order.kind.rawValue, order.quantity,
                    order.points.value, order.money.minorUnits, instant.milliseconds,
                ])
            try Self.changeSold(db, item.id, by: command.quantity)
            if let issuer {
                let ids = (0..<command.quantity).map { _ in TransactionID(time: instant, using: &generator) }
                for claim in VoucherRules.issue(item, at: instant, keyID: issuer.keyID, ids: ids) {
                    let voucher = IssuedVoucher(
                        voucherID: claim.voucherID.description, code: try issuer.sign(claim).text,
                        validUntil: claim.validUntil, status: .issued)
                    try db.execute(
                        sql: """
                            INSERT INTO vouchers (voucher_id, order_id, item_id, member_id, key_id, code, valid_until_ms,
                                status, changed_position)
                            VALUES (?, ?, ?, ?, ?, ?, ?, 'issued', ?)
                            """,
                        arguments: [
                            voucher.voucherID, order.orderID, item.id.rawValue, order.member.description,
                            Int64(claim.keyID), voucher.code, voucher.validUntil.milliseconds, order.position,
                        ])
                    order.vouchers.append(voucher)
                }
            }
            return (order, try writer.balance(.member(order.member)))
        }
    }

    package func cancelOrder(_ orderID: String) async throws -> (order: MallOrder, balance: Points) {
        let now = clock.now()
        let catalogue = programs
        return try await write { db in
            let writer = LedgerWriter(db: db)
            guard let found = try Self.order(db, id: orderID) else { throw MallCancelRefusal.unknownOrder(orderID) }
            var order = try Self.withVouchers(db, found)
            guard order.status == .placed else { return (order, try writer.balance(.member(order.member))) }
            guard order.kind.issuesVoucher else { throw MallCancelRefusal.notCancellable(order.kind) }
            if let used = order.vouchers.first(where: { $0.status == .used }) {
                throw MallCancelRefusal.voucherUsed(used.voucherID)
            }
            let instant = try writer.postingInstant(now)
            var keys = PostingKeys()
            keys.members = [order.member]
            keys.originals = [order.orderID]
            let view = try SQLitePosting.load(db, keys: keys, catalogue: catalogue)
            var engine = PostingEngine(
                view: view, catalogue: catalogue, site: SiteID(unchecked: "gateway"), now: instant,
                programGraceMilliseconds: 0, clockSkewMaxMilliseconds: 0)
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: instant, using: &generator).description
            let position: Int64
            switch engine.cancelOrder(
                orderTransaction: order.orderID, transactionID: transaction, requestID: order.requestID,
                detail: "cancel of order \(order.orderID)")
            {
            case .success(let cancelled): position = cancelled.position
            case .failure(let refusal):
                preconditionFailure(
                    "order \(order.orderID) is placed but its transaction cannot be cancelled: \(refusal)")
            }
            try SQLitePosting.apply(db, engine.finish(), outbox: [:], now: instant)
            try db.execute(
                sql:
                    "UPDATE mall_orders SET status = 'cancelled', cancelled_at_ms = ?, cancel_transaction_id = ? WHERE order_id = ?",
                arguments: [instant.milliseconds, transaction, order.orderID])
            try Self.changeSold(db, order.item, by: -order.quantity)
            try db.execute(
                sql: "UPDATE vouchers SET status = 'cancelled', changed_position = ? WHERE order_id = ?",
                arguments: [position, order.orderID])
            for index in order.vouchers.indices { order.vouchers[index].status = .cancelled }
            order.status = .cancelled
            order.cancelledAt = instant
            order.cancelTransactionID = transaction
            return (order, try writer.balance(.member(order.member)))
        }
    }

    /// Runs an order's work in the order writer's next group transaction.
    func write<Result: Sendable>(_ work: @escaping @Sendable (Database) throws -> Result) async throws
        -> Result
    {
        do {
            return try await orderWriter.submit(work)
        } catch let refusal as GroupCommitRefusal {
            throw MallBusy("\(refusal)")
        }
    }

    package func order(channel: String, requestID: RequestID) async throws -> MallOrder? {
        try await database.pool.read { db in
            try Self.order(db, channel: channel, requestID: requestID.rawValue).map { try Self.withVouchers(db, $0) }
        }
    }

    package func order(_ orderID: String) async throws -> MallOrder? {
        try await database.pool.read { db in try Self.order(db, id: orderID).map { try Self.withVouchers(db, $0) } }
    }

    package func orders(member: MemberID, before: Int64?, limit: Int) async throws -> [MallOrder] {
        try await database.pool.read { db in
            try Row.fetchAll(
                db,
                sql: Self.selectOrders + " WHERE o.member_id = ? AND t.position < ? ORDER BY t.position DESC LIMIT ?",
                arguments: [member.description, before ?? Int64.max, limit]
            ).map(Self.mallOrder).map { try Self.withVouchers(db, $0) }
        }
    }

    package func stock(_ items: [ItemID]) async throws -> [ItemID: MallStock] {
        try await database.pool.read { db in
            var result: [ItemID: MallStock] = [:]
            for item in items { result[item] = try Self.stock(db, item) }
            return result
        }
    }

    package func registerVoucherKey(id: UInt8, publicKey: [UInt8]) async throws {
        let now = clock.now()
        try await database.pool.write { db in
            if let known = try Data.fetchOne(
                db, sql: "SELECT public_key FROM voucher_keys WHERE key_id = ?", arguments: [Int64(id)])
            {
                guard Array(known) == publicKey else { throw VoucherKeyError.idTaken(id) }
                return
            }
            try db.execute(
                sql: "INSERT INTO voucher_keys (key_id, public_key, registered_at_ms) VALUES (?, ?, ?)",
                arguments: [Int64(id), Data(publicKey), now.milliseconds])
        }
    }

    package func voucherKeys() async throws -> [UInt8: [UInt8]] {
        try await database.pool.read { db in
            var keys: [UInt8: [UInt8]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT key_id, public_key FROM voucher_keys") {
                keys[UInt8(truncatingIfNeeded: row["key_id"] as Int64)] = Array(row["public_key"] as Data)
            }
            return keys
        }
    }

    // MARK: Rows

    static func stock(_ db: Database, _ item: ItemID) throws -> MallStock {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT sold, adjusted FROM mall_stock WHERE item_id = ?"),
                arguments: [item.rawValue])
        else { return MallStock(sold: 0, adjusted: 0) }
        return MallStock(sold: row["sold"], adjusted: row["adjusted"])
    }

    private static func changeSold(_ db: Database, _ item: ItemID, by units: Int64) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO mall_stock (item_id, sold, adjusted) VALUES (?, ?, 0)
                ON CONFLICT (item_id) DO UPDATE SET sold = sold + excluded.sold
                """
        ).execute(arguments: [item.rawValue, units])
    }

    private static func order(_ db: Database, channel: String, requestID: String) throws -> MallOrder? {
        try Row.fetchOne(
            db.cachedStatement(sql: selectOrders + " WHERE o.channel = ? AND o.request_id = ?"),
            arguments: [channel, requestID]
        ).map(mallOrder)
    }

    private static func order(_ db: Database, id: String) throws -> MallOrder? {
        try Row.fetchOne(db.cachedStatement(sql: selectOrders + " WHERE o.order_id = ?"), arguments: [id]).map(
            mallOrder)
    }

    /// The order with the vouchers it issued.
    private static func withVouchers(_ db: Database, _ order: MallOrder) throws -> MallOrder {
        var order = order
        order.vouchers = try Row.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT voucher_id, code, valid_until_ms, status FROM vouchers WHERE order_id = ? ORDER BY voucher_id"
            ),
            arguments: [order.orderID]
        ).map { row in
            IssuedVoucher(
                voucherID: row["voucher_id"], code: row["code"],
                validUntil: Timestamp(milliseconds: row["valid_until_ms"]),
                status: VoucherStatus(rawValue: row["status"]) ?? .issued)
        }
        return order
    }

    /// Orders with their ledger positions.
    private static let selectOrders =
        "SELECT o.*, t.position FROM mall_orders o JOIN transactions t ON t.transaction_id = o.order_id"

    private static func mallOrder(_ row: Row) -> MallOrder {
        let cancelledAt: Int64? = row["cancelled_at_ms"]
        return MallOrder(
            orderID: row["order_id"], position: row["position"], channel: row["channel"], requestID: row["request_id"],
            requestedMember: MemberID(row["requested_member_id"]) ?? MemberID(value: 0),
            member: MemberID(row["member_id"]) ?? MemberID(value: 0), item: ItemID(unchecked: row["item_id"]),
            kind: ItemKind(rawValue: row["item_kind"]) ?? .goods, quantity: row["quantity"],
            points: Points(row["points"]), money: Money(minorUnits: row["money_minor"]),
            status: MallOrder.Status(rawValue: row["status"]) ?? .placed,
            placedAt: Timestamp(milliseconds: row["placed_at_ms"]),
            cancelledAt: cancelledAt.map(Timestamp.init(milliseconds:)),
            cancelTransactionID: row["cancel_transaction_id"])
    }
}
