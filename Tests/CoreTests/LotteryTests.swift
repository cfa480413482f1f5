// Goal (issue #16): a lottery's outcomes are what its published odds say: prizes take consecutive
// ranges of a million tickets from the top prize down, a prize out of stock falls through to the
// next one below with units left, the ends of each range are exact; the program refuses a prize
// worth more than the legal cap (¥50,000 by default) and every other mistake at its key path.
import Core
import Testing

@Suite("Lotteries")
struct LotteryTests {
    static let lotteries: DocumentNode = [
        "items": [
            [
                "id": "draw", "name": "Lucky draw", "cost_points": 200, "per_member_daily_max": 3,
                "start": "2026-11-01", "end": "2027-01-01",
                "prizes": [
                    ["id": "tea", "name": "Tea", "item": "tea", "chance_ppm": 1_000, "stock": 1],
                    ["id": "p300", "name": "300 points", "points": 300, "chance_ppm": 200_000, "stock": 2],
                    ["id": "p50", "name": "50 points", "points": 50, "chance_ppm": 100_000, "stock": 100],
                ],
            ]
        ]
    ]

    static let program = try! ProgramLoader.load(
        Fixture.document.setting("catalog", to: MallTests.catalog).setting("lotteries", to: lotteries))
    static var draw: Lottery { program.lotteries.lottery(LotteryID("draw")!)! }

    @Test("tickets fall in the prizes' ranges from the top prize down, at their exact ends")
    func ranges() {
        let cases: [(Int64, String?)] = [
            (0, "tea"), (999, "tea"), (1_000, "p300"), (200_999, "p300"), (201_000, "p50"), (300_999, "p50"),
            (301_000, nil), (999_999, nil),
        ]
        for (ticket, prize) in cases {
            #expect(
                LotteryDraw.outcome(Self.draw, ticket: ticket, given: [:])?.id.rawValue == prize, "ticket \(ticket)")
        }
        #expect(Self.draw.losingParts == 699_000)
    }

    @Test("a prize out of stock falls through to the next one below it with units left, then to nothing")
    func fallThrough() {
        let tea = PrizeID("tea")!
        let top = PrizeID("p300")!
        let low = PrizeID("p50")!
        #expect(LotteryDraw.outcome(Self.draw, ticket: 5, given: [tea: 1])?.id == top)
        #expect(LotteryDraw.outcome(Self.draw, ticket: 5, given: [tea: 1, top: 2])?.id == low)
        #expect(LotteryDraw.outcome(Self.draw, ticket: 5, given: [tea: 1, top: 2, low: 100]) == nil)
        // Falling through never climbs: a ticket of the lowest prize out of stock wins nothing.
        #expect(LotteryDraw.outcome(Self.draw, ticket: 250_000, given: [low: 100]) == nil)
    }

    @Test("prize values for the cap: an item at its settlement price, points at the highest redeem price, rounded up")
    func values() throws {
        let tea = Self.draw.prizes[0]
        #expect(
            LotteryDraw.value(
                tea, catalog: Self.program.catalog, settlement: Self.program.settlement, sites: Self.program.sites)
                == Money(minorUnits: 12_800))
        let points = Self.draw.prizes[1]
        let value = LotteryDraw.value(
            points, catalog: Self.program.catalog, settlement: Self.program.settlement, sites: Self.program.sites)
        let highest = Self.program.settlement.formatPrices.values.map(\.redeemPrice).max()!
        #expect(value.minorUnits == (300 * highest.micros + 999_999) / 1_000_000)
    }

    static let mistakes: [(change: String, value: DocumentNode?, path: String, words: String)] = [
        ("lotteries.prize_value_max_minor", 12_799, "lotteries.items[0].prizes[0]", "over the cap"),
        ("lotteries.items.0.prizes.0.item", "mug", "lotteries.items[0].prizes[0].item", "issues no voucher"),
        ("lotteries.items.0.prizes.0.item", "caviar", "lotteries.items[0].prizes[0].item", "unknown catalog item"),
        ("lotteries.items.0.prizes.1.item", "tea", "lotteries.items[0].prizes[1]", "either points or a catalog item"),
        ("lotteries.items.0.prizes.1.chance_ppm", 999_500, "lotteries.items[0].prizes", "more than 1000000"),
        ("lotteries.items.0.prizes.1.chance_ppm", 0, "lotteries.items[0].prizes[1].chance_ppm", "between"),
        ("lotteries.items.0.prizes.2.id", "tea", "lotteries.items[0].prizes[2].id", "listed twice"),
        ("lotteries.items.0.prizes", [], "lotteries.items[0].prizes", "1 to 20 prizes"),
        ("lotteries.items.0.end", "2026-10-01", "lotteries.items[0].end", "before or when it starts"),
        ("lotteries.items.0.cost_points", 0, "lotteries.items[0].cost_points", "between"),
        ("lotteries.items.0.per_member_daily_max", nil, "lotteries.items[0].per_member_daily_max", "is required"),
        ("lotteries.items.0.odds", 1, "lotteries.items[0].odds", "unknown key"),
    ]

    @Test("each lottery mistake is reported at its key path", arguments: mistakes.indices)
    func reportsMistake(_ index: Int) {
        let mistake = Self.mistakes[index]
        let document = Fixture.document.setting("catalog", to: MallTests.catalog).setting(
            "lotteries", to: Self.lotteries
        )
        .setting(mistake.change, to: mistake.value)
        Fixture.expectRefused(document, at: mistake.path, saying: mistake.words)
    }
}
