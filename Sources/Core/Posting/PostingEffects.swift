/// What posting one pushed transaction came to.
package struct PostingResult: Sendable, Equatable {
    package enum Outcome: String, Sendable {
        case posted, postedWithConflict = "posted_with_conflict", rejected
    }

    package var outcome: Outcome
    package var reason: String
    /// The member's points change as posted.
    package var points: Points

    package init(outcome: Outcome, reason: String, points: Points) {
        self.outcome = outcome
        self.reason = reason
        self.points = points
    }
}

/// A conflict found and resolved by a written rule.
package struct ConflictEntry: Hashable, Sendable {
    package var kind: ConflictKind
    package var site: SiteID?
    package var transactionID: String?
    package var member: MemberID?
    package var resolution: String
    package var points: Points
    package var detail: String

    package init(
        kind: ConflictKind, site: SiteID?, transactionID: String?, member: MemberID?, resolution: String,
        points: Points = .zero, detail: String = ""
    ) {
        self.kind = kind
        self.site = site
        self.transactionID = transactionID
        self.member = member
        self.resolution = resolution
        self.points = points
        self.detail = detail
    }
}

/// One row of the ledger: a pushed transaction (posted or rejected) or one of the gateway's own.
package struct LedgerEntry: Sendable {
    package var position: Int64
    package var transactionID: String
    /// Nil for a rejected pushed transaction.
    package var kind: TransactionKind?
    package var site: SiteID?
    package var siteSequence: Int64?
    package var merchant: String?
    package var member: MemberID?
    package var requestID: String?
    package var original: String?
    /// The member's points change (for history and statements).
    package var points: Points
    package var amount: Money
    package var occurredAt: Timestamp
    package var postedAt: Timestamp
    package var programVersion: Int64
    package var detail: String
    package var postings: [Posting]
    /// The member's previous transaction (its chain).
    package var memberPrevious: Int64?
    /// The receipt the transaction claimed, if it got that far.
    package var receipt: ReceiptKey?
    /// The points its edge stated (see `PushedTransaction.statedPoints`).
    package var statedPoints: Int64?
    /// The result a pushed transaction was answered with.
    package var result: PostingResult?

    package init(
        position: Int64, transactionID: String, kind: TransactionKind?, site: SiteID? = nil, siteSequence: Int64? = nil,
        merchant: String? = nil, member: MemberID? = nil, requestID: String? = nil, original: String? = nil,
        points: Points = .zero, amount: Money = .zero, occurredAt: Timestamp, postedAt: Timestamp,
        programVersion: Int64, detail: String = "", postings: [Posting] = [], memberPrevious: Int64? = nil,
        receipt: ReceiptKey? = nil,
        statedPoints: Int64? = nil, result: PostingResult? = nil
    ) {
        self.position = position
        self.transactionID = transactionID
        self.kind = kind
        self.site = site
        self.siteSequence = siteSequence
        self.merchant = merchant
        self.member = member
        self.requestID = requestID
        self.original = original
        self.points = points
        self.amount = amount
        self.occurredAt = occurredAt
        self.postedAt = postedAt
        self.programVersion = programVersion
        self.detail = detail
        self.postings = postings
        self.memberPrevious = memberPrevious
        self.receipt = receipt
        self.statedPoints = statedPoints
        self.result = result
    }
}

/// A lot created by a batch (as the batch leaves it).
package struct NewLot: Hashable, Sendable {
    package var lot: LotRecord
    package var earnedAt: Timestamp
    package var original: Points
}

/// The writes a batch comes to: the store applies them as they are, in one transaction.
package struct PostingEffects: Sendable {
    /// Every new ledger row in position order.
    package var entries: [LedgerEntry] = []
    /// The change of every non-member account touched (member balances are in `members`).
    package var accountDeltas: [Account: Points] = [:]
    /// The state every touched member is left in, and which of them are new.
    package var members: [MemberID: MemberRecord] = [:]
    package var enrollments: [MemberEnrollment] = []
    package var merges: [(from: MemberID, into: MemberID, position: Int64)] = []
    /// Members whose pending referral was settled at their first purchase (the referrer paid, or
    /// no longer a member to pay).
    package var referralsSettled: [MemberID] = []
    package var tierSpells: [(member: MemberID, position: Int64, tier: TierID)] = []
    /// Lots created (as the batch leaves them), existing lots' change of remaining points, and
    /// existing lots' new place in their member's chain.
    package var newLots: [Int64: NewLot] = [:]
    package var lotRemaining: [Int64: Points] = [:]
    package var lotNext: [Int64: Int64?] = [:]
    package var lotDraws: [(position: Int64, lot: Int64, points: Points)] = []
    /// Qualifying points per member and bucket start.
    package var qualifying: [QualifyingBucket: Points] = [:]
    package var promotionsGiven: [PromotionID: Points] = [:]
    /// Bonus given per promotion, site and day: quota holdings and the use quotas are split by.
    package var promotionUse: [PromotionUse: Points] = [:]
    package var consumedHolds: [String] = []
    /// Holds whose transaction was rejected: released, so they stop keeping the member's points.
    package var releasedHolds: [String] = []
    /// Vouchers the batch used for the first time.
    package var voucherUses: [VoucherUseEffect] = []
    /// Allowances the batch granted or changed, as it leaves them.
    package var allowances: [String: AllowanceRecord] = [:]
    package var conflicts: [ConflictEntry] = []
    package var flags: Set<SiteFlag> = []
    /// The last position and lot number used.
    package var position: Int64 = 0
    package var lotNumber: Int64 = 0

    package init() {}
}

/// A member's tier-qualifying points in one 15-minute bucket of posting time: every time zone's
/// midnight falls on such a boundary, so a window that starts at a local midnight is whole buckets.
package struct QualifyingBucket: Hashable, Sendable {
    package var member: MemberID
    package var start: Int64

    /// The width of a bucket.
    package static let milliseconds: Int64 = 900_000

    package init(member: MemberID, at instant: Timestamp) {
        self.member = member
        self.start = instant.milliseconds / Self.milliseconds * Self.milliseconds
    }
}

/// Bonus of one promotion given at one site on one day (UTC days since 1970, of posting time).
package struct PromotionUse: Hashable, Sendable {
    package var promotion: PromotionID
    package var site: SiteID
    package var day: Int64

    package init(promotion: PromotionID, site: SiteID, at instant: Timestamp) {
        self.promotion = promotion
        self.site = site
        self.day = Self.day(of: instant)
    }

    /// The day number of an instant (UTC days since 1970).
    package static func day(of instant: Timestamp) -> Int64 {
        instant.milliseconds >= 0 ? instant.milliseconds / 86_400_000 : (instant.milliseconds + 1) / 86_400_000 - 1
    }
}
