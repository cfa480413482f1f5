import Core
import Foundation
import Logging
import PostgresNIO

/// Operators' view of the points mall on PostgreSQL: stock adjustments (in turn with orders: the
/// item's stock row locked, as an order locks it) and the voucher list.
extension PostgresLedgerStore {
    package func adjustStock(_ item: CatalogItem, units: Int64, reason: String, by operatorName: String) async throws
        -> MallStock
    {
        let now = clockNow
        return try await ordering("adjusting stock") { [logger] connection in
            try await connection.run(
                """
                INSERT INTO mall_stock (item_id, sold, adjusted) VALUES (\(item.id.rawValue), 0, 0)
                ON CONFLICT (item_id) DO NOTHING
                """, logger)
            var stock = try await Self.lockStock(connection, item.id, logger)
            let left = item.stock + stock.adjusted - stock.sold
            guard left + units >= 0 else { throw MallStockRefusal(item: item.id.rawValue, left: left, units: units) }
            try await connection.run(
                "UPDATE mall_stock SET adjusted = adjusted + \(units) WHERE item_id = \(item.id.rawValue)", logger)
            try await connection.run(
                """
                INSERT INTO mall_stock_adjustments (adjusted_at_ms, item_id, units, reason, operator_name)
                VALUES (\(now.milliseconds), \(item.id.rawValue), \(units), \(reason), \(operatorName))
                """, logger)
            stock.adjusted += units
            return stock
        }
    }

    package func vouchers(_ filter: VoucherFilter, before: String?, limit: Int) async throws -> [VoucherEntry] {
        try await reading("listing vouchers") { connection in
            let query = PostgresQuery(
                unsafeSQL: VoucherEntry.select
                    + """
                     WHERE ($1::TEXT IS NULL OR member_id = $1) AND ($2::TEXT IS NULL OR item_id = $2)
                      AND ($3::TEXT IS NULL OR status = $3) AND ($4::TEXT IS NULL OR used_site = $4)
                      AND ($5::TEXT IS NULL OR voucher_id < $5)
                    ORDER BY voucher_id DESC LIMIT $6
                    """,
                binds: Self.voucherBinds(filter, before: before, limit: limit))
            return try await connection.rows(query, self.logger).map { row in
                VoucherEntry(
                    voucherID: try row.text("voucher_id"), orderID: try row.text("order_id"),
                    item: try row.text("item_id"), member: try row.text("member_id"), status: try row.text("status"),
                    validUntil: Timestamp(milliseconds: try row.int("valid_until_ms")),
                    usedTransactionID: try row.textOrNil("used_transaction_id"),
                    usedSite: try row.textOrNil("used_site"),
                    usedMerchant: try row.textOrNil("used_merchant"),
                    usedAt: try row.intOrNil("used_at_ms").map(Timestamp.init(milliseconds:)),
                    code: try row.text("code"), source: try row.text("source"))
            }
        }
    }

    private static func voucherBinds(_ filter: VoucherFilter, before: String?, limit: Int) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(filter.member?.description)
        binds.append(filter.item?.rawValue)
        binds.append(filter.status?.rawValue)
        binds.append(filter.usedSite?.rawValue)
        binds.append(before)
        binds.append(Int64(limit))
        return binds
    }

    package func voucherUses(order orderID: String) async throws -> [VoucherUseEntry] {
        try await reading("reading an order's voucher uses") { connection in
            var binds = PostgresBindings()
            binds.append(orderID)
            return try await connection.rows(
                PostgresQuery(unsafeSQL: VoucherUseEntry.select, binds: binds), self.logger
            )
            .map { row in
                VoucherUseEntry(
                    voucherID: try row.text("voucher_id"), transactionID: try row.text("transaction_id"),
                    site: try row.textOrNil("site_id") ?? "", merchant: try row.textOrNil("merchant_id") ?? "",
                    usedAt: Timestamp(milliseconds: try row.int("occurred_at_ms")),
                    conflict: try row.textOrNil("conflict"))
            }
        }
    }

    package func sales(from: Timestamp, to: Timestamp) async throws -> [ItemSalesEntry] {
        try await reading("reporting sales") { connection in
            var binds = PostgresBindings()
            binds.append(from.milliseconds)
            binds.append(to.milliseconds)
            return try await connection.rows(PostgresQuery(unsafeSQL: ItemSalesEntry.select, binds: binds), self.logger)
                .map { row in
                    ItemSalesEntry(
                        item: try row.text("item_id"), orders: try row.int("orders"), units: try row.int("units"),
                        unitsCancelled: try row.int("units_cancelled"), points: try row.int("points"),
                        money: try row.int("money"), vouchersUsed: try row.int("used_count"),
                        vouchersOpen: try row.int("open_count"))
                }
        }
    }
}
