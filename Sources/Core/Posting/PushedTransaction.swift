/// One transaction a site pushed, as the posting rules read it: the edge's words, not yet checked.
/// Identifiers stay text until the rules check them (a malformed one is a rejection, not an error).
package struct PushedTransaction: Hashable, Sendable {
    package var sequence: Int64
    package var transactionID: String
    package var requestID: String
    package var merchantID: String
    package var occurredAtMilliseconds: Int64
    package var programVersion: Int64
    /// Nil when the payload did not decode, named another transaction, or carried no body.
    package var body: Body? {
        didSet { member = memberID.flatMap(MemberID.init) }
    }
    /// The member id the body names, parsed once (nil when absent or malformed).
    package private(set) var member: MemberID?
    /// True when the payload did not decode or named another transaction than its outbox row.
    package var undecodable: Bool

    package enum Body: Hashable, Sendable {
        case enrollment(Enrollment)
        case earn(Earn)
        case redeem(Spend)
        case parking(Spend)
        case reverse(Reverse)
        case voucherUse(VoucherUse)
        case allowanceReturn(AllowanceReturn)
    }

    /// What is left of an allowance, given back by the site.
    package struct AllowanceReturn: Hashable, Sendable {
        package var memberID: String
        package var allowanceID: String
        package var points: Int64

        package init(memberID: String, allowanceID: String, points: Int64) {
            self.memberID = memberID
            self.allowanceID = allowanceID
            self.points = points
        }
    }

    /// A voucher of the points mall honoured at a till.
    package struct VoucherUse: Hashable, Sendable {
        package var voucherID: String
        package var itemID: String
        /// What the edge's program said the honouring merchant is paid (audit only).
        package var settlementPriceMinor: Int64
        package var validUntilMilliseconds: Int64

        package init(voucherID: String, itemID: String, settlementPriceMinor: Int64, validUntilMilliseconds: Int64) {
            self.voucherID = voucherID
            self.itemID = itemID
            self.settlementPriceMinor = settlementPriceMinor
            self.validUntilMilliseconds = validUntilMilliseconds
        }
    }

    package struct Enrollment: Hashable, Sendable {
        package var memberID: String
        package var phoneHash: [UInt8]
        package var cardNumber: String
        package var birthMonth: Int
        package var referrerMemberID: String
        package var signupPoints: Int64
        package var referralPoints: Int64

        package init(
            memberID: String, phoneHash: [UInt8] = [], cardNumber: String = "",
            birthMonth: Int = 0, referrerMemberID: String = "", signupPoints: Int64 = 0, referralPoints: Int64 = 0
        ) {
            self.memberID = memberID
            self.phoneHash = phoneHash
            self.cardNumber = cardNumber
            self.birthMonth = birthMonth
            self.referrerMemberID = referrerMemberID
            self.signupPoints = signupPoints
            self.referralPoints = referralPoints
        }
    }

    /// Points a receipt gave by one rule.
    package struct RulePoints: Hashable, Sendable {
        package var ruleID: String
        package var points: Int64

        package init(ruleID: String, points: Int64) {
            self.ruleID = ruleID
            self.points = points
        }
    }

    package struct Earn: Hashable, Sendable {
        package struct Line: Hashable, Sendable {
            package var sku: String
            package var category: String
            package var amountMinor: Int64

            package init(sku: String, category: String, amountMinor: Int64) {
                self.sku = sku
                self.category = category
                self.amountMinor = amountMinor
            }
        }

        package var memberID: String
        package var amountMinor: Int64
        package var lines: [Line]
        /// The member state the edge says it used.
        package var tier: String
        package var birthMonth: Int
        package var lastEarnByFormat: [String: Int64]
        package var streakLastDay: String
        package var streakDays: Int
        /// The receipt's total, and the points it gave each promotion (rule id, points).
        package var totalPoints: Int64
        package var promotionPoints: [RulePoints]
        /// The position of the gateway's log the edge's replica had reached.
        package var replicaPosition: Int64
        /// The part of the bill paid with points, which earns nothing.
        package var paidWithPointsMinor: Int64

        package init(
            memberID: String, amountMinor: Int64, lines: [Line] = [], tier: String = "", birthMonth: Int = 0,
            lastEarnByFormat: [String: Int64] = [:], streakLastDay: String = "", streakDays: Int = 0,
            totalPoints: Int64, promotionPoints: [RulePoints] = [], replicaPosition: Int64 = 0,
            paidWithPointsMinor: Int64 = 0
        ) {
            self.paidWithPointsMinor = paidWithPointsMinor
            self.memberID = memberID
            self.amountMinor = amountMinor
            self.lines = lines
            self.tier = tier
            self.birthMonth = birthMonth
            self.lastEarnByFormat = lastEarnByFormat
            self.streakLastDay = streakLastDay
            self.streakDays = streakDays
            self.totalPoints = totalPoints
            self.promotionPoints = promotionPoints
            self.replicaPosition = replicaPosition
        }
    }

    /// A redemption or a parking payment.
    package struct Spend: Hashable, Sendable {
        package var memberID: String
        package var points: Int64
        /// The bill or the parking fee.
        package var amountMinor: Int64
        /// The allowance of the site the first `allowancePoints` of `points` were spent from
        /// (empty and 0 when none).
        package var allowanceID: String
        package var allowancePoints: Int64

        package init(
            memberID: String, points: Int64, amountMinor: Int64, allowanceID: String = "", allowancePoints: Int64 = 0
        ) {
            self.memberID = memberID
            self.points = points
            self.amountMinor = amountMinor
            self.allowanceID = allowanceID
            self.allowancePoints = allowancePoints
        }
    }

    package struct Reverse: Hashable, Sendable {
        package var memberID: String
        package var originalTransactionID: String
        package var amountMinor: Int64
        /// The member's points change the edge computed (≤ 0 for a refund).
        package var points: Int64
        /// A refund's points the till withheld cash for instead of taking them back (the member had
        /// spent them, as the edge knew).
        package var withheldPoints: Int64

        package init(
            memberID: String, originalTransactionID: String, amountMinor: Int64, points: Int64,
            withheldPoints: Int64 = 0
        ) {
            self.memberID = memberID
            self.originalTransactionID = originalTransactionID
            self.amountMinor = amountMinor
            self.points = points
            self.withheldPoints = withheldPoints
        }
    }

    package init(
        sequence: Int64, transactionID: String, requestID: String, merchantID: String, occurredAtMilliseconds: Int64,
        programVersion: Int64, body: Body?, undecodable: Bool = false
    ) {
        self.sequence = sequence
        self.transactionID = transactionID
        self.requestID = requestID
        self.merchantID = merchantID
        self.occurredAtMilliseconds = occurredAtMilliseconds
        self.programVersion = programVersion
        self.body = body
        self.undecodable = undecodable
        member = memberID.flatMap(MemberID.init)
    }

    /// The receipt operation of the body.
    package var operation: ReceiptOperation? {
        switch body {
        case .enrollment: .enroll
        case .earn: .earn
        case .redeem: .redeem
        case .reverse: .reverse
        case .parking: .parkingPay
        case .voucherUse: .voucherRedeem
        case .allowanceReturn: .allowance
        case nil: nil
        }
    }

    /// The member id the body names, if any.
    package var memberID: String? {
        switch body {
        case .enrollment(let record): record.memberID
        case .earn(let record): record.memberID
        case .redeem(let record), .parking(let record): record.memberID
        case .reverse(let record): record.memberID
        case .allowanceReturn(let record): record.memberID
        case .voucherUse, nil: nil
        }
    }

    /// The points the edge stated for the member (the receipt's figure): an earn's total, a
    /// reversal's change. Kept with the posted transaction for checking later refunds.
    package var statedPoints: Int64? {
        switch body {
        case .earn(let record): record.totalPoints
        case .reverse(let record): record.points
        default: nil
        }
    }
}

/// A receipt's key: one transaction per (merchant, operation, receipt number), first posted wins.
package struct ReceiptKey: Hashable, Sendable, CustomStringConvertible {
    package var merchant: String
    package var operation: ReceiptOperation
    package var requestID: String

    package init(merchant: String, operation: ReceiptOperation, requestID: String) {
        self.merchant = merchant
        self.operation = operation
        self.requestID = requestID
    }

    /// The stored form, `merchant|operation|request id` (merchant ids and operations have no `|`).
    package var description: String { "\(merchant)|\(operation.rawValue)|\(requestID)" }
}
