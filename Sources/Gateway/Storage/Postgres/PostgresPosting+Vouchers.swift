import Core
import Logging
import PostgresNIO

/// Vouchers honoured at tills, as a batch's posting reads and writes them.
extension PostgresPosting {
    /// The vouchers named by the batch's voucher uses, locked (in voucher id order) until the
    /// batch commits: two gateways posting uses of one voucher take turns, and the second sees it
    /// used.
    static func loadVouchers(
        _ connection: PostgresConnection, ids: Set<String>, into view: inout PostingView, _ logger: Logger
    ) async throws {
        guard !ids.isEmpty else { return }
        for row in try await connection.rows(
            """
            SELECT v.voucher_id, v.item_id, v.member_id, v.valid_until_ms, v.status, COALESCE(o.points / o.quantity, -1) AS unit_points
            FROM vouchers v LEFT JOIN mall_orders o ON o.order_id = v.order_id
            WHERE v.voucher_id = ANY(\(ids.sorted())) ORDER BY v.voucher_id FOR UPDATE OF v
            """, logger)
        {
            guard
                let record = SQLitePosting.voucherRecord(
                    id: try row.text("voucher_id"), item: try row.text("item_id"), member: try row.text("member_id"),
                    validUntil: try row.int("valid_until_ms"), status: try row.text("status"),
                    points: try row.int("unit_points"))
            else { preconditionFailure("a stored voucher is malformed") }
            view.vouchers[record.voucherID] = record
        }
    }

    /// Marks the vouchers the batch used for the first time, at the use's position.
    static func applyVoucherUses(_ connection: PostgresConnection, _ uses: [VoucherUseEffect], _ logger: Logger)
        async throws
    {
        for use in uses {
            try await connection.run(
                """
                UPDATE vouchers SET status = 'used', changed_position = \(use.position),
                    used_transaction_id = \(use.transactionID), used_site = \(use.site.rawValue),
                    used_merchant = \(use.merchant.rawValue), used_at_ms = \(use.usedAt.milliseconds)
                WHERE voucher_id = \(use.voucherID) AND status = 'issued'
                """, logger)
        }
    }
}
