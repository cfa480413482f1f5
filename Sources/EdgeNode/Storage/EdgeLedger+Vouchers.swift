import Core
import Foundation
import GRDB
import GRPCCore
import SwiftProtobuf
import Wire

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

/// Vouchers honoured at this site's tills.
extension EdgeLedger {
    /// A voucher a till asked to honour, checked (signature, validity, scope) against what the edge
    /// knew before writing.
    package struct VoucherRedemption: Sendable {
        package var key: RequestKey
        package var claim: VoucherClaim
        package var item: CatalogItem
        /// The answer to the check, which the answer to the use carries.
        package var voucher: Coalition_Edge_V1_CheckVoucherResponse

        package init(
            key: RequestKey, claim: VoucherClaim, item: CatalogItem, voucher: Coalition_Edge_V1_CheckVoucherResponse
        ) {
            self.key = key
            self.claim = claim
            self.item = item
            self.voucher = voucher
        }
    }

    /// The answer this edge gave to the request, if it answered it before (a retry).
    package func storedVoucherAnswer(_ key: RequestKey) async throws -> Coalition_Edge_V1_RedeemVoucherResponse? {
        let limits = self.limits
        return try await database.pool.read { db in
            try LedgerTransaction(db: db, limits: limits).storedAnswer(key).map {
                try Coalition_Edge_V1_RedeemVoucherResponse(serializedBytes: $0)
            }
        }
    }

    /// Records the use of a checked voucher in the outbox and marks it used here, in one
    /// transaction of the group committer: a second use of it at this edge (another till, the same
    /// instant) is refused `VOUCHER_USED`. A retry of the request gets its first answer.
    package func redeemVoucher(_ use: VoucherRedemption) async throws -> Coalition_Edge_V1_RedeemVoucherResponse {
        let (version, program) = programPair
        let now = clock.now()
        let limits = self.limits
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(use.key) {
                return try Coalition_Edge_V1_RedeemVoucherResponse(serializedBytes: stored)
            }
            let voucherID = use.claim.voucherID.description
            switch try String.fetchOne(
                db.cachedStatement(sql: "SELECT status FROM voucher_states WHERE voucher_id = ?"),
                arguments: [voucherID]
            ).flatMap(VoucherStatus.init(rawValue:)) {
            case .used?:
                throw ServiceError(.failedPrecondition, VoucherRefusal.used.message, reason: VoucherRefusal.used.reason)
            case .cancelled?:
                throw ServiceError(
                    .failedPrecondition, VoucherRefusal.cancelled.message, reason: VoucherRefusal.cancelled.reason)
            case .issued?, nil: break
            }
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator)
            var record = Coalition_Sync_V1_VoucherUseRecord()
            record.voucherID = voucherID
            record.itemID = use.item.id.rawValue
            record.settlementPriceMinor = use.item.settlementPrice.minorUnits
            record.validUntilAtMs = use.claim.validUntil.milliseconds
            var payload = Self.payload(transaction, use.key, version: version, at: now)
            payload.voucherUse = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .voucherUse, merchant: use.key.merchant, member: nil,
                    requestID: use.key.requestID, points: .zero, amount: use.item.settlementPrice,
                    occurredAt: now, localDay: program.timeZone.date(of: now), payload: payload, deltas: []))
            try Self.markVoucherUsed(voucherID, db)
            var response = Coalition_Edge_V1_RedeemVoucherResponse()
            response.transactionID = transaction.description
            response.voucher = use.voucher
            response.usedAtMs = now.milliseconds
            try tx.remember(use.key, response: response, sequence: sequence)
            return response
        }
    }

    /// Marks a voucher used at this edge (a use here, or one recovered from the gateway).
    static func markVoucherUsed(_ voucherID: String, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO voucher_states (voucher_id, status) VALUES (?, 'used')
                ON CONFLICT (voucher_id) DO UPDATE SET status = 'used'
                """
        ).execute(arguments: [voucherID])
    }
}
