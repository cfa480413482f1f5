// Goal (#18): the program's allowance and promotion-quota keys load as written and every mistake
// is named at its key; an allowance's terms and its lease's two ends follow docs/rules.md
// ("Allowances") at each boundary; a promotion's quotas sum to its remaining budget, exactly,
// whatever the uses (docs/rules.md, "Promotion quotas").
import Core
import Testing

@Suite("Allowance rules and promotion quotas")
struct AllowanceRulesTests {
    static let section: DocumentNode = [
        "clock_skew_max_minutes": 10, "reclaim_margin_minutes": 30, "unheard_reclaim_hours": 72,
        "formats": [
            "parking": ["trigger": "entry", "points_max": 6000, "lease_minutes": 1440],
            "hotel": ["trigger": "check_in", "points_max": 20000, "lease_minutes": 4320],
        ],
    ]
    static let program: Program = {
        do {
            return try ProgramLoader.load(
                Fixture.document.setting("allowances", to: section)
                    .setting("promotion_quotas", to: ["history_days": 14, "floor_points": 250]))
        } catch {
            preconditionFailure("the fixture with allowances does not load: \(error)")
        }
    }()
    static var park: Site { program.site(SiteID("park-01")!)! }
    static var hotel: Site { program.site(SiteID("hotel-01")!)! }
    static var mall: Site { program.site(SiteID("mall-01")!)! }
    static let now = Timestamp(milliseconds: 1_795_000_000_000)
    static let minute: Int64 = 60_000

    @Test("the sections load as written; without them, no allowances and the default quotas")
    func loads() {
        let rules = Self.program.allowances
        #expect(rules.clockSkewMaxMinutes == 10)
        #expect(rules.reclaimMarginMinutes == 30)
        #expect(rules.unheardReclaimHours == 72)
        #expect(
            rules.rule(for: Self.park) == AllowanceRule(trigger: .entry, pointsMax: Points(6000), leaseMinutes: 1440))
        #expect(rules.rule(for: Self.hotel)?.trigger == .checkIn)
        #expect(rules.rule(for: Self.mall) == nil)
        #expect(Self.program.promotionQuotas == PromotionQuotaRules(historyDays: 14, floorPoints: Points(250)))
        #expect(Fixture.program.allowances == .none)
        #expect(Fixture.program.promotionQuotas == .defaults)
    }

    static let mistakes: [(change: String, value: DocumentNode?, path: String, words: String)] = [
        ("reclaim_margin_minutes", 10, "allowances.reclaim_margin_minutes", "more than clock_skew_max_minutes (10)"),
        ("unheard_reclaim_hours", 0, "allowances.unheard_reclaim_hours", "between 1 and"),
        ("reclaim_margin_minutes", 4_320, "allowances.unheard_reclaim_hours", "longer than reclaim_margin_minutes"),
        (
            "formats.cinema", ["trigger": "operator", "points_max": 1, "lease_minutes": 60],
            "allowances.formats.cinema",
            "not the format of any site"
        ),
        ("formats.hotel.trigger", "entry", "allowances.formats.hotel.trigger", "needs every site of format 'hotel'"),
        ("formats.hotel.trigger", "arrival", "allowances.formats.hotel.trigger", "is not a trigger"),
        ("formats.parking.lease_minutes", 20, "allowances.formats.parking.lease_minutes", "more than twice"),
        ("formats.parking.lease_minutes", 5, "allowances.formats.parking.lease_minutes", "between 10 and"),
        ("formats.parking.points_max", 1_000_001, "allowances.formats.parking.points_max", "between 1 and 1000000"),
        ("formats.parking.points_max", nil, "allowances.formats.parking.points_max", "is required"),
        ("formats.parking.spend", 1, "allowances.formats.parking.spend", "unknown key"),
        ("clock_skew_max_minutes", 1_441, "allowances.clock_skew_max_minutes", "between 0 and 1440"),
    ]

    @Test("each mistake is reported at its key path", arguments: mistakes.indices)
    func reportsMistake(_ index: Int) {
        let mistake = Self.mistakes[index]
        let document = Fixture.document.setting(
            "allowances", to: Self.section.setting(mistake.change, to: mistake.value))
        Fixture.expectRefused(document, at: mistake.path, saying: mistake.words)
    }

    @Test("promotion_quotas: both keys required, each within its range")
    func quotaMistakes() {
        for (section, path) in [
            (["history_days": 0, "floor_points": 1] as DocumentNode, "promotion_quotas.history_days"),
            (["history_days": 7, "floor_points": -1], "promotion_quotas.floor_points"),
            (["history_days": 7], "promotion_quotas.floor_points"),
        ] {
            do {
                _ = try ProgramLoader.load(Fixture.document.setting("promotion_quotas", to: section))
                Issue.record("\(section) loaded")
            } catch {
                #expect(error.errors.contains { $0.path == path }, "\(error)")
            }
        }
    }

    @Test("an allowance's points: the rule's maximum, never more than the member has, at most what is asked")
    func points() throws {
        let rules = Self.program.allowances
        let full = rules.terms(at: Self.park, trigger: .entry, available: Points(10_000), now: Self.now)
        #expect(try full.get().points == Points(6000))
        #expect(try full.get().leaseUntil == Timestamp(milliseconds: Self.now.milliseconds + 1440 * Self.minute))
        let some = rules.terms(at: Self.park, trigger: .entry, available: Points(2_500), now: Self.now)
        #expect(try some.get().points == Points(2500))
        let asked = rules.terms(
            at: Self.park, trigger: .operatorOnly, available: Points(2_500), points: Points(2_500), now: Self.now)
        #expect(try asked.get().points == Points(2500))
        #expect(
            rules.terms(
                at: Self.park, trigger: .operatorOnly, available: Points(2_500), points: Points(2_501), now: Self.now)
                == .failure(.tooManyPoints(asked: Points(2501), allowed: Points(2500))))
        #expect(
            rules.terms(
                at: Self.park, trigger: .operatorOnly, available: Points(9_000), points: Points(6_001), now: Self.now)
                == .failure(.tooManyPoints(asked: Points(6001), allowed: Points(6000))))
        #expect(
            rules.terms(
                at: Self.park, trigger: .operatorOnly, available: Points(9_000), points: Points(0), now: Self.now)
                == .failure(.tooManyPoints(asked: Points(0), allowed: Points(6000))))
        #expect(
            rules.terms(at: Self.park, trigger: .entry, available: .zero, now: Self.now) == .failure(.nothingAvailable))
        #expect(
            rules.terms(at: Self.park, trigger: .entry, available: Points(-5), now: Self.now)
                == .failure(.nothingAvailable))
    }

    @Test("an allowance only where the format has a rule, on its trigger or an operator's call")
    func triggers() {
        let rules = Self.program.allowances
        #expect(
            rules.terms(at: Self.mall, trigger: .operatorOnly, available: Points(100), now: Self.now)
                == .failure(.noRule(Format("mall")!)))
        #expect(
            rules.terms(at: Self.park, trigger: .checkIn, available: Points(100), now: Self.now)
                == .failure(.wrongTrigger(expected: .entry)))
        #expect(
            (try? rules.terms(at: Self.hotel, trigger: .checkIn, available: Points(100), now: Self.now).get()) != nil)
        #expect(
            (try? rules.terms(at: Self.hotel, trigger: .operatorOnly, available: Points(100), now: Self.now).get())
                != nil)
        #expect(AllowanceRefusal.noRule(Format("mall")!).message.contains("allowances.formats.mall"))
    }

    @Test("a lease ends after the skew from now and no later than the rule's: each boundary")
    func leaseBoundaries() {
        let rules = Self.program.allowances
        func lease(_ milliseconds: Int64) -> Result<AllowanceTerms, AllowanceRefusal> {
            rules.terms(
                at: Self.park, trigger: .operatorOnly, available: Points(100),
                leaseUntil: Timestamp(milliseconds: Self.now.milliseconds + milliseconds), now: Self.now)
        }
        #expect(throws: AllowanceRefusal.self) { try lease(-1).get() }  // in the past
        #expect(throws: AllowanceRefusal.self) { try lease(10 * Self.minute).get() }  // within the skew
        #expect((try? lease(10 * Self.minute + 1).get()) != nil)
        #expect((try? lease(1440 * Self.minute).get()) != nil)
        #expect(throws: AllowanceRefusal.self) { try lease(1440 * Self.minute + 1).get() }
    }

    @Test(
        "the site stops the skew early; the gateway reclaims after the margin once the site caught up, or after the unheard hours"
    )
    func leaseEnds() {
        let rules = Self.program.allowances
        let end = Timestamp(milliseconds: Self.now.milliseconds + 1440 * Self.minute)
        #expect(rules.edgeStop(leaseUntil: end).milliseconds == end.milliseconds - 10 * Self.minute)
        func at(_ offset: Int64) -> Timestamp { Timestamp(milliseconds: end.milliseconds + offset) }
        let margin = 30 * Self.minute
        #expect(!rules.mayReclaim(leaseUntil: end, caughtUpAt: at(0), now: at(margin - 1)))
        #expect(rules.mayReclaim(leaseUntil: end, caughtUpAt: at(0), now: at(margin)))
        // Caught up only before the lease ended: a spend may still be on its way.
        #expect(!rules.mayReclaim(leaseUntil: end, caughtUpAt: at(-1), now: at(margin)))
        #expect(!rules.mayReclaim(leaseUntil: end, caughtUpAt: nil, now: at(72 * 60 * Self.minute - 1)))
        #expect(rules.mayReclaim(leaseUntil: end, caughtUpAt: nil, now: at(72 * 60 * Self.minute)))
        #expect(rules.mayReclaim(leaseUntil: end, caughtUpAt: at(-1), now: at(72 * 60 * Self.minute)))
    }

    static func site(_ name: String) -> SiteID { SiteID(name)! }

    @Test("quotas: the floor first, the rest by use, rounding down, remainders to the largest")
    func quotaExamples() {
        let (a, b, c) = (Self.site("a-01"), Self.site("b-01"), Self.site("c-01"))
        // 1,000 left, floor 100: 700 shared 1:2:4 → 100, 200, 400 exactly.
        #expect(
            PromotionQuotas.split(remaining: Points(1_000), uses: [a: 1, b: 2, c: 4], floor: Points(100))
                == [a: Points(200), b: Points(300), c: Points(500)])
        // 10 left, no floor, uses 5:1:0 → 8.33, 1.67, 0 → 8, 1, 0 and the point left to the
        // largest remainder (b's).
        #expect(
            PromotionQuotas.split(remaining: Points(10), uses: [a: 5, b: 1, c: 0], floor: .zero)
                == [a: Points(8), b: Points(2), c: .zero])
        // 100 shared after floors 1:1:1 → 33 each, the one left by the larger use, then the smaller id.
        #expect(
            PromotionQuotas.split(remaining: Points(130), uses: [a: 3, b: 3, c: 3], floor: Points(10))
                == [a: Points(44), b: Points(43), c: Points(43)])
        // Not enough for every floor (3 × 50 > 100): equal shares.
        #expect(
            PromotionQuotas.split(remaining: Points(100), uses: [a: 0, b: 9, c: 1], floor: Points(50))
                == [a: Points(33), b: Points(34), c: Points(33)])
        // Exactly enough for the floors.
        #expect(
            PromotionQuotas.split(remaining: Points(150), uses: [a: 0, b: 9, c: 1], floor: Points(50))
                == [a: Points(50), b: Points(50), c: Points(50)])
        // No use anywhere: the rest shared equally.
        #expect(
            PromotionQuotas.split(remaining: Points(160), uses: [a: 0, b: 0], floor: Points(50))
                == [a: Points(80), b: Points(80)])
        #expect(PromotionQuotas.split(remaining: .zero, uses: [a: 1], floor: Points(50)) == [a: .zero])
        #expect(PromotionQuotas.split(remaining: Points(-7), uses: [a: 1], floor: .zero) == [a: .zero])
        #expect(PromotionQuotas.split(remaining: Points(99), uses: [:], floor: .zero).isEmpty)
    }

    @Test("quotas sum to the remaining budget, give every floor they can, and follow use, for any uses")
    func quotaProperties() {
        var generator = SplitMix(seed: 18)
        for round in 0..<2_000 {
            let count = 1 + Int(generator.next() % 12)
            var uses: [SiteID: Int64] = [:]
            for index in 0..<count {
                let use: Int64 =
                    switch generator.next() % 4 {
                    case 0: 0
                    case 1: Int64(generator.next() % 10)
                    case 2: Int64(generator.next() % 1_000_000)
                    default:
                        round % 50 == 0 ? Int64.max - Int64(generator.next() % 1_000) : Int64(generator.next() % 1_000)
                    }
                uses[SiteID("s-\(index)")!] = use
            }
            let remaining = Points(Int64(generator.next() % 1_000_000_000_000))
            let floor = Points(Int64(generator.next() % 100_000))
            let quotas = PromotionQuotas.split(remaining: remaining, uses: uses, floor: floor)
            #expect(Set(quotas.keys) == Set(uses.keys))
            #expect(quotas.values.reduce(Int64(0)) { $0 + $1.value } == remaining.value, "round \(round)")
            #expect(quotas.values.allSatisfy { $0.value >= 0 })
            if floor.value * Int64(count) <= remaining.value {
                #expect(quotas.values.allSatisfy { $0 >= floor }, "round \(round)")
            }
            // More use never gets less quota.
            let sorted = uses.sorted { $0.value < $1.value }
            for (lower, higher) in zip(sorted, sorted.dropFirst()) where lower.value < higher.value {
                #expect(quotas[lower.key]!.value <= quotas[higher.key]!.value + 1, "round \(round)")
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failing round replays.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension AllowanceRulesTests {
    @Test("the home site: the most earns, ties to the first site id, only where the format grants on home_site")
    func homeSites() throws {
        let program = Fixture.program
        let member = try #require(MemberID("01JAAAAAAAAAAAAAAAAAAAAAAA"))
        let (hotel, mall) = (SiteID(unchecked: "hotel-01"), SiteID(unchecked: "mall-01"))
        // No format grants on home_site: nobody gets one.
        #expect(program.allowances.homeSites([member: [hotel: 3, mall: 1]], program: program).isEmpty)
        var rules = program.allowances
        rules.formats[Format(unchecked: "hotel")] = AllowanceRule(
            trigger: .homeSite, pointsMax: Points(100), leaseMinutes: 60)
        // Most earns at the mall, whose format has no such rule: none.
        #expect(rules.homeSites([member: [hotel: 1, mall: 2]], program: program).isEmpty)
        // A tie goes to the first site id (hotel-01), as do more earns.
        #expect(rules.homeSites([member: [hotel: 2, mall: 2]], program: program).map(\.1) == [hotel])
        #expect(rules.homeSites([member: [hotel: 3, mall: 2]], program: program).map(\.1) == [hotel])
        #expect(rules.homeSites([:], program: program).isEmpty)
    }
}
