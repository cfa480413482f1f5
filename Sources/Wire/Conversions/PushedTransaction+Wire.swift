import Core
import Foundation

extension PushedTransaction {
    /// A pushed transaction as the posting rules read it: `local` is its payload decoded (nil when
    /// it did not decode), and must name the outbox row's transaction.
    package init(sequence: Int64, transactionID: String, local: Coalition_Sync_V1_LocalTransaction?) {
        guard let local, local.transactionID == transactionID else {
            self.init(
                sequence: sequence, transactionID: transactionID, requestID: "", merchantID: "",
                occurredAtMilliseconds: 0, programVersion: 0, body: nil, undecodable: true)
            return
        }
        let body: Body?
        switch local.body {
        case .enrollment(let record):
            body = .enrollment(
                Enrollment(
                    memberID: record.memberID, phoneHash: Array(record.phoneHash),
                    cardNumber: record.cardNumber, birthMonth: Int(record.birthMonth),
                    referrerMemberID: record.referrerMemberID, signupPoints: record.signupPoints,
                    referralPoints: record.referralPoints))
        case .earn(let record):
            body = .earn(
                Earn(
                    memberID: record.memberID, amountMinor: record.amountMinor,
                    lines: record.lines.map {
                        Earn.Line(sku: $0.sku, category: $0.category, amountMinor: $0.amountMinor)
                    },
                    tier: record.tier, birthMonth: Int(record.birthMonth),
                    lastEarnByFormat: record.lastEarnAtMsByFormat, streakLastDay: record.streakLastDay,
                    streakDays: Int(record.streakDays), totalPoints: record.breakdown.totalPoints,
                    promotionPoints: record.breakdown.components.filter { $0.kind == .promotion }.map {
                        RulePoints(ruleID: $0.ruleID, points: $0.points)
                    },
                    replicaPosition: Int64(clamping: record.replicaPosition),
                    paidWithPointsMinor: record.paidWithPointsMinor))
        case .redeem(let record):
            body = .redeem(
                Spend(
                    memberID: record.memberID, points: record.points, amountMinor: record.billAmountMinor,
                    allowanceID: record.allowanceID, allowancePoints: record.allowancePoints))
        case .parking(let record):
            body = .parking(
                Spend(
                    memberID: record.memberID, points: record.points, amountMinor: record.feeMinor,
                    allowanceID: record.allowanceID, allowancePoints: record.allowancePoints))
        case .reverse(let record):
            body = .reverse(
                Reverse(
                    memberID: record.memberID, originalTransactionID: record.originalTransactionID,
                    amountMinor: record.amountMinor, points: record.points, withheldPoints: record.withheldPoints))
        case .voucherUse(let record):
            body = .voucherUse(
                VoucherUse(
                    voucherID: record.voucherID, itemID: record.itemID,
                    settlementPriceMinor: record.settlementPriceMinor, validUntilMilliseconds: record.validUntilAtMs))
        case .allowanceReturn(let record):
            body = .allowanceReturn(
                AllowanceReturn(memberID: record.memberID, allowanceID: record.allowanceID, points: record.points))
        case nil:
            body = nil
        }
        self.init(
            sequence: sequence, transactionID: transactionID, requestID: local.requestID,
            merchantID: local.merchantID, occurredAtMilliseconds: local.occurredAtMs,
            programVersion: local.programVersion, body: body)
    }
}
