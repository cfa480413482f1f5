// Goal: settlement money is exact — half-even at each line, visible arithmetic — the journal
// balances, and the merchants' nets and the platform's sum to zero.
import Core
import Testing

@Suite("Settlement arithmetic")
struct SettlementCalculatorTests {
    static let fashion = MerchantID("mall-fashion")!
    static let hotel = MerchantID("hotel-rooms")!
    static let mall = SiteID("mall-01")!
    static let hotelSite = SiteID("hotel-01")!

    @Test("hand-computed figures, rounding half to even at each line")
    func figures() throws {
        let activities = [
            // The fashion store issued 1,005 points and took back 0; 845 were spent at the hotel.
            MerchantActivity(merchant: Self.fashion, site: Self.mall, issued: Points(1_005), redeemed: Points(25)),
            MerchantActivity(
                merchant: Self.hotel, site: Self.hotelSite, issued: Points(250), reversed: Points(15),
                redeemed: Points(845), risk: Points(45)),
        ]
        let prices = [
            Self.fashion: SettlementPrices(issuePrice: Rate(parsing: "1.2")!, redeemPrice: Rate(parsing: "1")!),
            Self.hotel: SettlementPrices(issuePrice: Rate(parsing: "1.1")!, redeemPrice: Rate(parsing: "0.9")!),
        ]
        let result = try SettlementCalculator.settle(
            activities: activities, prices: { prices[$0.merchant] }, expired: Points(125),
            breakagePrice: Rate(parsing: "1")!,
            liability: SettlementCalculator.liability([
                LotMovement(price: .one, opening: Points(125), expired: Points(125))
            ]))
        let fashion = try #require(result.merchants.first { $0.activity.merchant == Self.fashion })
        let hotel = try #require(result.merchants.first { $0.activity.merchant == Self.hotel })
        // fashion: payable 1,005 × 1.2 = 1,206.0 → 1,206; receivable 25 × 1 = 25; net 25 − 1,206 = −1,181.
        #expect(fashion.payable.minorUnits == 1_206)
        #expect(fashion.receivable.minorUnits == 25)
        #expect(fashion.net.minorUnits == -1_181)
        // hotel: payable (250 − 15) × 1.1 = 258.5 → 258 (half to even); receivable 845 × 0.9 = 760.5 → 760;
        // risk 45 × 0.9 = 40.5 → 40; net 760 − 258 − 40 = 462.
        #expect(hotel.payable.minorUnits == 258)
        #expect(hotel.receivable.minorUnits == 760)
        #expect(hotel.riskCharge.minorUnits == 40)
        #expect(hotel.net.minorUnits == 462)
        // platform: spread (1,206 + 258) − (25 + 760) = 679; risk 40; net 719; breakage 125 × 1 = 125.
        #expect(result.platform.spread.minorUnits == 679)
        #expect(result.platform.risk.minorUnits == 40)
        #expect(result.platform.net.minorUnits == 719)
        #expect(result.platform.breakage.minorUnits == 125)
        // Nets sum to zero with the platform; the journal balances.
        #expect(result.merchants.reduce(0) { $0 + $1.net.minorUnits } + result.platform.net.minorUnits == 0)
        var debits: [String: Int64] = [:]
        for line in result.journal {
            debits[line.debit, default: 0] += line.amount.minorUnits
            debits[line.credit, default: 0] -= line.amount.minorUnits
        }
        #expect(debits.values.reduce(0, +) == 0)
        #expect(debits["merchant:hotel-rooms"] == -462)
        #expect(result.journalTotals.debits == result.journalTotals.credits)
    }

    /// #13 item 7: an adjustment a merchant funds is part of its payable at its issue price; one the
    /// platform funds is an expense valued at the breakage price, shown, not a cash line.
    @Test("adjustments are charged to their funder: a merchant at its issue price, the platform as an expense")
    func adjustments() throws {
        let result = try SettlementCalculator.settle(
            activities: [
                MerchantActivity(merchant: Self.fashion, site: Self.mall, issued: Points(100), adjusted: Points(11))
            ],
            prices: { _ in SettlementPrices(issuePrice: Rate(parsing: "1.2")!, redeemPrice: .one) },
            expired: .zero, platformAdjusted: Points(7), breakagePrice: Rate(parsing: "1.5")!,
            liability: SettlementCalculator.liability([]))
        // (100 + 11) × 1.2 = 133.2 → 133; 7 × 1.5 = 10.5 → 10 (half to even).
        #expect(result.merchants.first?.payable.minorUnits == 133)
        #expect(result.platform.adjustedPoints == Points(7))
        #expect(result.platform.adjustments.minorUnits == 10)
        #expect(result.platform.net.minorUnits == 133)
        let expense = result.journal.first { $0.debit == "platform:adjustments_expense" }
        #expect(expense?.credit == "platform:points_fund")
        #expect(expense?.amount.minorUnits == 10)
    }

    /// #13 item 12: the liability is valued at what the issuers paid for the very points members
    /// hold, released on redemption and expiry; the margin counts only points redeemed or expired.
    @Test("the liability rolls forward at the issue prices paid, and the margin counts only points released")
    func liabilityRollForward() throws {
        let lots = [
            // Held from before at 1.5 (the jeweller): 1,000, of which 300 redeemed and 101 expired.
            LotMovement(
                price: Rate(parsing: "1.5")!, opening: Points(1_000), redeemed: Points(300), expired: Points(101)),
            // Issued today at 1.2: 333, of which 33 refunded and 1 taken by an operator's debit.
            LotMovement(price: Rate(parsing: "1.2")!, issued: Points(333), reversed: Points(33), adjusted: Points(1)),
            // Given by the platform: no money behind it; 50 redeemed.
            LotMovement(price: .zero, issued: Points(80), redeemed: Points(50)),
        ]
        let liability = SettlementCalculator.liability(lots)
        // opening 1,000 × 1.5 = 1,500; redeemed 300 × 1.5 + 50 × 0 = 450; expired 101 × 1.5 = 151.5 → 152;
        // reversed 33 × 1.2 = 39.6 → 40; adjusted 1 × 1.2 = 1.2 → 1;
        // closing 599 × 1.5 + 299 × 1.2 + 30 × 0 = 898.5 + 358.8 = 1,257.3 → 1,257;
        // issued is the balancing figure: 1,257 − 1,500 + 450 + 152 + 40 + 1 = 400 (333 × 1.2 = 399.6).
        #expect(liability.opening == Valued(points: Points(1_000), minor: Money(minorUnits: 1_500)))
        #expect(liability.redeemed == Valued(points: Points(350), minor: Money(minorUnits: 450)))
        #expect(liability.expired == Valued(points: Points(101), minor: Money(minorUnits: 152)))
        #expect(liability.reversed == Valued(points: Points(33), minor: Money(minorUnits: 40)))
        #expect(liability.adjusted == Valued(points: Points(1), minor: Money(minorUnits: 1)))
        #expect(liability.closing == Valued(points: Points(928), minor: Money(minorUnits: 1_257)))
        #expect(liability.issued == Valued(points: Points(413), minor: Money(minorUnits: 400)))
        let result = try SettlementCalculator.settle(
            activities: [MerchantActivity(merchant: Self.hotel, site: Self.hotelSite, redeemed: Points(350))],
            prices: { _ in SettlementPrices(issuePrice: Rate(parsing: "1.1")!, redeemPrice: .one) },
            expired: Points(101), breakagePrice: .one, liability: liability, breakageReversed: Money(minorUnits: 2))
        // Breakage at the prices paid, less 2 fen a refund took back: 150. Margin: 450 released
        // − 350 paid to the hotel + 0 risk + 150 breakage = 250.
        #expect(result.platform.breakage.minorUnits == 150)
        #expect(result.platform.margin.minorUnits == 250)
    }

    @Test("a merchant without prices is refused")
    func missingPrices() {
        #expect(throws: CalculationError.self) {
            try SettlementCalculator.settle(
                activities: [MerchantActivity(merchant: Self.fashion, site: Self.mall, issued: Points(1))],
                prices: { _ in nil },
                expired: .zero, breakagePrice: .one, liability: SettlementCalculator.liability([]))
        }
    }

    /// DESIGN §7, the tally the store hands to `settle`: which posting line counts as what, for
    /// whom. The lines are as the ledger stores them; no database.
    @Test("posting lines are tallied per merchant: issued, reversed, redeemed, parking, risk, late items, expired")
    func activitiesFromLines() {
        let start = Timestamp(milliseconds: 1_000_000)
        func line(
            _ position: Int64, _ kind: String, _ merchant: String?, _ account: String, _ points: Int64,
            occurred: Int64 = 1_000_500, original: String? = nil
        ) -> SettlementLine {
            SettlementLine(
                position: position, kind: kind, merchant: merchant, occurredAt: Timestamp(milliseconds: occurred),
                originalKind: original, account: account, points: Points(points))
        }
        let lines = [
            // An earn of 500 at the fashion shop, happened before the period (a late item).
            line(1, "earn", "mall-fashion", "issued:mall-fashion", -500, occurred: 999_000),
            line(1, "earn", "mall-fashion", "member:M1", 500, occurred: 999_000),
            // Its refund gives 200 back to the issuer.
            line(2, "reverse", "mall-fashion", "member:M1", -200, original: "earn"),
            line(2, "reverse", "mall-fashion", "issued:mall-fashion", 200, original: "earn"),
            // A redemption at the grocer, 100 of it beyond the member's points.
            line(3, "redeem", "mall-grocer", "member:M1", -300),
            line(3, "redeem", "mall-grocer", "offline_risk:mall-01", -100),
            line(3, "redeem", "mall-grocer", "redeemed:mall-grocer", 400),
            // A parking payment, and the cancellation of another.
            line(4, "parking", "park-operator", "member:M2", -250),
            line(4, "parking", "park-operator", "redeemed:park-operator", 250),
            line(5, "reverse", "park-operator", "redeemed:park-operator", -50, original: "parking"),
            line(5, "reverse", "park-operator", "member:M2", 50, original: "parking"),
            // Expiry, and a merchant the program does not know (ignored).
            line(6, "expire", nil, "member:M3", -70),
            line(6, "expire", nil, "expired", 70),
            line(7, "earn", "elsewhere", "issued:elsewhere", -9),
            // Adjustments: 300 funded by the fashion shop, 40 of them debited back to it; 90 by
            // the platform.
            line(8, "adjust", "mall-fashion", "member:M1", 300),
            line(8, "adjust", "mall-fashion", "issued:mall-fashion", -300),
            line(9, "adjust", "mall-fashion", "member:M1", -40),
            line(9, "adjust", "mall-fashion", "issued:mall-fashion", 40),
            line(10, "adjust", nil, "member:M2", 90),
            line(10, "adjust", nil, "adjustments", -90),
            // An earn at the grocer of 100 base points, a 50-point promotion the jeweller funds
            // and a 30-point tier bonus the platform funds; a refund gives 10 back to the jeweller
            // and 6 to the platform.
            line(11, "earn", "mall-grocer", "member:M4", 180),
            line(11, "earn", "mall-grocer", "issued:mall-grocer", -100),
            line(11, "earn", "mall-grocer", "bonus:mall-jeweller", -50),
            line(11, "earn", "mall-grocer", "platform_bonus", -30),
            line(12, "reverse", "mall-grocer", "member:M4", -16, original: "earn"),
            line(12, "reverse", "mall-grocer", "bonus:mall-jeweller", 10, original: "earn"),
            line(12, "reverse", "mall-grocer", "platform_bonus", 6, original: "earn"),
        ]
        let (activities, expired, platformAdjusted, platformBonus) = SettlementCalculator.activities(
            lines, program: Fixture.program, start: start)
        let byMerchant = Dictionary(uniqueKeysWithValues: activities.map { ($0.merchant.rawValue, $0) })
        #expect(expired == Points(70))
        #expect(byMerchant["mall-fashion"]?.issued == Points(500))
        #expect(byMerchant["mall-fashion"]?.reversed == Points(200))
        #expect(byMerchant["mall-fashion"]?.lateItems == 1)
        #expect(byMerchant["mall-fashion"]?.adjusted == Points(260))
        #expect(platformAdjusted == Points(90))
        #expect(byMerchant["mall-grocer"]?.redeemed == Points(400))
        #expect(byMerchant["mall-grocer"]?.risk == Points(100))
        #expect(byMerchant["mall-grocer"]?.lateItems == 0)
        #expect(byMerchant["park-operator"]?.parking == Points(200))
        #expect(byMerchant["park-operator"]?.redeemed == .zero)
        #expect(byMerchant["elsewhere"] == nil)
        #expect(byMerchant["mall-grocer"]?.issued == Points(100))
        #expect(byMerchant["mall-grocer"]?.bonus == .zero)
        #expect(byMerchant["mall-jeweller"]?.bonus == Points(50))
        #expect(byMerchant["mall-jeweller"]?.reversed == Points(10))
        #expect(byMerchant["mall-jeweller"]?.issued == .zero)
        #expect(platformBonus == Points(24))
        // Every merchant of the program has a line, active or not.
        #expect(activities.count == Fixture.program.sites.flatMap(\.merchants).count)
    }
}
