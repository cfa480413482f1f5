// Goal (#18): quotas issued by `PromotionQuotas.plan`, as the gateway issues them at each pull and
// honest edges spend them, never add up to more than a promotion's budget, whatever the order of
// earns, pushes and pulls and however many answers are lost; an honest edge never gives a bonus
// the gateway would have to cut (docs/protocol.md, "Promotion quotas").
import Core
import Testing

@Suite("Promotion quota issues")
struct PromotionQuotaIssueTests {
    static let dinner = PromotionID(unchecked: "quay-dinner")
    static let sites = ["mall-01", "hotel-01", "park-01"].map { SiteID(unchecked: $0) }
    static let now = Timestamp(milliseconds: 1_795_000_000_000)  // 2026-11-18, within the promotion

    /// The fixture with the dinner bonus reaching every site, `budget` in all.
    static func program(budget: Int64, floor: Int64 = 50) -> Program {
        var program = Fixture.program
        let index = program.earn.promotions.firstIndex { $0.id == dinner }!
        program.earn.promotions[index].filter = .any
        program.earn.promotions[index].budget = Points(budget)
        program.promotionQuotas = PromotionQuotaRules(historyDays: 7, floorPoints: Points(floor))
        return program
    }

    /// The gateway's side: holdings, bonus posted, each site's high-water mark.
    struct Gateway {
        var holdings: [SiteID: QuotaHolding] = [:]
        var given = Points.zero
        var highWater: [SiteID: Int64] = [:]
        var use: [SiteID: Int64] = [:]
    }

    /// An honest edge: its quota, its bonuses by sequence, what it pushed.
    struct Edge {
        var quota = Points.zero
        var asOf: Int64 = 0
        var issue: Int64 = 0
        var appliedAt: Int64 = 0
        var bonuses: [Int64] = []  // index + 1 is the sequence
        var pushed: Int64 = 0

        var left: Points {
            Points(max(0, quota.value - bonuses.dropFirst(Int(asOf)).reduce(0, +)))
        }
        var total: Int64 { bonuses.reduce(0, +) }
    }

    @Test("a site's first pull gets its share; one that gives nothing returns its quota to the pool")
    func shares() throws {
        let program = Self.program(budget: 900, floor: 0)
        let (mall, hotel) = (Self.sites[0], Self.sites[1])
        let plan = try #require(
            PromotionQuotas.plan(
                program: program, site: mall, now: Self.now, given: [:], holdings: [:], uses: [:], highWater: 0,
                heldIssue: 0, appliedAt: 0))
        // No use yet: the 900 shared equally over the three sites.
        #expect(plan.quotas == [Self.dinner: Points(300)])
        #expect(plan.issue == 1)
        #expect(
            plan.holdings[Self.dinner] == QuotaHolding(given: .zero, held: Points(300), issued: Points(300), issue: 1))
        // The hotel has used it all (600 given over the week), the mall none: the hotel's next
        // share is by use, but the mall still holds 300 until it says it holds its quota.
        var holdings: [PromotionID: [SiteID: QuotaHolding]] = [
            Self.dinner: [
                mall: plan.holdings[Self.dinner]!,
                hotel: QuotaHolding(given: Points(300), held: Points(300), issued: Points(300), issue: 1),
            ]
        ]
        let hotelPlan = try #require(
            PromotionQuotas.plan(
                program: program, site: hotel, now: Self.now, given: [Self.dinner: Points(300)], holdings: holdings,
                uses: [Self.dinner: [hotel: 300]], highWater: 4, heldIssue: 1, appliedAt: 4))
        // 600 left, all of it the hotel's share by use; 300 reserved for the mall: 300.
        #expect(hotelPlan.quotas == [Self.dinner: Points(300)])
        holdings[Self.dinner]![hotel] = hotelPlan.holdings[Self.dinner]!
        // The mall says it holds issue 1, applied at sequence 0 which the gateway has: its target
        // is 0 (no use), so its reservation goes back; its held becomes what it was issued last.
        let mallPlan = try #require(
            PromotionQuotas.plan(
                program: program, site: mall, now: Self.now, given: [Self.dinner: Points(300)], holdings: holdings,
                uses: [Self.dinner: [hotel: 300]], highWater: 0, heldIssue: 1, appliedAt: 0))
        #expect(mallPlan.quotas == [Self.dinner: .zero])
        // Still held at 300 until the mall confirms this issue (it may not get the answer).
        #expect(mallPlan.holdings[Self.dinner]?.held == Points(300))
        let confirmed = PromotionQuotas.confirmed(
            mallPlan.holdings[Self.dinner]!, heldIssue: 2, appliedAt: 0, highWater: 0)
        #expect(confirmed.held == .zero)
        // Not confirmed while a transaction sent before the issue was applied is still on its way.
        #expect(
            PromotionQuotas.confirmed(mallPlan.holdings[Self.dinner]!, heldIssue: 2, appliedAt: 3, highWater: 2)
                == mallPlan.holdings[Self.dinner]!)
        // Nor for an older issue than the last.
        #expect(
            PromotionQuotas.confirmed(mallPlan.holdings[Self.dinner]!, heldIssue: 1, appliedAt: 0, highWater: 0)
                == mallPlan.holdings[Self.dinner]!)
    }

    @Test("a pull that changes no holding is the same issue again; a promotion no longer in the program is left aside")
    func unchangedIssue() throws {
        let program = Self.program(budget: 900, floor: 0)
        let mall = Self.sites[0]
        let first = try #require(
            PromotionQuotas.plan(
                program: program, site: mall, now: Self.now, given: [:], holdings: [:], uses: [:], highWater: 0,
                heldIssue: 0, appliedAt: 0))
        // Stored, with a row of a promotion the program no longer has.
        var current = first.holdings
        current[PromotionID(unchecked: "old-offer")] = QuotaHolding(given: Points(10), held: Points(50), issue: 0)
        let again = try #require(
            PromotionQuotas.plan(
                program: program, site: mall, now: Self.now, given: [:], holdings: current.mapValues { [mall: $0] },
                uses: [:], highWater: 3, heldIssue: 1, appliedAt: 0))
        #expect(again.issue == 2)
        let same = try #require(again.unchanged(from: current))
        #expect(same.issue == 1 && same.quotas == [Self.dinner: Points(300)])
        #expect(same.holdings == first.holdings)
        // A bonus posted since changes the holding: a new issue is written.
        var given = current
        given[Self.dinner]?.given = Points(150)
        let after = try #require(
            PromotionQuotas.plan(
                program: program, site: mall, now: Self.now, given: [Self.dinner: Points(150)],
                holdings: given.mapValues { [mall: $0] }, uses: [Self.dinner: [mall: 150]], highWater: 3, heldIssue: 1,
                appliedAt: 0))
        #expect(after.unchanged(from: given) == nil)
    }

    @Test("an ended promotion issues no quota, and a site it does not reach gets none")
    func endedAndUnreached() throws {
        var program = Self.program(budget: 900)
        let plan = try #require(
            PromotionQuotas.plan(
                program: program, site: Self.sites[0], now: Timestamp(milliseconds: 1_796_083_200_000), given: [:],
                holdings: [:], uses: [:], highWater: 0, heldIssue: 0, appliedAt: 0))
        #expect(plan.quotas == [Self.dinner: .zero])
        let index = program.earn.promotions.firstIndex { $0.id == Self.dinner }!
        program.earn.promotions[index].filter.merchants = [MerchantID(unchecked: "hotel-restaurant")]
        #expect(
            PromotionQuotas.plan(
                program: program, site: Self.sites[0], now: Self.now, given: [:], holdings: [:], uses: [:],
                highWater: 0, heldIssue: 0, appliedAt: 0) == nil)
    }

    @Test(
        "honest edges never give more than their holding, and all together never more than the budget",
        arguments: 0..<40)
    func protocolHolds(seed: Int) throws {
        var generator = SplitMix(seed: UInt64(seed) &+ 1_800)
        let budget = Int64(200 + generator.next() % 3_000)
        let program = Self.program(budget: budget, floor: Int64(generator.next() % 200))
        var gateway = Gateway()
        var edges = Dictionary(uniqueKeysWithValues: Self.sites.map { ($0, Edge()) })
        for step in 0..<600 {
            let site = Self.sites[Int(generator.next() % UInt64(Self.sites.count))]
            var edge = edges[site]!
            switch generator.next() % 10 {
            case 0...4:
                // An earn: the bonus wanted, or the part of it the quota has left.
                let wanted = Int64(1 + generator.next() % 150)
                edge.bonuses.append(min(wanted, edge.left.value))
            case 5, 6:
                // A push of some of what is waiting; the gateway posts each bonus, which must fit
                // the site's holding (an honest edge is never cut).
                let waiting = Int64(edge.bonuses.count) - edge.pushed
                guard waiting > 0 else { break }
                let count = 1 + Int64(generator.next() % UInt64(waiting))
                for sequence in (edge.pushed + 1)...(edge.pushed + count) {
                    let bonus = edge.bonuses[Int(sequence - 1)]
                    var holding = gateway.holdings[site] ?? QuotaHolding()
                    #expect(
                        bonus <= holding.outstanding.value,
                        "seed \(seed) step \(step): \(site) gave \(bonus) with \(holding.outstanding) outstanding")
                    holding.given += Points(bonus)
                    gateway.holdings[site] = holding
                    gateway.given += Points(bonus)
                    gateway.use[site, default: 0] += bonus
                }
                edge.pushed += count
                gateway.highWater[site] = edge.pushed
            default:
                // A pull: the gateway issues; one answer in four is lost on its way.
                let plan = try #require(
                    PromotionQuotas.plan(
                        program: program, site: site, now: Self.now, given: [Self.dinner: gateway.given],
                        holdings: [Self.dinner: gateway.holdings], uses: [Self.dinner: gateway.use],
                        highWater: gateway.highWater[site] ?? 0, heldIssue: edge.issue, appliedAt: edge.appliedAt))
                gateway.holdings[site] = plan.holdings[Self.dinner]
                if generator.next() % 4 != 0 {
                    edge.quota = plan.quotas[Self.dinner] ?? .zero
                    edge.asOf = gateway.highWater[site] ?? 0
                    edge.issue = plan.issue
                    edge.appliedAt = Int64(edge.bonuses.count)
                }
            }
            edges[site] = edge
            let reserved = gateway.holdings.values.reduce(Int64(0)) { $0 + $1.outstanding.value }
            #expect(
                gateway.given.value + reserved <= budget,
                "seed \(seed) step \(step): \(gateway.given) given and \(reserved) reserved of \(budget)")
            for (id, edge) in edges {
                #expect(
                    edge.total <= (gateway.holdings[id]?.held.value ?? 0),
                    "seed \(seed) step \(step): \(id) gave \(edge.total), holds \(gateway.holdings[id]?.held ?? .zero)")
            }
            #expect(edges.values.reduce(0) { $0 + $1.total } <= budget)
        }
        // The budget is used: the bonuses given come near it once pulls have spread it.
        #expect(edges.values.reduce(0) { $0 + $1.total } > 0, "seed \(seed): no bonus given")
    }
}
