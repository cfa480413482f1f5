import Core
import GRDB

/// Vouchers honoured at tills, as a batch's posting reads and writes them.
extension SQLitePosting {
    /// The vouchers named by the batch's voucher uses, with the points a unit of their order cost
    /// (-1 read as none for a lottery prize's or a tier benefit's: it has no order).
    static func loadVouchers(_ db: Database, ids: Set<String>, into view: inout PostingView) throws {
        guard !ids.isEmpty else { return }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT v.voucher_id, v.item_id, v.member_id, v.valid_until_ms, v.status,
                        COALESCE(o.points / o.quantity, -1) AS unit_points
                    FROM vouchers v LEFT JOIN mall_orders o ON o.order_id = v.order_id
                    WHERE v.voucher_id IN (SELECT value FROM json_each(?))
                    """),
            arguments: [json(ids)])
        {
            guard
                let record = voucherRecord(
                    id: row["voucher_id"], item: row["item_id"], member: row["member_id"],
                    validUntil: row["valid_until_ms"],
                    status: row["status"], points: row["unit_points"])
            else { preconditionFailure("a stored voucher is malformed") }
            view.vouchers[record.voucherID] = record
        }
    }

    /// A voucher row as the posting rules read it (nil when a stored value does not parse).
    static func voucherRecord(
        id: String, item: String, member: String, validUntil: Int64, status: String, points: Int64
    ) -> VoucherRecord? {
        guard let item = ItemID(item), let member = MemberID(member), let status = VoucherStatus(rawValue: status)
        else { return nil }
        return VoucherRecord(
            voucherID: id, item: item, member: member, points: points < 0 ? nil : Points(points),
            validUntil: Timestamp(milliseconds: validUntil), status: status)
    }

    /// Marks the vouchers the batch used for the first time, at the use's position (the pull feed
    /// sends it from there).
    static func applyVoucherUses(_ db: Database, _ uses: [VoucherUseEffect]) throws {
        guard !uses.isEmpty else { return }
        let update = try db.cachedStatement(
            sql: """
                UPDATE vouchers SET status = 'used', changed_position = ?, used_transaction_id = ?, used_site = ?,
                    used_merchant = ?, used_at_ms = ?
                WHERE voucher_id = ? AND status = 'issued'
                """)
        for use in uses {
            try update.execute(arguments: [
                use.position, use.transactionID, use.site.rawValue, use.merchant.rawValue, use.usedAt.milliseconds,
                use.voucherID,
            ])
        }
    }
}
