import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import NodeSupport
import SwiftProtobuf
import Synchronization
import Wire

/// The program an edge computes with, and its version (0 for a local program file used before the
/// gateway published one).

// Earning at a till (DESIGN §3-4).
extension EdgeLedger {
    package struct Earn: Sendable {
        package var key: RequestKey
        package var member: MemberID
        package var amount: Money
        package var lines: [SaleLine]
        /// The part of the bill paid with points, which earns nothing.
        package var paidWithPoints: Money

        package init(key: RequestKey, member: MemberID, amount: Money, lines: [SaleLine], paidWithPoints: Money = .zero)
        {
            self.paidWithPoints = paidWithPoints
            self.key = key
            self.member = member
            self.amount = amount
            self.lines = lines
        }
    }

    /// Core's field names in the terms of the earn and redeem requests.
    static let billFields = [
        "amount": "amount_minor", "bill": "bill_amount_minor", "merchant": "merchant_id", "tier": "member_id",
        "paidWithPoints": "paid_with_points_minor",
    ]

    package func earn(_ command: Earn) async throws -> Coalition_Edge_V1_EarnResponse {
        let (version, program) = programPair
        let now = clock.now()
        let limits = self.limits
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(command.key) {
                return try Coalition_Edge_V1_EarnResponse(serializedBytes: stored)
            }
            guard let member = try tx.member(command.member) else {
                throw ServiceError.notFound("member_id", "no member '\(command.member)' is known at this site")
            }
            let result: EarnResult
            do {
                result = try EarnCalculator.earn(
                    program: program,
                    input: EarnInput(
                        merchant: command.key.merchant, amount: command.amount, lines: command.lines, occurredAt: now,
                        member: member.earnState,
                        // Only a program with a budgeted promotion needs the budgets read.
                        promotionBudgetsLeft: program.earn.promotions.contains { $0.budget != nil }
                            ? try tx.promotionBudgetsLeft(program) : [:], paidWithPoints: command.paidWithPoints))
            } catch let error as CalculationError {
                throw ServiceError(error, fields: Self.billFields)
            }
            // The last earn at a format and the streak move only with base points, as at the
            // gateway (docs/rules.md: a bill that earns no base points earns no bonuses).
            if result.points(of: .base) > .zero {
                var lastEarn = member.lastEarnByFormat
                lastEarn[result.format] = now
                let pairs = LastEarnEncoding.sorted(lastEarn)
                try FastStatement(
                    db,
                    sql: "UPDATE members SET last_earn = ?, streak_last_day = ?, streak_days = ? WHERE member_id = ?"
                ).run {
                    $0.addText(capacity: LastEarnEncoding.capacity(pairs)) { LastEarnEncoding.write(pairs, into: $0) }
                    $0.add(result.streak?.lastDay.description)
                    $0.add(result.streak?.days ?? 0)
                    $0.add(member.id)
                }
            }
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator)
            var record = Coalition_Sync_V1_EarnRecord()
            record.memberID = member.id.description
            record.amountMinor = command.amount.minorUnits
            record.lines = command.lines.map(Self.wireLine)
            record.paidWithPointsMinor = command.paidWithPoints.minorUnits
            record.breakdown = Coalition_Common_V1_EarnBreakdown(result)
            record.tier = member.tier.rawValue
            record.birthMonth = Int32(member.birthMonth ?? 0)
            record.lastEarnAtMsByFormat = Dictionary(
                uniqueKeysWithValues: member.lastEarnByFormat.map { ($0.key.rawValue, $0.value.milliseconds) })
            record.streakLastDay = member.streak?.lastDay.description ?? ""
            record.streakDays = Int32(member.streak?.days ?? 0)
            record.replicaPosition = UInt64(max(0, member.snapshotPosition))
            var payload = Self.payload(transaction, command.key, version: version, at: now)
            payload.earn = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .earn, merchant: command.key.merchant, member: member.id,
                    requestID: command.key.requestID, points: result.total, amount: command.amount, occurredAt: now,
                    localDay: program.timeZone.date(of: now), payload: payload, deltas: [(member.id, result.total)]))
            try tx.recordPromotions(PromotionBudgets.given(by: result), sequence: sequence)
            var response = Coalition_Edge_V1_EarnResponse()
            response.transactionID = transaction.description
            response.points = result.total.value
            response.breakdown = record.breakdown
            response.balanceAfterPoints = max(0, try tx.shownBalance(of: member, now: now).value)
            response.programVersion = version
            try tx.remember(command.key, response: response, sequence: sequence)
            return response
        }
    }
}
