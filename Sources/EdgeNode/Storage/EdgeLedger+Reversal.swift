import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import NodeSupport
import SwiftProtobuf
import Synchronization
import Wire

// Refunds of earns and cancellations of redemptions at a till.
extension EdgeLedger {
    package struct Reverse: Sendable {
        package var key: RequestKey
        package var original: TransactionID
        package var amount: Money
        package var reason: String

        package init(key: RequestKey, original: TransactionID, amount: Money, reason: String) {
            self.key = key
            self.original = original
            self.amount = amount
            self.reason = reason
        }
    }

    package func reverse(_ command: Reverse) async throws -> Coalition_Edge_V1_ReverseResponse {
        let (version, program) = programPair
        let now = clock.now()
        let limits = self.limits
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(command.key) {
                return try Coalition_Edge_V1_ReverseResponse(serializedBytes: stored)
            }
            guard
                let original = try Row.fetchOne(
                    db,
                    sql:
                        "SELECT kind, merchant_id, member_id, points, amount_minor, occurred_at_ms FROM outbox WHERE transaction_id = ?",
                    arguments: [command.original.description])
            else {
                throw ServiceError.notFound(
                    "original_transaction_id",
                    "no transaction '\(command.original)' was made at this site (or it is older than the edge keeps: limits.outbox_retention_ms)"
                )
            }
            let merchant: String = original["merchant_id"]
            guard merchant == command.key.merchant.rawValue else {
                throw ServiceError(
                    .permissionDenied, "original_transaction_id: the transaction belongs to merchant '\(merchant)'")
            }
            guard TransactionKind(rawValue: original["kind"]) != .voucherUse else {
                throw ServiceError.refused(
                    .notReversible, "A voucher's use is not reversed at the till: the voucher stays used.")
            }
            guard let member = try tx.member(MemberID(original["member_id"] as String)!) else {
                preconditionFailure("an outbox member has no replica row")
            }
            let kind = TransactionKind(rawValue: original["kind"])
            let originalPoints = Points(original["points"])
            let previous = try Row.fetchOne(
                db,
                sql:
                    "SELECT COALESCE(SUM(amount_minor), 0) AS amount, COALESCE(SUM(points), 0) AS points, COUNT(*) AS count FROM outbox WHERE kind = 'reverse' AND original_transaction_id = ?",
                arguments: [command.original.description])
            let refundedAmount = Money(minorUnits: previous?["amount"] ?? 0)
            let reversedPoints = Points(previous?["points"] ?? 0)
            let count: Int = previous?["count"] ?? 0
            let delta: Points
            let refunded: Money
            var withheld = Points.zero
            switch kind {
            case .earn?:
                let originalAmount = Money(minorUnits: original["amount_minor"])
                guard refundedAmount < originalAmount else {
                    throw ServiceError.refused(.notReversible, "This purchase has already been refunded in full.")
                }
                do {
                    let refund = try EarnReversal.refund(
                        EarnRefundState(
                            originalAmount: originalAmount, originalPoints: originalPoints,
                            refundedAmount: refundedAmount, reversedPoints: -reversedPoints),
                        amount: command.amount)
                    // Points the member no longer has (spent) are not taken back: the till keeps
                    // their value from the cash it refunds instead. Points of an earn whose lot has
                    // expired are the breakage's, which the gateway takes back: nothing is withheld
                    // for them (docs/rules.md, "Refunds").
                    let expiresAt = ExpiryCalculator.expiresAt(
                        earnedAt: Timestamp(milliseconds: original["occurred_at_ms"]), rules: program.expiry,
                        timeZone: program.timeZone)
                    let balance = try tx.balance(of: member).balance
                    withheld = expiresAt <= now ? .zero : max(.zero, refund.points - max(.zero, balance))
                    delta = -(refund.points - withheld)
                    refunded = refund.amount
                } catch let error as CalculationError {
                    throw ServiceError(error, fields: ["amount": "amount_minor"])
                }
            case .redeem?, .parking?:
                guard command.amount == .zero else {
                    throw ServiceError.invalid("amount_minor", "must be 0: a redemption is cancelled in full")
                }
                guard count == 0 else {
                    throw ServiceError.refused(.notReversible, "This redemption has already been cancelled.")
                }
                delta = -originalPoints
                refunded = .zero
            default:
                throw ServiceError.refused(
                    .notReversible,
                    "A transaction of kind '\(kind?.rawValue ?? "unknown")' cannot be reversed at a till.")
            }
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator)
            var record = Coalition_Sync_V1_ReverseRecord()
            record.memberID = member.id.description
            record.originalTransactionID = command.original.description
            record.amountMinor = refunded.minorUnits
            record.points = delta.value
            record.withheldPoints = withheld.value
            record.reason = command.reason
            var payload = Self.payload(transaction, command.key, version: version, at: now)
            payload.reverse = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .reverse, merchant: command.key.merchant, member: member.id,
                    requestID: command.key.requestID, points: delta, amount: refunded, original: command.original,
                    occurredAt: now, localDay: program.timeZone.date(of: now), payload: payload,
                    deltas: [(member.id, delta)]))
            var response = Coalition_Edge_V1_ReverseResponse()
            response.transactionID = transaction.description
            response.points = abs(delta.value)
            response.balanceAfterPoints = max(0, try tx.shownBalance(of: member, now: now).value)
            response.withheldPoints = withheld.value
            if withheld > .zero, let (merchant, site) = program.merchant(command.key.merchant),
                let prices = program.settlement.prices(for: merchant, format: site.format)
            {
                response.withheldMinor = prices.redeemPrice.halfEvenTimes(withheld.value)
            }
            try tx.remember(command.key, response: response, sequence: sequence)
            return response
        }
    }
}
