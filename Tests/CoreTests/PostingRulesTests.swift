// Goal: the conflict rules that move points always balance, never take a member below zero, and
// put every missing point on the offline-risk account of the site that caused it.
import Core
import Testing

@Suite("Posting rules")
struct PostingRulesTests {
    static let member = MemberID(value: 1)
    static let merchant = MerchantID("mall-fashion")!
    static let site = SiteID("mall-01")!

    @Test(
        "a redemption within the balance, at it, and beyond it",
        arguments: [
            (500, 1_000, 500, 0), (1_000, 1_000, 1_000, 0), (1_000, 300, 300, 700), (1_000, 0, 0, 1_000),
            (1_000, -50, 0, 1_000),
        ] as [(Int64, Int64, Int64, Int64)])
    func redemption(_ points: Int64, _ available: Int64, _ fromMember: Int64, _ shortfall: Int64) {
        let (postings, short) = PostingRules.redemption(
            member: Self.member, merchant: Self.merchant, site: Self.site, points: Points(points),
            available: Points(available))
        #expect(postings.change(of: .member(Self.member)) == Points(-fromMember))
        #expect(postings.change(of: .offlineRisk(Self.site)) == Points(-shortfall))
        #expect(postings.change(of: .redeemed(Self.merchant)) == Points(points))
        #expect(short == Points(shortfall))
        #expect(postings.lines.reduce(Points.zero) { $0 + $1.points } == .zero)
    }

    /// docs/rules.md, "Refunds": own lot, then its expired part, then other points; the rest is
    /// not taken back and the issuer is given back only what was recovered.
    @Test(
        "a refund takes its own lot, then what of it expired, then other points; the rest is unrecovered",
        arguments: [
            // points, own lot, expired, available → own, expired, other, unrecovered
            (100, 100, 0, 500, 100, 0, 0, 0),
            (100, 40, 0, 500, 40, 0, 60, 0),
            (100, 40, 30, 500, 40, 30, 30, 0),
            (100, 0, 100, 0, 0, 100, 0, 0),
            (100, 40, 30, 50, 40, 30, 10, 20),
            (100, 0, 0, 30, 0, 0, 30, 70),
            (100, 80, 0, 50, 50, 0, 0, 50),
            (100, 0, 0, -20, 0, 0, 0, 100),
            (0, 10, 10, 10, 0, 0, 0, 0),
        ] as [(Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64)])
    func refund(
        _ points: Int64, _ own: Int64, _ expired: Int64, _ available: Int64, _ fromOwn: Int64, _ fromExpired: Int64,
        _ fromOther: Int64, _ unrecovered: Int64
    ) {
        let split = RefundSources.split(
            Points(points), ownLot: Points(own), expired: Points(expired), available: Points(available))
        #expect(
            [split.fromOwnLot, split.fromExpired, split.fromOtherLots, split.unrecovered]
                == [fromOwn, fromExpired, fromOther, unrecovered].map(Points.init))
        let funders = PostingRules.giveBack(
            split.fromOwnLot + split.fromExpired + split.fromOtherLots,
            funding: [(.issued(Self.merchant), Points(points))], returned: [:], fallback: .issued(Self.merchant))
        let postings = split.postings(member: Self.member, funders: funders)
        #expect(postings.change(of: .member(Self.member)) == Points(-(fromOwn + fromOther)))
        #expect(postings.change(of: .expired) == Points(-fromExpired))
        #expect(postings.change(of: .issued(Self.merchant)) == Points(points - unrecovered))
    }

    /// docs/rules.md, "Who funds each point": base points by the recording merchant, each bonus by
    /// its funder; one line per funder.
    @Test("an earn's points are paid by their funders: base by the merchant, bonuses as the program says")
    func funding() throws {
        let program = try Fixture.program(setting: "earn.funded_by.birthday", to: "hotel-rooms")
        let components = [
            EarnComponent(kind: .base, points: Points(456), description: ""),
            EarnComponent(kind: .tier, ruleID: "gold", points: Points(228), description: ""),
            EarnComponent(kind: .promotion, ruleID: "double-saturday", points: Points(456), description: ""),
            EarnComponent(kind: .crossFormat, points: Points(45), description: ""),
            EarnComponent(kind: .birthday, points: Points(456), description: ""),
            EarnComponent(kind: .streak, points: Points(100), description: ""),
        ]
        let postings = PostingRules.issue(
            member: Self.member, merchant: Self.merchant, components: components, program: program)
        #expect(postings.change(of: .member(Self.member)) == Points(1_741))
        #expect(postings.change(of: .issued(Self.merchant)) == Points(-456))
        #expect(postings.change(of: .bonus(Self.merchant)) == Points(-456))  // the promotion: its merchant
        #expect(postings.change(of: .platformBonus) == Points(-(228 + 45 + 100)))
        #expect(postings.change(of: .bonus(Fixture.rooms)) == Points(-456))
        #expect(postings.lines.count == 5)
        let funding = PostingRules.funding(of: postings.lines, member: Self.member)
        #expect(funding.map(\.points) == [456, 373, 456, 456].map(Points.init))
    }

    /// A refund gives back to each funder in proportion to what it has left; refunds in full give
    /// each exactly what it funded, whatever the order of partial refunds.
    @Test(
        "refunds give back to each funder in proportion, exactly what each funded in the end",
        arguments: [[1, 1], [2], [1, 1, 1, 1], [3, 1], [1, 3], [4]] as [[Int64]])
    func giveBack(_ refunds: [Int64]) {
        // 4 points: 1 base, 1 platform, 2 another merchant's: refunds of `refunds` points.
        let funding: [(account: Account, points: Points)] = [
            (.issued(Self.merchant), Points(1)), (.platformBonus, Points(1)), (.bonus(Fixture.rooms), Points(2)),
        ]
        let total = refunds.reduce(0, +)
        var returned: [Account: Points] = [:]
        for points in refunds {
            let lines = PostingRules.giveBack(
                Points(points), funding: funding, returned: returned, fallback: .issued(Self.merchant))
            #expect(lines.reduce(Points.zero) { $0 + $1.points } == Points(points))
            for line in lines {
                #expect(line.points >= .zero)
                returned[line.account, default: .zero] += line.points
            }
            for funder in funding { #expect((returned[funder.account] ?? .zero) <= funder.points) }
        }
        if total == 4 {
            for funder in funding { #expect(returned[funder.account] == funder.points) }
        }
        // Beyond what the funders paid (an old earn, say), the rest goes to the first.
        let beyond = PostingRules.giveBack(
            Points(6), funding: funding, returned: [:], fallback: .issued(Self.merchant))
        #expect(
            beyond.filter { $0.account == .issued(Self.merchant) }.reduce(Points.zero) { $0 + $1.points } == Points(3))
    }

    @Test("a largest-remainder split sums to its total, none above its weight, ties to the earlier")
    func largestRemainder() {
        #expect(Rounding.largestRemainder(10, weights: [1, 1, 1]) == [4, 3, 3])
        #expect(Rounding.largestRemainder(2, weights: [1, 1, 2]) == [1, 0, 1])
        #expect(Rounding.largestRemainder(4, weights: [1, 1, 2]) == [1, 1, 2])
        #expect(Rounding.largestRemainder(0, weights: [0, 0]) == [0, 0])
        #expect(Rounding.largestRemainder(5, weights: [0, 3]) == [0, 5])
    }

    @Test("a negation cancels exactly")
    func negation() {
        let issue = PostingRules.issue(
            member: Self.member, merchant: Self.merchant,
            components: [EarnComponent(kind: .base, points: Points(250), description: "")], program: Fixture.program)
        let undone = PostingRules.negation(of: issue)
        #expect(undone.change(of: .member(Self.member)) == Points(-250))
        #expect(undone.change(of: .issued(Self.merchant)) == Points(250))
        #expect(Account.offlineRisk(Self.site).key == "offline_risk:mall-01")
    }

    /// DESIGN §6, online redemption: the authorisation decision at its boundaries.
    @Test(
        "an authorisation holds against the balance less other holds plus the site's unacknowledged change",
        arguments: [
            // points, from balance, unacknowledged, already posted → approved, available after, from balance part
            (500, 500, 0, 0, true, 0, 500),
            (501, 500, 0, 0, false, 500, 0),
            // An earn a moment ago counts; the hold keeps only the balance's part from others.
            (700, 500, 300, 0, true, 100, 500),
            // The gateway already posted 200 of those 300 points: only 100 count again.
            (700, 500, 300, 200, false, 600, 0),
            (600, 500, 300, 200, true, 0, 500),
            // A negative change counts as nothing; other holds beyond the balance eat into the
            // unacknowledged points, and the hold then takes nothing from the balance.
            (100, 500, -400, 0, true, 400, 100),
            (100, -50, 120, 0, false, 70, 0),
            (50, -50, 100, 0, true, 0, 0),
        ] as [(Int64, Int64, Int64, Int64, Bool, Int64, Int64)])
    func authorization(_ row: (Int64, Int64, Int64, Int64, Bool, Int64, Int64)) {
        let decision = HoldRules.authorize(
            points: Points(row.0), fromBalance: Points(row.1), unacknowledged: Points(row.2),
            alreadyPosted: Points(row.3))
        #expect(decision.approved == row.4)
        #expect(decision.available == Points(row.5))
        #expect(decision.fromBalancePart == Points(row.6))
    }

    @Test("holds keep their balance part from a member until they expire; the excluded one does not count")
    func heldPoints() {
        let other = MemberID(value: 99)
        let now = Timestamp(milliseconds: 1_000_000)
        func hold(_ id: String, _ member: MemberID, _ points: Int64, expires: Int64) -> HoldRecord {
            HoldRecord(
                holdID: id, member: member, transactionID: "t-\(id)", balancePoints: Points(points),
                expiresAt: Timestamp(milliseconds: expires))
        }
        let holds = [
            hold("a", Self.member, 300, expires: 1_000_001),  // in force
            hold("b", Self.member, 200, expires: 1_000_000),  // expires at this very instant: not in force
            hold("c", Self.member, 50, expires: 2_000_000),  // in force
            hold("d", other, 1_000, expires: 2_000_000),  // another member's
        ]
        #expect(HoldRules.held(holds, member: Self.member, now: now) == Points(350))
        #expect(HoldRules.held(holds, member: Self.member, now: now, excluding: "a") == Points(50))
        #expect(HoldRules.held(holds, member: other, now: now) == Points(1_000))
        #expect(HoldRules.held([], member: other, now: now) == .zero)
    }
}
