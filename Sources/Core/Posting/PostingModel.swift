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
    /// Who referred the member, while the referral bonus waits for the member's first purchase
    /// (`referral_paid_at: first_purchase`).
    package var pendingReferrer: MemberID?
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
        changedPosition: Int64 = 0, lastPosition: Int64? = nil, lotsHead: Int64? = nil,
        pendingReferrer: MemberID? = nil
    ) {
        self.pendingReferrer = pendingReferrer
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
    /// The merchant whose till made it (the issuer of an earn's points), nil when unknown.
    package var merchant: MerchantID?
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
    /// An earn's points that expired from its own lot and that no refund has taken back from
    /// `expired` yet.
    package var expiredLeft: Points = .zero
    /// Points earlier refunds gave back to each of an earn's funders.
    package var returned: [Account: Points] = [:]

    package init(
        transactionID: String, position: Int64, kind: TransactionKind, site: SiteID?, member: MemberID?,
        merchant: MerchantID? = nil, points: Points, amount: Money, statedPoints: Int64?, postings: [Posting],
        draws: [(lot: Int64, points: Points)] = [], reversals: Int = 0, refundedAmount: Money = .zero,
        reversedPoints: Points = .zero, statedReversedPoints: [Int64]? = []
    ) {
        self.transactionID = transactionID
        self.position = position
        self.kind = kind
        self.site = site
        self.member = member
        self.merchant = merchant
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
    /// When the site's last posted transaction happened (as posted): none of its next ones may be
    /// dated much earlier (docs/protocol.md, "Posting rules").
    package var siteLastOccurredAt: Timestamp?
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
    package var qualifying: [QualifyingWindow: Points] = [:]
    /// Tier spells of the batch's earning members.
    package var tierSpells: [MemberID: [TierSpell]] = [:]
    /// The members whose tier spells were read (every spell of theirs is in `tierSpells`).
    package var spellsLoaded: Set<MemberID> = []
    /// Bonus points each budgeted promotion has given.
    package var promotionsGiven: [PromotionID: Points] = [:]
    /// The pushing site's quota holding in each budgeted promotion (none: no quota issued, so no
    /// bonus of it may be posted from the site).
    package var promotionQuotas: [PromotionID: QuotaHolding] = [:]
    /// The vouchers the batch's voucher uses name, by voucher id (those not here were never issued).
    package var vouchers: [String: VoucherRecord] = [:]
    /// The allowances the batch names, by allowance id.
    package var allowances: [String: AllowanceRecord] = [:]
    /// The last position used.
    package var position: Int64 = 0

    package init() {}

    /// The member a member id stands for now (following merges, at most 8); nil when it or a
    /// member it merged into is not in the view.
    package func resolve(_ id: MemberID) -> MemberID? {
        var current = id
        for _ in 0..<8 {
            guard let record = members[current] else { return nil }
            guard let next = record.mergedInto else { return current }
            current = next
        }
        return current
    }
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
    /// The pushing site: when its transaction last posted happened bounds the batch's from below.
    package var site: SiteID?
    /// Voucher ids the batch's voucher uses name.
    package var vouchers: Set<String> = []
    /// Allowance ids the batch's spends name.
    package var allowances: Set<String> = []
    /// Members whose active allowances are read (a grant refuses a second one at a site).
    package var allowanceMembers: Set<MemberID> = []

    package init() {}
}

/// A member's rolling qualifying window, by the instant (a bucket boundary) it starts at.
package struct QualifyingWindow: Hashable, Sendable {
    package var member: MemberID
    package var start: Int64

    package init(member: MemberID, start: Int64) {
        self.member = member
        self.start = start
    }
}

/// A voucher of the points mall as the ledger holds it, for posting a use of it.
package struct VoucherRecord: Hashable, Sendable {
    package var voucherID: String
    package var item: ItemID
    /// The member who bought it.
    package var member: MemberID
    /// The points one unit of its order cost; nil when it was not bought (a lottery prize or a
    /// tier benefit): its item's catalog price in points stands for it then.
    package var points: Points?
    package var validUntil: Timestamp
    package var status: VoucherStatus

    package init(
        voucherID: String, item: ItemID, member: MemberID, points: Points?, validUntil: Timestamp, status: VoucherStatus
    ) {
        self.voucherID = voucherID
        self.item = item
        self.member = member
        self.points = points
        self.validUntil = validUntil
        self.status = status
    }
}

/// The first use of a voucher, posted: the store marks it used.
package struct VoucherUseEffect: Hashable, Sendable {
    package var voucherID: String
    package var transactionID: String
    package var position: Int64
    package var site: SiteID
    package var merchant: MerchantID
    package var usedAt: Timestamp
}
