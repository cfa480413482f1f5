import Core
import Testing

/// The posting rules of DESIGN §6 as `PostingEngine` applies them: a view in, effects out, no
/// database. Figures are the fixture program's (¥1 = 1 point at mall-fashion for a plain member).
@Suite("Posting engine")
struct PostingEngineTests {
    static let now = Fixture.at("2026-11-24T12:00")
    static let site = SiteID("mall-01")!
    static let catalogue = ProgramCatalogue(versions: [
        ProgramCatalogue.Version(version: 1, effectiveAt: Timestamp(milliseconds: 0), program: Fixture.program)
    ])
    static let alice = MemberID(value: 1)
    static let bob = MemberID(value: 2)

    static func member(
        _ id: MemberID, balance: Int64 = 0, tier: TierID = Fixture.member, lastPosition: Int64? = nil,
        lotsHead: Int64? = nil
    ) -> MemberRecord {
        MemberRecord(
            id: id, tier: tier, reviewDate: Fixture.date("2027-11-24"), balance: Points(balance),
            lastPosition: lastPosition, lotsHead: lotsHead)
    }

    static func lot(_ number: Int64, of member: MemberID, remaining: Int64, expires: String, next: Int64?)
        -> LotRecord
    {
        LotRecord(
            number: number, lotID: "lot-\(number)", member: member, expiresAt: Fixture.at(expires),
            remaining: Points(remaining), next: next)
    }

    static func engine(_ view: PostingView) -> PostingEngine {
        PostingEngine(
            view: view, catalogue: catalogue, site: site, now: now, programGraceMilliseconds: 3_600_000,
            clockSkewMaxMilliseconds: 300_000)
    }

    static func pushed(
        _ body: PushedTransaction.Body?, merchant: String = "mall-fashion", request: String = "R-1",
        id: UInt128 = 100, sequence: Int64 = 1
    ) -> PushedTransaction {
        PushedTransaction(
            sequence: sequence,
            transactionID: TransactionID(value: (UInt128(1_795_000_000_000) << 80) | id).description,
            requestID: request, merchantID: merchant, occurredAtMilliseconds: now.milliseconds - 60_000,
            programVersion: 1, body: body)
    }

    static func earn(_ member: MemberID, yuan: Int64, stated: Int64, tier: String = "member") -> PushedTransaction.Body
    {
        .earn(
            PushedTransaction.Earn(
                memberID: member.description, amountMinor: yuan * 100, tier: tier, totalPoints: stated))
    }

    @Test("an earn posts Core's points, appends to the member's chains and issues from the merchant")
    func earn() {
        var view = PostingView()
        view.position = 40
        view.lotNumber = 7
        view.members[Self.alice] = Self.member(Self.alice, balance: 50, lastPosition: 12, lotsHead: 7)
        view.lots[Self.alice] = [Self.lot(7, of: Self.alice, remaining: 50, expires: "2027-12-01T00:00", next: nil)]
        var engine = Self.engine(view)
        let result = engine.post(Self.pushed(Self.earn(Self.alice, yuan: 100, stated: 100)))
        let effects = engine.finish()
        #expect(result == PostingResult(outcome: .posted, reason: "", points: Points(100)))
        #expect(effects.entries.map(\.position) == [41])
        #expect(effects.entries.first?.memberPrevious == 12)
        #expect(
            effects.entries.first?.postings == [
                Posting(.member(Self.alice), Points(100)), Posting(.issued(Fixture.mall), Points(-100)),
            ])
        #expect(effects.accountDeltas == [.issued(Fixture.mall): Points(-100)])
        let alice = effects.members[Self.alice]
        #expect(alice?.balance == Points(150))
        #expect(alice?.lastPosition == 41)
        #expect(alice?.lotsHead == 8)
        #expect(effects.newLots[8]?.lot.next == 7)
        #expect(effects.newLots[8]?.lot.remaining == Points(100))
        #expect(effects.qualifying[QualifyingBucket(member: Self.alice, at: Self.now)] == Points(100))
        #expect(effects.conflicts.isEmpty && effects.flags.isEmpty)
    }

    struct RejectionCase: Sendable, CustomTestStringConvertible {
        var name: String
        var transaction: PushedTransaction
        var reason: RejectionReason
        var conflict: ConflictKind
        var testDescription: String { name }
    }

    static let rejections: [RejectionCase] = [
        RejectionCase(
            name: "a merchant of another site",
            transaction: pushed(earn(alice, yuan: 10, stated: 10), merchant: "hotel-rooms"),
            reason: .merchantNotAtSite, conflict: .rejected),
        RejectionCase(
            name: "a malformed merchant id",
            transaction: pushed(earn(alice, yuan: 10, stated: 10), merchant: "Not A Slug"),
            reason: .malformed, conflict: .rejected),
        RejectionCase(
            name: "a receipt first posted as another transaction",
            transaction: pushed(earn(alice, yuan: 10, stated: 10), request: "R-taken"),
            reason: .duplicateReceipt, conflict: .duplicateReceipt),
        RejectionCase(
            name: "an unknown member", transaction: pushed(earn(MemberID(value: 99), yuan: 10, stated: 10)),
            reason: .unknownMember, conflict: .rejected),
        RejectionCase(
            name: "an enrolment of a member id already enrolled",
            transaction: pushed(
                .enrollment(PushedTransaction.Enrollment(memberID: alice.description, signupPoints: 200))),
            reason: .duplicateMember, conflict: .rejected),
        RejectionCase(
            name: "a reversal of a transaction unknown at the site",
            transaction: pushed(
                .reverse(
                    PushedTransaction.Reverse(
                        memberID: alice.description, originalTransactionID: "nope", amountMinor: 0, points: 0))),
            reason: .unknownOriginal, conflict: .rejected),
        RejectionCase(
            name: "a redemption of negative points",
            transaction: pushed(
                .redeem(PushedTransaction.Spend(memberID: alice.description, points: -5, amountMinor: 0))),
            reason: .malformed, conflict: .rejected),
        RejectionCase(
            name: "a payload that did not decode",
            transaction: PushedTransaction(
                sequence: 1, transactionID: "x", requestID: "", merchantID: "", occurredAtMilliseconds: 0,
                programVersion: 0, body: nil, undecodable: true),
            reason: .malformed, conflict: .rejected),
    ]

    @Test("a rejected transaction posts nothing, keeps its place and is recorded", arguments: rejections)
    func rejected(_ rejection: RejectionCase) {
        var view = PostingView()
        view.position = 9
        view.members[Self.alice] = Self.member(Self.alice, balance: 500)
        view.receipts[ReceiptKey(merchant: "mall-fashion", operation: .earn, requestID: "R-taken")] = "someone-else"
        var engine = Self.engine(view)
        let result = engine.post(rejection.transaction)
        let effects = engine.finish()
        #expect(result.outcome == .rejected)
        #expect(result.reason == rejection.reason.rawValue)
        #expect(result.points == .zero)
        #expect(effects.entries.count == 1)
        #expect(effects.entries.first?.kind == nil)
        #expect(effects.entries.first?.postings == [])
        #expect(effects.entries.first?.position == 10)
        #expect(effects.conflicts.map(\.kind) == [rejection.conflict])
        #expect(effects.accountDeltas.isEmpty && effects.newLots.isEmpty)
        #expect(effects.members[Self.alice] == nil)
    }

    @Test("a redemption is paid from the hold placed for it, and others' holds keep their points")
    func holdForTheSameTransaction() {
        let transaction = Self.pushed(
            .redeem(PushedTransaction.Spend(memberID: Self.alice.description, points: 700, amountMinor: 10_000)))
        var view = PostingView()
        view.members[Self.alice] = Self.member(Self.alice, balance: 1_000, lotsHead: 1)
        view.lots[Self.alice] = [Self.lot(1, of: Self.alice, remaining: 1_000, expires: "2027-12-01T00:00", next: nil)]
        view.holds = [
            HoldRecord(
                holdID: "h-own", member: Self.alice, transactionID: transaction.transactionID,
                balancePoints: Points(600), expiresAt: Self.now.adding(milliseconds: 60_000)),
            HoldRecord(
                holdID: "h-other", member: Self.alice, transactionID: "another", balancePoints: Points(300),
                expiresAt: Self.now.adding(milliseconds: 60_000)),
        ]
        var engine = Self.engine(view)
        let result = engine.post(transaction)
        let effects = engine.finish()
        // 1,000 less the other hold's 300 covers 700: nothing reaches offline risk.
        #expect(result == PostingResult(outcome: .posted, reason: "", points: Points(-700)))
        #expect(effects.consumedHolds == ["h-own"])
        #expect(effects.accountDeltas[.offlineRisk(Self.site)] == nil)
        #expect(effects.members[Self.alice]?.balance == Points(300))

        // Another redemption finds both holds standing, 100 spendable: 800 takes 700 from the site.
        var short = Self.engine(view)
        let overdrawn = short.post(
            Self.pushed(
                .redeem(PushedTransaction.Spend(memberID: Self.alice.description, points: 800, amountMinor: 10_000)),
                request: "R-2", id: 101))
        let shortEffects = short.finish()
        #expect(
            overdrawn == PostingResult(outcome: .postedWithConflict, reason: "offline_overdraw", points: Points(-100)))
        #expect(shortEffects.accountDeltas[.offlineRisk(Self.site)] == Points(-700))
        #expect(shortEffects.flags == [.offlineOverdraw])
        #expect(shortEffects.conflicts.map(\.points) == [Points(700)])
        #expect(shortEffects.consumedHolds.isEmpty)
    }

    @Test("a debit takes the lots that expire soonest, and a lot left with nothing leaves the chain")
    func lotsChain() {
        var view = PostingView()
        view.lotNumber = 3
        view.members[Self.alice] = Self.member(Self.alice, balance: 600, lotsHead: 3)
        // Chain 3 → 2 → 1; lot 2 expires first, then lot 1, then lot 3.
        view.lots[Self.alice] = [
            Self.lot(3, of: Self.alice, remaining: 300, expires: "2028-02-01T00:00", next: 2),
            Self.lot(2, of: Self.alice, remaining: 100, expires: "2027-11-01T00:00", next: 1),
            Self.lot(1, of: Self.alice, remaining: 200, expires: "2027-12-01T00:00", next: nil),
        ]
        var engine = Self.engine(view)
        let redemption = Self.pushed(
            .redeem(PushedTransaction.Spend(memberID: Self.alice.description, points: 250, amountMinor: 10_000)))
        _ = engine.post(redemption)
        let effects = engine.finish()
        // Lot 2 (100) is emptied and unlinked (3 now points to 1); lot 1 gives 150.
        #expect(effects.lotDraws.map { [$0.lot, $0.points.value] } == [[2, 100], [1, 150]])
        #expect(effects.lotRemaining == [2: Points(-100), 1: Points(-150)])
        #expect(effects.lotNext[3] == .some(1))
        #expect(effects.lotNext[2] == .some(nil))
        #expect(effects.members[Self.alice]?.lotsHead == 3)
    }

    @Test("a cancellation in the same batch gives the drawn lots back and puts an emptied lot at the head")
    func cancellation() {
        var view = PostingView()
        view.members[Self.alice] = Self.member(Self.alice, balance: 100, lotsHead: 1)
        view.lots[Self.alice] = [Self.lot(1, of: Self.alice, remaining: 100, expires: "2027-12-01T00:00", next: nil)]
        let redemption = Self.pushed(
            .redeem(PushedTransaction.Spend(memberID: Self.alice.description, points: 100, amountMinor: 10_000)))
        view.originalIDs = [redemption.transactionID]
        var engine = Self.engine(view)
        _ = engine.post(redemption)
        let cancel = engine.post(
            Self.pushed(
                .reverse(
                    PushedTransaction.Reverse(
                        memberID: Self.alice.description, originalTransactionID: redemption.transactionID,
                        amountMinor: 0, points: 100)), request: "R-2", id: 101, sequence: 2))
        let effects = engine.finish()
        #expect(cancel == PostingResult(outcome: .posted, reason: "", points: Points(100)))
        #expect(
            effects.entries.last?.postings == [
                Posting(.member(Self.alice), Points(100)), Posting(.redeemed(Fixture.mall), Points(-100)),
            ])
        #expect(effects.lotRemaining[1] == .zero)
        #expect(effects.members[Self.alice]?.lotsHead == 1)
        #expect(effects.members[Self.alice]?.balance == Points(100))
        // A second cancellation of the same redemption is refused.
        let again = engine.post(
            Self.pushed(
                .reverse(
                    PushedTransaction.Reverse(
                        memberID: Self.alice.description, originalTransactionID: redemption.transactionID,
                        amountMinor: 0, points: 100)), request: "R-3", id: 102, sequence: 3))
        #expect(again.reason == RejectionReason.alreadyReversed.rawValue)
    }

    @Test("a tier the member never held is replaced by the gateway's, and the points at stake are recorded")
    func statedTier() {
        var view = PostingView()
        view.members[Self.alice] = Self.member(Self.alice)
        view.tierSpells[Self.alice] = [TierSpell(position: 1, tier: Fixture.member)]
        view.spellsLoaded = [Self.alice]
        var engine = Self.engine(view)
        // Gold earns 1.5×: the edge stated 150 for ¥100.
        let result = engine.post(Self.pushed(Self.earn(Self.alice, yuan: 100, stated: 150, tier: "gold")))
        let effects = engine.finish()
        #expect(
            result == PostingResult(outcome: .postedWithConflict, reason: "member_state_mismatch", points: Points(100)))
        #expect(effects.conflicts.map(\.kind) == [.memberStateMismatch])
        #expect(effects.conflicts.map(\.points) == [Points(50)])
        #expect(effects.flags == [.memberStateMismatch])

        // Without the spells in the view, the engine asks for them rather than guess.
        var partial = view
        partial.spellsLoaded = []
        partial.tierSpells = [:]
        var asking = Self.engine(partial)
        _ = asking.post(Self.pushed(Self.earn(Self.alice, yuan: 100, stated: 150, tier: "gold")))
        #expect(asking.missingSpells == [Self.alice])
    }

    /// docs/rules.md, "Refunds": the points the member still has are taken back and the issuer
    /// is given back only those; the till withheld cash for the rest, or (a stale replica) the
    /// issuer keeps paying for them and the refund is flagged. No site's offline_risk is charged.
    @Test(
        "a refund of points already spent takes back what the member has; the rest is withheld or flagged",
        arguments: [(70, false), (0, true), (30, true)] as [(Int64, Bool)])
    func refundAfterSpend(withheld: Int64, flagged: Bool) {
        var view = PostingView()
        view.members[Self.alice] = Self.member(Self.alice, balance: 30, lotsHead: 1)
        view.lots[Self.alice] = [Self.lot(1, of: Self.alice, remaining: 30, expires: "2027-12-01T00:00", next: nil)]
        view.originals["earn-1"] = OriginalRecord(
            transactionID: "earn-1", position: 5, kind: .earn, site: Self.site, member: Self.alice,
            points: Points(100), amount: Fixture.yuan(100), statedPoints: 100,
            postings: [Posting(.member(Self.alice), Points(100)), Posting(.issued(Fixture.mall), Points(-100))])
        view.originalIDs = ["earn-1"]
        var engine = Self.engine(view)
        let result = engine.post(
            Self.pushed(
                .reverse(
                    PushedTransaction.Reverse(
                        memberID: Self.alice.description, originalTransactionID: "earn-1", amountMinor: 0,
                        points: -(100 - withheld), withheldPoints: withheld))))
        let effects = engine.finish()
        #expect(result.points == Points(-30))
        #expect(result.reason.contains("refund_after_spend") == flagged)
        #expect(
            effects.conflicts.first { $0.kind == .refundAfterSpend }?.points == (flagged ? Points(70 - withheld) : nil))
        #expect(effects.accountDeltas[.offlineRisk(Self.site)] == nil)
        #expect(effects.accountDeltas[.issued(Fixture.mall)] == Points(30))
        #expect(effects.members[Self.alice]?.balance == .zero)
        #expect(effects.members[Self.alice]?.lotsHead == nil)
    }

    @Test("an adjustment may not debit more than the member may spend; expiry takes what the due lots hold")
    func ownTransactions() {
        var view = PostingView()
        view.members[Self.alice] = Self.member(Self.alice, balance: 300, lotsHead: 2)
        view.lots[Self.alice] = [
            Self.lot(2, of: Self.alice, remaining: 200, expires: "2026-12-01T00:00", next: 1),
            Self.lot(1, of: Self.alice, remaining: 100, expires: "2026-11-01T00:00", next: nil),
        ]
        var engine = Self.engine(view)
        let receipt = ReceiptKey(merchant: "-ops", operation: .adjust, requestID: "op-1")
        #expect(
            engine.adjust(
                member: Self.alice, points: Points(-301), transactionID: "t-1", requestID: "op-1", receipt: receipt,
                detail: "too much") == .failure(.insufficient(available: Points(300))))
        #expect(engine.finish().entries.isEmpty)
        #expect(
            engine.adjust(
                member: MemberID(value: 5), points: Points(10), transactionID: "t-2", requestID: "op-2",
                receipt: receipt,
                detail: "") == .failure(.unknownMember))
        let expired = engine.expire(member: Self.alice, due: [1], transactionID: "t-3", detail: "expiry")
        let effects = engine.finish()
        #expect(expired == Points(100))
        #expect(
            effects.entries.map(\.postings) == [
                [Posting(.member(Self.alice), Points(-100)), Posting(.expired, Points(100))]
            ])
        #expect(effects.lotNext[2] == .some(nil))
        #expect(effects.members[Self.alice]?.balance == Points(200))
    }
}
