import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwiftProtobuf
import Synchronization
import Wire

// Recovery (DESIGN §5): the site's own transactions downloaded back into a lost or old database
// before anything new is minted.
extension SyncClient {
    /// Downloads the site's own transactions the gateway has and this database lacks (a lost file
    /// or an old backup), before any new one is minted. Returns how many were restored.
    @discardableResult
    package func recover() async throws -> Int {
        var restored = 0
        while true {
            let local = try await database.pool.read { db in
                try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM outbox") ?? 0
            }
            var request = Coalition_Sync_V1_RecoverRequest()
            request.protocolVersion = 1
            request.fromSequence = UInt64(local + 1)
            request.maxCount = UInt32(min(1_000, link.pullPageSize))
            let response = try await sync.recover(request, options(link.callTimeoutMilliseconds))
            let now = clock.now()
            let timeZone = program().program.timeZone
            try await database.pool.write { db in
                for transaction in response.transactions {
                    try Self.restore(transaction, db, timeZone: timeZone)
                }
                try db.cachedStatement(
                    sql:
                        "UPDATE sync_state SET acknowledged_sequence = MAX(acknowledged_sequence, ?), last_gateway_contact_ms = ? WHERE id = 1"
                ).execute(arguments: [
                    min(Int64(response.highWaterMark), local + Int64(response.transactions.count)), now.milliseconds,
                ])
            }
            restored += response.transactions.count
            if response.transactions.isEmpty || !response.hasMore_p { break }
        }
        if restored > 0 { logger.notice("recovered transactions from the gateway", metadata: ["count": "\(restored)"]) }
        return restored
    }

    /// Writes a recovered transaction into the outbox exactly as it was (same bytes, same chain).
    static func restore(
        _ transaction: Coalition_Sync_V1_OutboxTransaction, _ db: Database, timeZone: ProgramTimeZone
    ) throws {
        let local = try Coalition_Sync_V1_LocalTransaction(serializedBytes: transaction.payload)
        // This edge wrote these transactions within its program's bounds; figures outside them are
        // not its own and must not reach the arithmetic below (negation, local dates).
        let bound: Int64 = 1_000_000_000_000
        let figures: [Int64] =
            switch local.body {
            case .enrollment(let record): [record.signupPoints, record.referralPoints]
            case .earn(let record): [record.breakdown.totalPoints, record.amountMinor]
            case .redeem(let record): [record.points, record.billAmountMinor]
            case .reverse(let record): [record.points, record.amountMinor]
            case .parking(let record): [record.points, record.feeMinor]
            case .voucherUse(let record): [record.settlementPriceMinor]
            case .allowanceReturn(let record): [record.points]
            case nil: []
            }
        guard figures.allSatisfy({ (-bound...bound).contains($0) }),
            Timestamp.wireRange.contains(transaction.occurredAtMs)
        else {
            throw ServiceError(
                .dataLoss, "recovered transaction \(transaction.sequence) states figures this edge never writes")
        }
        var kind: TransactionKind?
        var member = ""
        var points: Int64 = 0
        var amount: Int64 = 0
        var authorization: String?
        var original: String?
        var freeMinutes: Int64 = 0
        var deltas: [(String, Int64)] = []
        // The part of a spend paid from an allowance, and the allowance's change.
        var allowancePoints: Int64 = 0
        var allowanceChange: (id: String, points: Int64)?
        switch local.body {
        case .enrollment(let record):
            kind = .enroll
            member = record.memberID
            points = record.signupPoints
            deltas = [(record.memberID, record.signupPoints)]
            if !record.referrerMemberID.isEmpty, record.referralPoints > 0 {
                deltas.append((record.referrerMemberID, record.referralPoints))
            }
        case .earn(let record):
            kind = .earn
            member = record.memberID
            points = record.breakdown.totalPoints
            amount = record.amountMinor
            deltas = [(member, points)]
            for component in record.breakdown.components where component.kind == .promotion && component.points > 0 {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO outbox_promotions (promotion_id, sequence, points) VALUES (?, ?, ?)
                        ON CONFLICT (promotion_id, sequence) DO UPDATE SET points = points + excluded.points
                        """
                ).execute(arguments: [component.ruleID, Int64(transaction.sequence), component.points])
            }
        case .redeem(let record):
            kind = .redeem
            member = record.memberID
            points = -record.points
            amount = record.billAmountMinor
            authorization = EdgeLedger.authorizationColumn(
                record.authorization, points: record.points, allowancePoints: record.allowancePoints)
            (allowancePoints, allowanceChange) = Self.allowancePart(record.allowanceID, record.allowancePoints)
            deltas = [(member, points)]
        case .reverse(let record):
            kind = .reverse
            member = record.memberID
            points = record.points
            amount = record.amountMinor
            original = record.originalTransactionID
            deltas = [(member, points)]
        case .parking(let record):
            kind = .parking
            member = record.memberID
            points = -record.points
            amount = record.feeMinor
            freeMinutes = record.freeMinutesApplied
            authorization =
                record.points > 0
                ? EdgeLedger.authorizationColumn(
                    record.authorization, points: record.points, allowancePoints: record.allowancePoints) : nil
            (allowancePoints, allowanceChange) = Self.allowancePart(record.allowanceID, record.allowancePoints)
            deltas = [(member, points)]
        case .voucherUse(let record):
            kind = .voucherUse
            amount = record.settlementPriceMinor
            try EdgeLedger.markVoucherUsed(record.voucherID, db)
        case .allowanceReturn(let record):
            kind = .allowanceReturn
            member = record.memberID
            allowanceChange = (record.allowanceID, -record.points)
            deltas = [(member, 0)]
        case nil:
            break
        }
        let day = timeZone.date(of: Timestamp(milliseconds: transaction.occurredAtMs))
        try db.cachedStatement(
            sql: """
                INSERT INTO outbox (sequence, transaction_id, kind, merchant_id, member_id, request_id, points, amount_minor, authorization,
                    original_transaction_id, free_minutes, occurred_at_ms, local_day, previous_hash, payload_hash, payload,
                    allowance_points)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            Int64(transaction.sequence), transaction.transactionID, kind?.rawValue ?? "unknown", local.merchantID,
            member, local.requestID,
            points, amount,
            authorization, original, freeMinutes, transaction.occurredAtMs, day.description, transaction.previousHash,
            Data(SHA256.hash(data: transaction.payload)), transaction.payload, allowancePoints,
        ])
        if let allowanceChange, allowanceChange.points != 0 {
            try db.cachedStatement(
                sql: "INSERT INTO allowance_delta (allowance_id, sequence, points) VALUES (?, ?, ?)"
            ).execute(arguments: [allowanceChange.id, Int64(transaction.sequence), allowanceChange.points])
        }
        var merged: [String: Int64] = [:]
        for (id, value) in deltas where !id.isEmpty { merged[id, default: 0] += value }
        for (id, value) in merged.sorted(by: { $0.key < $1.key }) {
            try db.cachedStatement(sql: "INSERT INTO member_delta (member_id, sequence, points) VALUES (?, ?, ?)")
                .execute(arguments: [id, Int64(transaction.sequence), value])
        }
    }

    /// A recovered spend's allowance part: the points paid from it, and its change.
    private static func allowancePart(_ id: String, _ points: Int64) -> (Int64, (id: String, points: Int64)?) {
        guard !id.isEmpty, points > 0 else { return (0, nil) }
        return (points, (id, -points))
    }
}
