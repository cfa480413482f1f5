import Core
import Foundation
import GRDB

/// Operators' view of the points mall on SQLite: stock adjustments (in turn with orders, on the
/// order writer) and the voucher list.
extension SQLiteLedgerStore {
    package func adjustStock(_ item: CatalogItem, units: Int64, reason: String, by operatorName: String) async throws
        -> MallStock
    {
        let now = clock.now()
        return try await write { db in
            var stock = try Self.stock(db, item.id)
            let left = item.stock + stock.adjusted - stock.sold
            guard left + units >= 0 else { throw MallStockRefusal(item: item.id.rawValue, left: left, units: units) }
            try db.execute(
                sql: """
                    INSERT INTO mall_stock (item_id, sold, adjusted) VALUES (?, 0, ?)
                    ON CONFLICT (item_id) DO UPDATE SET adjusted = adjusted + excluded.adjusted
                    """,
                arguments: [item.id.rawValue, units])
            try db.execute(
                sql: """
                    INSERT INTO mall_stock_adjustments (adjusted_at_ms, item_id, units, reason, operator_name)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [now.milliseconds, item.id.rawValue, units, reason, operatorName])
            stock.adjusted += units
            return stock
        }
    }

    package func vouchers(_ filter: VoucherFilter, before: String?, limit: Int) async throws -> [VoucherEntry] {
        try await database.pool.read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let member = filter.member {
                conditions.append("member_id = ?")
                _ = arguments.append(contentsOf: [member.description])
            }
            if let item = filter.item {
                conditions.append("item_id = ?")
                _ = arguments.append(contentsOf: [item.rawValue])
            }
            if let status = filter.status {
                conditions.append("status = ?")
                _ = arguments.append(contentsOf: [status.rawValue])
            }
            if let site = filter.usedSite {
                conditions.append("used_site = ?")
                _ = arguments.append(contentsOf: [site.rawValue])
            }
            if let before {
                conditions.append("voucher_id < ?")
                _ = arguments.append(contentsOf: [before])
            }
            _ = arguments.append(contentsOf: [limit])
            let condition = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(
                db, sql: VoucherEntry.select + condition + " ORDER BY voucher_id DESC LIMIT ?", arguments: arguments
            ).map { row in
                VoucherEntry(
                    voucherID: row["voucher_id"], orderID: row["order_id"], item: row["item_id"],
                    member: row["member_id"], status: row["status"],
                    validUntil: Timestamp(milliseconds: row["valid_until_ms"]),
                    usedTransactionID: row["used_transaction_id"], usedSite: row["used_site"],
                    usedMerchant: row["used_merchant"],
                    usedAt: (row["used_at_ms"] as Int64?).map(Timestamp.init(milliseconds:)), code: row["code"],
                    source: row["source"])
            }
        }
    }

    package func voucherUses(order orderID: String) async throws -> [VoucherUseEntry] {
        try await database.pool.read { db in
            try Row.fetchAll(db, sql: VoucherUseEntry.select, arguments: [orderID]).map { row in
                VoucherUseEntry(
                    voucherID: row["voucher_id"], transactionID: row["transaction_id"], site: row["site_id"] ?? "",
                    merchant: row["merchant_id"] ?? "", usedAt: Timestamp(milliseconds: row["occurred_at_ms"]),
                    conflict: row["conflict"])
            }
        }
    }

    package func sales(from: Timestamp, to: Timestamp) async throws -> [ItemSalesEntry] {
        try await database.pool.read { db in
            try Row.fetchAll(db, sql: ItemSalesEntry.select, arguments: [from.milliseconds, to.milliseconds]).map {
                row in
                ItemSalesEntry(
                    item: row["item_id"], orders: row["orders"], units: row["units"],
                    unitsCancelled: row["units_cancelled"], points: row["points"], money: row["money"],
                    vouchersUsed: row["used_count"], vouchersOpen: row["open_count"])
            }
        }
    }
}
