import Core
import Foundation
import GRDB

/// What the edge knows of the points mall's vouchers, from the pull feed.
extension EdgeLedger {
    /// The edge's current instant.
    package var clockNow: Timestamp { clock.now() }

    /// The voucher keys the edge pulled (public halves, by id) and the status of one voucher as
    /// the gateway last told (nil: nothing said, so as issued).
    package func voucherKnowledge(_ voucher: TransactionID) async throws -> (
        keys: [UInt8: [UInt8]], status: VoucherStatus?
    ) {
        try await database.pool.read { db in
            var keys: [UInt8: [UInt8]] = [:]
            for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT key_id, public_key FROM voucher_keys")) {
                keys[UInt8(truncatingIfNeeded: row["key_id"] as Int64)] = Array(row["public_key"] as Data)
            }
            let status = try String.fetchOne(
                db.cachedStatement(sql: "SELECT status FROM voucher_states WHERE voucher_id = ?"),
                arguments: [voucher.description]
            ).flatMap(VoucherStatus.init(rawValue:))
            return (keys, status)
        }
    }
}
