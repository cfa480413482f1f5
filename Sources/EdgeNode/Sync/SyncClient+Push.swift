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

// Push (DESIGN §5): the outbox in bounded batches; the acknowledgement and the cursor in one
// local transaction.
extension SyncClient {
    /// Sends the next batch of unacknowledged transactions. True when more are waiting.
    package func pushRound() async throws -> Bool {
        let batchMax = link.pushBatchMax
        let (batch, exposure) = try await database.pool.read { db -> ([Coalition_Sync_V1_OutboxTransaction], Int64) in
            let acknowledged =
                try Int64.fetchOne(db, sql: "SELECT acknowledged_sequence FROM sync_state WHERE id = 1") ?? 0
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT sequence, transaction_id, previous_hash, payload, occurred_at_ms FROM outbox WHERE sequence > ? ORDER BY sequence LIMIT ?"
                ),
                arguments: [acknowledged, batchMax])
            let exposure = try LedgerTransaction(db: db, limits: EdgeLimits()).siteExposure().value
            return (
                rows.map { row in
                    Coalition_Sync_V1_OutboxTransaction(
                        sequence: row["sequence"], transactionID: row["transaction_id"],
                        previousHash: row["previous_hash"],
                        payload: row["payload"], occurredAtMs: row["occurred_at_ms"])
                }, exposure
            )
        }
        guard let last = batch.last else { return false }
        var request = Coalition_Sync_V1_PushRequest()
        request.protocolVersion = 1
        request.programVersion = program().version
        request.transactions = batch
        request.unsyncedExposurePoints = exposure
        request.sentAtMs = clock.now().milliseconds
        let response = try await sync.push(request, options(link.callTimeoutMilliseconds))
        let now = clock.now()
        switch response.status {
        case .applied, .alreadyApplied:
            let acknowledged = min(Int64(response.highWaterMark), Int64(last.sequence))
            try await database.pool.write { db in
                for result in response.results
                where result.outcome == .rejected && Int64(result.sequence) <= acknowledged {
                    try db.cachedStatement(sql: "INSERT OR IGNORE INTO rejected (sequence, reason) VALUES (?, ?)")
                        .execute(arguments: [Int64(result.sequence), result.reason])
                }
                try db.cachedStatement(
                    sql:
                        "UPDATE sync_state SET acknowledged_sequence = MAX(acknowledged_sequence, ?), last_gateway_contact_ms = ? WHERE id = 1"
                ).execute(arguments: [acknowledged, now.milliseconds])
            }
            for result in response.results where result.outcome != .posted {
                logger.info(
                    "push result",
                    metadata: [
                        "txn.id": "\(result.transactionID)", "outcome": "\(result.outcome)",
                        "reason": "\(result.reason)",
                    ])
            }
            return batch.count == batchMax
        case .resendFrom:
            // The gateway has less than we thought (for example restored from a backup): resend.
            let from = Int64(response.resendFromSequence)
            try await database.pool.write { db in
                try db.cachedStatement(
                    sql: "UPDATE sync_state SET acknowledged_sequence = ?, last_gateway_contact_ms = ? WHERE id = 1"
                ).execute(arguments: [max(0, from - 1), now.milliseconds])
            }
            logger.warning("gateway asked to resend", metadata: ["from": "\(from)"])
            return true
        case .unspecified, .UNRECOGNIZED:
            throw ServiceError(.internalError, "the gateway answered a push with status \(response.status)")
        }
    }
}
