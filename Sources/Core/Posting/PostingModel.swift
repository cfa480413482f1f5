/// The programs the gateway has published, newest last.
package struct ProgramCatalogue: Sendable {
    package struct Version: Sendable {
        package var version: Int64
        package var effectiveAt: Timestamp
        package var program: Program

        package init(version: Int64, effectiveAt: Timestamp, program: Program) {
            self.version = version
            self.effectiveAt = effectiveAt
            self.program = program
        }
    }

    package var versions: [Version]

    package init(versions: [Version]) {
        self.versions = versions.sorted { $0.version < $1.version }
    }

    /// The version in force at an instant (the first one for instants before it).
    package func active(at instant: Timestamp) -> Version? {
        versions.last { $0.effectiveAt <= instant } ?? versions.first
    }

    package var latest: Version? { versions.last }
}

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
    package var body: Body?
    /// True when the payload did not decode or named another transaction than its outbox row.
    package var undecodable: Bool

    package enum Body: Hashable, Sendable {
        case enrollment(Enrollment)
        case earn(Earn)
        case redeem(Spend)
        case parking(Spend)
        case reverse(Reverse)
    }

    package struct Enrollment: Hashable, Sendable {
        package var memberID: String
        package var phoneHash: [UInt8]
        package var sealedPhone: [UInt8]
        package var cardNumber: String
        package var birthMonth: Int
        package var referrerMemberID: String
        package var signupPoints: Int64
        package var referralPoints: Int64

        package init(
            memberID: String, phoneHash: [UInt8] = [], sealedPhone: [UInt8] = [], cardNumber: String = "",
            birthMonth: Int = 0, referrerMemberID: String = "", signupPoints: Int64 = 0, referralPoints: Int64 = 0
        ) {
            self.memberID = memberID
            self.phoneHash = phoneHash
            self.sealedPhone = sealedPhone
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

        package init(
            memberID: String, amountMinor: Int64, lines: [Line] = [], tier: String = "", birthMonth: Int = 0,
            lastEarnByFormat: [String: Int64] = [:], streakLastDay: String = "", streakDays: Int = 0,
            totalPoints: Int64, promotionPoints: [RulePoints] = [], replicaPosition: Int64 = 0
        ) {
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

        package init(memberID: String, points: Int64, amountMinor: Int64) {
            self.memberID = memberID
            self.points = points
            self.amountMinor = amountMinor
        }
    }

    package struct Reverse: Hashable, Sendable {
        package var memberID: String
        package var originalTransactionID: String
        package var amountMinor: Int64
        /// The member's points change the edge computed (≤ 0 for a refund).
        package var points: Int64

        package init(memberID: String, originalTransactionID: String, amountMinor: Int64, points: Int64) {
            self.memberID = memberID
            self.originalTransactionID = originalTransactionID
            self.amountMinor = amountMinor
            self.points = points
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
    }

    /// The receipt operation of the body.
    package var operation: ReceiptOperation? {
        switch body {
        case .enrollment: .enroll
        case .earn: .earn
        case .redeem: .redeem
        case .reverse: .reverse
        case .parking: .parkingPay
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
        case nil: nil
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

/// A member as the posting rules need it.
package struct MemberRecord: Hashable, Sendable {
    package var id: MemberID
    package var tier: TierID
    package var reviewDate: CivilDate
    package var birthMonth: Int?
    package var lastEarn: [Format: Timestamp]
    package var streak: Streak?
    package var mergedInto: MemberID?
    package var phoneHash: [UInt8]?
    /// The member account's balance (never below zero).
    package var balance: Points
    /// The position at which edges last had to pull the member.
    package var changedPosition: Int64
    /// The member's last ledger transaction (its transactions are a chain back from here).
    package var lastPosition: Int64?
    /// The member's newest lot with points left (its open lots are a chain from here).
    package var lotsHead: Int64?
    /// True once a batch changed the record (the engine writes back only those).
    package var changed = false

    /// The record, marked changed, for changing in place.
    package var markedChanged: MemberRecord {
        get { self }
        _modify {
            changed = true
            yield &self
        }
    }

    package init(
        id: MemberID, tier: TierID, reviewDate: CivilDate, birthMonth: Int? = nil, lastEarn: [Format: Timestamp] = [:],
        streak: Streak? = nil, mergedInto: MemberID? = nil, phoneHash: [UInt8]? = nil, balance: Points = .zero,
        changedPosition: Int64 = 0, lastPosition: Int64? = nil, lotsHead: Int64? = nil
    ) {
        self.id = id
        self.tier = tier
        self.reviewDate = reviewDate
        self.birthMonth = birthMonth
        self.lastEarn = lastEarn
        self.streak = streak
        self.mergedInto = mergedInto
        self.phoneHash = phoneHash
        self.balance = balance
        self.changedPosition = changedPosition
        self.lastPosition = lastPosition
        self.lotsHead = lotsHead
    }
}

/// What a new member's row records besides its state.
package struct MemberEnrollment: Hashable, Sendable {
    package var member: MemberID
    package var sealedPhone: [UInt8]?
    package var cardNumber: String?
    package var enrolledAt: Timestamp
    package var site: SiteID
}

/// An active hold: only its balance part keeps others from the member's points.
package struct HoldRecord: Hashable, Sendable {
    package var holdID: String
    package var member: MemberID
    package var transactionID: String
    package var balancePoints: Points
    package var expiresAt: Timestamp

    package init(holdID: String, member: MemberID, transactionID: String, balancePoints: Points, expiresAt: Timestamp) {
        self.holdID = holdID
        self.member = member
        self.transactionID = transactionID
        self.balancePoints = balancePoints
        self.expiresAt = expiresAt
    }
}

/// A lot: points of one earning, held until spent or expired. Lots are numbered in the order they
/// are created; a member's lots with points left form a chain (`next`, from the member's
/// `lotsHead`), so a new lot is an append and no member index is written.
package struct LotRecord: Hashable, Sendable {
    package var number: Int64
    /// The earning's transaction id (with `-referral` for a referral bonus).
    package var lotID: String
    package var member: MemberID
    package var expiresAt: Timestamp
    package var remaining: Points
    /// The next older lot of the member's chain (nil at its end, and for a lot not on it).
    package var next: Int64?

    package init(
        number: Int64, lotID: String, member: MemberID, expiresAt: Timestamp, remaining: Points, next: Int64?
    ) {
        self.number = number
        self.lotID = lotID
        self.member = member
        self.expiresAt = expiresAt
        self.remaining = remaining
        self.next = next
    }

    /// Consumption order: soonest expiry first, then lot id (byte order).
    package static func consumedBefore(_ a: LotRecord, _ b: LotRecord) -> Bool {
        a.expiresAt != b.expiresAt ? a.expiresAt < b.expiresAt : a.lotID.utf8.lexicographicallyPrecedes(b.lotID.utf8)
    }
}

/// A posted transaction a reversal names, with what was reversed of it before.
package struct OriginalRecord: Hashable, Sendable {
    package var transactionID: String
    package var position: Int64
    package var kind: TransactionKind
    package var site: SiteID?
    package var member: MemberID?
    package var points: Points
    package var amount: Money
    /// The receipt's total the edge stated (an earn), nil when unknown.
    package var statedPoints: Int64?
    package var postings: [Posting]
    /// The lot draws the transaction made (a redemption's): lot number and points.
    package var draws: [(lot: Int64, points: Points)]
    /// Earlier reversals of it: count, amount refunded, member points change, and the points their
    /// edges stated (nil when one is unknown).
    package var reversals: Int
    package var refundedAmount: Money
    package var reversedPoints: Points
    package var statedReversedPoints: [Int64]?

    package init(
        transactionID: String, position: Int64, kind: TransactionKind, site: SiteID?, member: MemberID?,
        points: Points, amount: Money, statedPoints: Int64?, postings: [Posting],
        draws: [(lot: Int64, points: Points)] = [], reversals: Int = 0, refundedAmount: Money = .zero,
        reversedPoints: Points = .zero, statedReversedPoints: [Int64]? = []
    ) {
        self.transactionID = transactionID
        self.position = position
        self.kind = kind
        self.site = site
        self.member = member
        self.points = points
        self.amount = amount
        self.statedPoints = statedPoints
        self.postings = postings
        self.draws = draws
        self.reversals = reversals
        self.refundedAmount = refundedAmount
        self.reversedPoints = reversedPoints
        self.statedReversedPoints = statedReversedPoints
    }

    package static func == (lhs: OriginalRecord, rhs: OriginalRecord) -> Bool {
        lhs.transactionID == rhs.transactionID && lhs.position == rhs.position && lhs.reversals == rhs.reversals
            && lhs.reversedPoints == rhs.reversedPoints
    }

    package func hash(into hasher: inout Hasher) { hasher.combine(transactionID) }
}

/// Everything the posting rules read for one batch, loaded by the store for exactly its keys
/// (`PostingKeys`). Members, holds, lots and originals not loaded are taken not to exist.
package struct PostingView: Sendable {
    package var members: [MemberID: MemberRecord] = [:]
    /// Unmerged members by phone hash.
    package var phoneOwners: [[UInt8]: MemberID] = [:]
    /// Active holds of the batch's members and of its transaction ids.
    package var holds: [HoldRecord] = []
    /// The chain of lots with points left of every member the batch may debit, head first.
    package var lots: [MemberID: [LotRecord]] = [:]
    /// Lots the batch's cancellations give points back to, by number (they may have none left).
    package var drawnLots: [Int64: LotRecord] = [:]
    /// The last lot number used.
    package var lotNumber: Int64 = 0
    /// Receipts already claimed, with the transaction that claimed them.
    package var receipts: [ReceiptKey: String] = [:]
    /// Posted transactions the batch's reversals name (those posted before the batch; the engine
    /// adds those the batch posts).
    package var originals: [String: OriginalRecord] = [:]
    /// The transaction ids the batch's reversals name.
    package var originalIDs: Set<String> = []
    /// Each earning member's qualifying points in the window that starts at the given instant.
    package var qualifying: [MemberID: [Int64: Points]] = [:]
    /// Tier spells of the batch's earning members.
    package var tierSpells: [MemberID: [TierSpell]] = [:]
    /// The members whose tier spells were read (every spell of theirs is in `tierSpells`).
    package var spellsLoaded: Set<MemberID> = []
    /// Bonus points each budgeted promotion has given.
    package var promotionsGiven: [PromotionID: Points] = [:]
    /// The last position used.
    package var position: Int64 = 0

    package init() {}
}

/// The keys of the rows a batch's posting reads, found from the batch alone (and, for `lotMembers`
/// and the members merged into, from the members once loaded).
package struct PostingKeys: Sendable {
    /// Members named by the batch (enrolled, earning, spending, reversing, referring); ids that do
    /// not parse name no member.
    package var members: Set<MemberID> = []
    package var phoneHashes: Set<[UInt8]> = []
    /// The phone hash of each member the batch enrols (a debit of it may fall on the member it
    /// merges into).
    package var enrolledPhones: [MemberID: [UInt8]] = [:]
    package var receipts: Set<ReceiptKey> = []
    /// Whether the receipts already claimed are read: only when writing the batch found one of its
    /// receipts claimed before (the ledger's unique index), so a batch of new receipts reads none.
    package var claimedReceipts = false
    package var originals: Set<String> = []
    /// Transaction ids of spends (their holds).
    package var holdTransactions: Set<String> = []
    /// Members named by spends and reversals: their lots are read.
    package var debitedMembers: Set<MemberID> = []
    /// Members named by earns, with the qualifying-window starts their programs use.
    package var earningMembers: Set<MemberID> = []
    /// The tiers the batch's earns state for each member they name: spells are read for a member
    /// only when one is not its tier.
    package var statedTiers: [MemberID: Set<String>] = [:]
    /// Members whose spells are read whatever the batch states (a second pass, `PostingEngine.missingSpells`).
    package var spellMembers: Set<MemberID> = []
    package var windowStarts: Set<Int64> = []

    package init() {}
}

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
    package var consumedHolds: [String] = []
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
