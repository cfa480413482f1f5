import Core
import Foundation

/// The protocol's checks of a push that both stores make the same way (docs/protocol.md, "Push"):
/// a replayed range must match what was stored byte for byte, and each new transaction must chain
/// to the one before. The stores read the rows; the decisions are here.
enum PushChecks {
    /// A pushed transaction as the ledger stored it.
    struct Stored {
        var transactionID: String
        var previousHash: Data
        var payload: Data
        var occurredAtMilliseconds: Int64
        var result: PostingResult
    }

    /// The results of the replayed items (all at or below the high-water mark), each the same as
    /// the one stored at its sequence, and the chain head after them. Throws `SyncRefusal` for one
    /// that differs.
    static func replayed(_ items: some Collection<PushItem>, stored: [Int64: Stored], head: Data) throws -> (
        results: [PushedResult], head: Data
    ) {
        var results: [PushedResult] = []
        var head = head
        for item in items {
            guard let row = stored[item.sequence] else {
                preconditionFailure("a sequence below the high-water mark is missing")
            }
            guard row.transactionID == item.transactionID, row.previousHash == item.previousHash,
                row.payload == item.payload, row.occurredAtMilliseconds == item.occurredAtMilliseconds
            else {
                throw SyncRefusal(
                    reason: "PROTOCOL_VIOLATION",
                    message: "sequence \(item.sequence) differs from the transaction already applied")
            }
            results.append(PushedResult(sequence: item.sequence, transactionID: item.transactionID, result: row.result))
            head = item.payloadHash
        }
        return (results, head)
    }

    /// The outbox rows of the new items, each checked to chain to the one before from `head`, and
    /// the new head. Throws `SyncRefusal` at the first that does not.
    static func chained(_ items: some Collection<PushItem>, head: Data) throws -> (
        outbox: [Int64: SQLitePosting.Outbox], head: Data
    ) {
        var outbox: [Int64: SQLitePosting.Outbox] = [:]
        var head = head
        for item in items {
            guard item.previousHash == head else {
                throw SyncRefusal(
                    reason: "PROTOCOL_VIOLATION",
                    message: "sequence \(item.sequence): previous_hash does not match the chain")
            }
            outbox[item.sequence] = SQLitePosting.Outbox(
                previousHash: item.previousHash, payload: item.payload,
                occurredAtMilliseconds: item.occurredAtMilliseconds)
            head = item.payloadHash
        }
        return (outbox, head)
    }
}
