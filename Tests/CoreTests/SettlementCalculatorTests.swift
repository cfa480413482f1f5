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
            breakagePrice: Rate(parsing: "1")!)
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

    @Test("a merchant without prices is refused")
    func missingPrices() {
        #expect(throws: CalculationError.self) {
            try SettlementCalculator.settle(
                activities: [MerchantActivity(merchant: Self.fashion, site: Self.mall, issued: Points(1))],
                prices: { _ in nil },
                expired: .zero, breakagePrice: .one)
        }
    }
}
