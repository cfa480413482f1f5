// Goal (#18): an allowance moves points between the member's account and escrow(site), never
// out of the member's lots, refuses what the rules or its state do not allow with nothing written,
// and is reclaimed only when the lease, its margin and the site's catch-up say so (docs/protocol.md,
// "Allowances and promotion quotas").
import Core
import Testing

@Suite("Allowance postings")
struct AllowancePostingTests {
    static let catalogue = ProgramCatalogue(versions: [
        ProgramCatalogue.Version(
            version: 1, effectiveAt: Timestamp(milliseconds: 0), program: AllowanceRulesTests.program)
    ])
    static let park = SiteID("park-01")!
    static let mall = SiteID("mall-01")!
    static let alice = MemberID(value: 1)
    static let bob = MemberID(value: 2)
    static let now = PostingEngineTests.now
    static let minute: Int64 = 60_000

    /// Alice with `balance` points in one lot expiring on 2027-12-01, and `held` points on hold.
    static func view(balance: Int64, held: Int64 = 0) -> PostingView {
        var view = PostingView()
        view.position = 10
        view.lotNumber = 3
        view.members[alice] = PostingEngineTests.member(alice, balance: balance, lastPosition: 4, lotsHead: 3)
        view.lots[alice] = [
            PostingEngineTests.lot(3, of: alice, remaining: balance, expires: "2027-12-01T00:00", next: nil)
        ]
        if held > 0 {
            view.holds = [
                HoldRecord(
                    holdID: "h-1", member: alice, transactionID: "t-held", balancePoints: Points(held),
                    expiresAt: Timestamp(milliseconds: now.milliseconds + 600_000))
            ]
        }
        return view
    }

    static func engine(_ view: PostingView, at instant: Timestamp = now) -> PostingEngine {
        PostingEngine(
            view: view, catalogue: catalogue, site: SiteID(unchecked: "gateway"), now: instant,
            programGraceMilliseconds: 0, clockSkewMaxMilliseconds: 0)
    }

    static func grant(_ engine: inout PostingEngine, at site: SiteID = park, points: Points? = nil)
        -> Result<AllowanceRecord, AllowanceLedgerRefusal>
    {
        engine.grantAllowance(
            member: alice, site: site, trigger: .operatorOnly, points: points, allowanceID: "a-1",
            transactionID: "t-grant", detail: "by alice")
    }

    @Test("a grant posts the rule's points from the member to escrow(site), leaves the lots, and counts holds")
    func grant() throws {
        var engine = Self.engine(Self.view(balance: 10_000, held: 1_000))
        let record = try Self.grant(&engine).get()
        let effects = engine.finish()
        #expect(record.granted == Points(6_000))
        #expect(record.left == Points(6_000))
        #expect(record.status == .active)
        #expect(record.leaseUntil.milliseconds == Self.now.milliseconds + 1_440 * Self.minute)
        #expect(effects.entries.map(\.kind) == [.allowanceGrant])
        #expect(
            effects.entries.first?.postings == [
                Posting(.member(Self.alice), Points(-6_000)), Posting(.escrow(Self.park), Points(6_000)),
            ])
        #expect(effects.members[Self.alice]?.balance == Points(4_000))
        #expect(effects.accountDeltas == [.escrow(Self.park): Points(6_000)])
        #expect(effects.allowances["a-1"] == record)
        // The points stay in the member's lots: lots = account + what the allowance has left.
        #expect(effects.lotRemaining.isEmpty && effects.newLots.isEmpty)

        // With 2,500 available (3,500 less the hold) the grant is 2,500.
        var small = Self.engine(Self.view(balance: 3_500, held: 1_000))
        #expect(try Self.grant(&small).get().granted == Points(2_500))
    }

    @Test("a grant the rules refuse writes nothing")
    func grantRefused() {
        var engine = Self.engine(Self.view(balance: 3_500, held: 1_000))
        #expect(
            Self.grant(&engine, points: Points(2_501))
                == .failure(.terms(.tooManyPoints(asked: Points(2_501), allowed: Points(2_500)))))
        #expect(Self.grant(&engine, at: Self.mall) == .failure(.terms(.noRule(Format("mall")!))))
        #expect(Self.grant(&engine, at: SiteID("moon-01")!) == .failure(.unknownSite(SiteID("moon-01")!)))
        #expect(
            engine.grantAllowance(
                member: Self.bob, site: Self.park, trigger: .entry, allowanceID: "a-2", transactionID: "t-2",
                detail: "") == .failure(.unknownMember))
        var empty = Self.engine(Self.view(balance: 1_000, held: 1_000))
        #expect(Self.grant(&empty) == .failure(.terms(.nothingAvailable)))
        let effects = engine.finish()
        #expect(effects.entries.isEmpty)
        #expect(effects.allowances.isEmpty)
        #expect(effects.members.isEmpty)
    }

    @Test("a return gives back at most what is left; the allowance is returned when nothing is")
    func returns() throws {
        var engine = Self.engine(Self.view(balance: 10_000))
        _ = try Self.grant(&engine).get()
        let part = try engine.returnAllowance(
            "a-1", site: Self.park, points: Points(1_000), transactionID: "t-r1", detail: ""
        ).get()
        #expect(part.left == Points(5_000))
        #expect(part.status == .active)
        #expect(
            engine.returnAllowance("a-1", site: Self.park, points: Points(5_001), transactionID: "t-r2", detail: "")
                == .failure(.moreThanLeft(asked: Points(5_001), left: Points(5_000))))
        #expect(
            engine.returnAllowance("a-1", site: Self.park, points: Points(-1), transactionID: "t-r2", detail: "")
                == .failure(.moreThanLeft(asked: Points(-1), left: Points(5_000))))
        #expect(
            engine.returnAllowance("a-1", site: Self.mall, points: Points(1), transactionID: "t-r2", detail: "")
                == .failure(.otherSite("a-1")))
        #expect(
            engine.returnAllowance("a-9", site: Self.park, points: Points(1), transactionID: "t-r2", detail: "")
                == .failure(.unknownAllowance("a-9")))
        let rest = try engine.returnAllowance(
            "a-1", site: Self.park, points: Points(5_000), transactionID: "t-r3", detail: ""
        ).get()
        #expect(rest.status == .returned)
        #expect(rest.left == .zero)
        #expect(
            engine.returnAllowance("a-1", site: Self.park, points: .zero, transactionID: "t-r4", detail: "")
                == .failure(.notActive("a-1", .returned)))
        let effects = engine.finish()
        #expect(effects.entries.map(\.kind) == [.allowanceGrant, .allowanceReturn, .allowanceReturn])
        #expect(
            effects.entries[1].postings == [
                Posting(.escrow(Self.park), Points(-1_000)), Posting(.member(Self.alice), Points(1_000)),
            ])
        #expect(effects.members[Self.alice]?.balance == Points(10_000))
        #expect(effects.accountDeltas[.escrow(Self.park)] == .zero)
        #expect(effects.allowances["a-1"]?.status == .returned)
    }

    @Test("a reclaim waits for the lease, its margin and the site's catch-up, then takes back what is left")
    func reclaim() throws {
        var granting = Self.engine(Self.view(balance: 10_000))
        let record = try Self.grant(&granting, points: Points(4_000)).get()
        var view = Self.view(balance: 6_000)
        view.allowances["a-1"] = record
        let end = record.leaseUntil.milliseconds
        func at(_ offset: Int64) -> PostingEngine { Self.engine(view, at: Timestamp(milliseconds: end + offset)) }
        let caughtUp = Timestamp(milliseconds: end)

        var early = at(30 * Self.minute - 1)
        #expect(try early.reclaimAllowance("a-1", caughtUpAt: caughtUp, transactionID: "t-c", detail: "").get() == nil)
        #expect(early.finish().entries.isEmpty)
        // Caught up only before the lease ended: not yet, until the unheard hours.
        var unsure = at(30 * Self.minute)
        #expect(
            try unsure.reclaimAllowance(
                "a-1", caughtUpAt: Timestamp(milliseconds: end - 1), transactionID: "t-c", detail: ""
            ).get() == nil)

        var due = at(30 * Self.minute)
        let reclaimed = try #require(
            try due.reclaimAllowance("a-1", caughtUpAt: caughtUp, transactionID: "t-c", detail: "").get())
        #expect(reclaimed.status == .reclaimed)
        #expect(reclaimed.released == Points(4_000))
        #expect(
            due.reclaimAllowance("a-1", caughtUpAt: caughtUp, transactionID: "t-d", detail: "")
                == .failure(.notActive("a-1", .reclaimed)))
        let effects = due.finish()
        #expect(effects.entries.map(\.kind) == [.allowanceReclaim])
        #expect(
            effects.entries.first?.postings == [
                Posting(.escrow(Self.park), Points(-4_000)), Posting(.member(Self.alice), Points(4_000)),
            ])
        #expect(effects.members[Self.alice]?.balance == Points(10_000))

        var unheard = at(72 * 60 * Self.minute)
        #expect(try unheard.reclaimAllowance("a-1", caughtUpAt: nil, transactionID: "t-e", detail: "").get() != nil)
    }

    @Test("what is reclaimed or returned goes to the member the allowance's member was merged into")
    func merged() throws {
        var view = Self.view(balance: 0)
        view.members[Self.bob] = PostingEngineTests.member(Self.bob, balance: 100, lastPosition: 6)
        view.members[Self.alice]?.mergedInto = Self.bob
        view.allowances["a-1"] = AllowanceRecord(
            allowanceID: "a-1", site: Self.park, member: Self.alice, granted: Points(500), grantedAt: Self.now,
            leaseUntil: Timestamp(milliseconds: Self.now.milliseconds + Self.minute * 60))
        var engine = Self.engine(view)
        _ = try engine.returnAllowance("a-1", site: Self.park, points: Points(500), transactionID: "t-r", detail: "")
            .get()
        let effects = engine.finish()
        #expect(effects.members[Self.bob]?.balance == Points(600))
        #expect(effects.entries.first?.member == Self.bob)
    }

    @Test("expiry leaves escrowed points alone: it takes what is due from the account only")
    func expiryLeavesEscrow() throws {
        var granting = Self.engine(Self.view(balance: 10_000))
        let record = try Self.grant(&granting).get()
        var view = Self.view(balance: 4_000)
        view.lots[Self.alice] = [
            PostingEngineTests.lot(3, of: Self.alice, remaining: 10_000, expires: "2026-11-01T00:00", next: nil)
        ]
        view.allowances["a-1"] = record
        var engine = Self.engine(view)
        let expired = engine.expire(member: Self.alice, due: [3], transactionID: "t-x", detail: "")
        let effects = engine.finish()
        #expect(expired == Points(4_000))
        #expect(effects.lotRemaining[3] == Points(-4_000))  // 6,000 left: what the allowance reserves
        #expect(effects.members[Self.alice]?.balance == .zero)
    }

    // MARK: Spending an allowance (a pushed redemption or parking payment that names one)

    /// An engine at the car park, Alice with `account` points in her account and `left` in
    /// allowance a-1 (all in one lot).
    static func parkEngine(account: Int64, left: Int64, status: AllowanceRecord.Status = .active) -> PostingEngine {
        var view = Self.view(balance: account)
        view.lots[alice] = [
            PostingEngineTests.lot(3, of: alice, remaining: account + left, expires: "2027-12-01T00:00", next: nil)
        ]
        view.allowances["a-1"] = AllowanceRecord(
            allowanceID: "a-1", site: park, member: alice, granted: Points(left), grantedAt: now,
            leaseUntil: Timestamp(milliseconds: now.milliseconds + 600 * minute), status: status)
        return PostingEngine(
            view: view, catalogue: catalogue, site: park, now: now, programGraceMilliseconds: 3_600_000,
            clockSkewMaxMilliseconds: 300_000)
    }

    static func exit(points: Int64, fromAllowance: Int64, allowance: String = "a-1") -> PushedTransaction {
        PostingEngineTests.pushed(
            .parking(
                PushedTransaction.Spend(
                    memberID: alice.description, points: points, amountMinor: 6_000, allowanceID: allowance,
                    allowancePoints: fromAllowance)),
            merchant: "park-operator")
    }

    @Test("a spend within an allowance is paid from escrow(site): the member's account and offline_risk untouched")
    func spendWithin() {
        var engine = Self.parkEngine(account: 500, left: 6_000)
        let result = engine.post(Self.exit(points: 3_000, fromAllowance: 3_000))
        let effects = engine.finish()
        #expect(result == PostingResult(outcome: .posted, reason: "", points: Points(-3_000)))
        #expect(
            effects.entries.first?.postings == [
                Posting(.escrow(Self.park), Points(-3_000)),
                Posting(.redeemed(MerchantID("park-operator")!), Points(3_000)),
            ])
        #expect(effects.entries.first?.points == Points(-3_000))
        #expect(effects.accountDeltas[.offlineRisk(Self.park)] == nil)
        #expect(effects.members[Self.alice]?.balance == Points(500))
        #expect(effects.allowances["a-1"]?.spent == Points(3_000))
        #expect(effects.allowances["a-1"]?.left == Points(3_000))
        #expect(effects.lotRemaining[3] == Points(-3_000))
        #expect(effects.conflicts.isEmpty)
    }

    @Test("a spend beyond its allowance part is the member's, then the site's risk, as a floor-limit one")
    func spendSplit() {
        var engine = Self.parkEngine(account: 1_500, left: 3_000)
        let result = engine.post(Self.exit(points: 4_000, fromAllowance: 3_000))
        let effects = engine.finish()
        #expect(result == PostingResult(outcome: .posted, reason: "", points: Points(-4_000)))
        #expect(effects.members[Self.alice]?.balance == Points(500))
        #expect(effects.accountDeltas[.escrow(Self.park)] == Points(-3_000))
        #expect(effects.accountDeltas[.offlineRisk(Self.park)] == nil)
        #expect(effects.allowances["a-1"]?.left == .zero)
    }

    @Test(
        "a site that names more of an allowance than it has, or none of its own, is posted as a floor-limit spend with a conflict"
    )
    func overspent() {
        var engine = Self.parkEngine(account: 500, left: 1_000)
        let result = engine.post(Self.exit(points: 3_000, fromAllowance: 3_000))
        let effects = engine.finish()
        #expect(result.outcome == .postedWithConflict)
        #expect(result.reason == "allowance_overspent,offline_overdraw")
        #expect(effects.accountDeltas[.escrow(Self.park)] == Points(-1_000))
        #expect(effects.accountDeltas[.offlineRisk(Self.park)] == Points(-1_500))
        #expect(effects.members[Self.alice]?.balance == .zero)
        #expect(effects.conflicts.map(\.kind) == [.allowanceOverspent, .offlineOverdraw])
        #expect(effects.conflicts.map(\.points) == [Points(2_000), Points(1_500)])

        var unknown = Self.parkEngine(account: 5_000, left: 1_000)
        let named = unknown.post(Self.exit(points: 700, fromAllowance: 700, allowance: "a-9"))
        let unknownEffects = unknown.finish()
        #expect(
            named == PostingResult(outcome: .postedWithConflict, reason: "allowance_overspent", points: Points(-700)))
        #expect(unknownEffects.members[Self.alice]?.balance == Points(4_300))
        #expect(unknownEffects.accountDeltas[.escrow(Self.park)] == nil)
        #expect(unknownEffects.allowances.isEmpty)
    }

    @Test("a spend of an allowance returned or reclaimed already is the member's, with allowance_reclaimed")
    func spendAfterReclaim() {
        var engine = Self.parkEngine(account: 5_000, left: 1_000, status: .reclaimed)
        let result = engine.post(Self.exit(points: 800, fromAllowance: 800))
        let effects = engine.finish()
        #expect(
            result == PostingResult(outcome: .postedWithConflict, reason: "allowance_reclaimed", points: Points(-800)))
        #expect(effects.members[Self.alice]?.balance == Points(4_200))
        #expect(effects.accountDeltas[.escrow(Self.park)] == nil)
    }

    @Test("allowance points outside 0 to the spend's points, or without an allowance id, reject the spend")
    func malformedSpend() {
        for (points, part, id) in [(Int64(500), Int64(501), "a-1"), (500, -1, "a-1"), (500, 100, ""), (500, 0, "a-1")] {
            var engine = Self.parkEngine(account: 5_000, left: 1_000)
            let result = engine.post(Self.exit(points: points, fromAllowance: part, allowance: id))
            let effects = engine.finish()
            #expect(result.outcome == .rejected, "\(points) \(part) '\(id)'")
            #expect(effects.accountDeltas.isEmpty && effects.allowances.isEmpty)
        }
    }
}
