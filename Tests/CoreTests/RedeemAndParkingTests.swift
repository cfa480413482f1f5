// Goal: redemption and parking give the business's numbers (100 points = ¥1, minimum 500, at most
// 50 % of a bill; ¥10 per started hour, ¥60 a day, 2 free hours for gold) and round where
// docs/rules.md says: points never buy a fraction of a fen, a fee is always covered.
import Core
import Testing

@Suite("Redeem calculator")
struct RedeemCalculatorTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var bill: Money
        var lines: [SaleLine] = []
        var requested: Int64
        var available: Int64
        var points: Int64
        var value: Int64
        var maxPoints: Int64
        var refusal: Refusal? = nil
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "100 points pay ¥1", bill: Fixture.yuan(100), requested: 1000, available: 5000, points: 1000,
            value: 1000, maxPoints: 5000),
        Case(
            name: "0 asks for the most: half the bill", bill: Fixture.yuan(100), requested: 0, available: 100_000,
            points: 5000, value: 5000, maxPoints: 5000),
        Case(
            name: "0 asks for the most: the whole balance", bill: Fixture.yuan(100), requested: 0, available: 3000,
            points: 3000, value: 3000, maxPoints: 3000),
        Case(
            name: "exactly half the bill is allowed", bill: Fixture.yuan(100), requested: 5000, available: 9000,
            points: 5000, value: 5000, maxPoints: 5000),
        Case(
            name: "one point over half the bill is refused", bill: Fixture.yuan(100), requested: 5001, available: 9000,
            points: 0, value: 0, maxPoints: 5000, refusal: .overBillShare),
        Case(
            name: "half of an odd bill rounds down", bill: Fixture.fen(9999), requested: 0, available: 9000,
            points: 4999, value: 4999, maxPoints: 4999),
        Case(
            name: "more than the balance is refused", bill: Fixture.yuan(100), requested: 2000, available: 1999,
            points: 0, value: 0, maxPoints: 1999, refusal: .insufficientPoints),
        Case(
            name: "the minimum is allowed", bill: Fixture.yuan(100), requested: 500, available: 5000, points: 500,
            value: 500, maxPoints: 5000),
        Case(
            name: "below the minimum is refused", bill: Fixture.yuan(100), requested: 499, available: 5000, points: 0,
            value: 0, maxPoints: 5000, refusal: .belowMinimum),
        Case(
            name: "a balance below the minimum cannot redeem", bill: Fixture.yuan(100), requested: 0, available: 300,
            points: 0, value: 0, maxPoints: 300, refusal: .insufficientPoints),
        Case(
            name: "a bill too small for the minimum", bill: Fixture.yuan(9), requested: 0, available: 5000, points: 0,
            value: 0, maxPoints: 450, refusal: .belowMinimum),
        Case(
            name: "excluded lines do not count towards the share", bill: Fixture.yuan(100),
            lines: [Fixture.line("tobacco", 5000), Fixture.line("apparel", 5000)], requested: 0, available: 9000,
            points: 2500, value: 2500, maxPoints: 2500),
        Case(
            name: "a bill of excluded lines only is refused", bill: Fixture.yuan(100),
            lines: [Fixture.line("gift-cards", 10_000)],
            requested: 500, available: 9000, points: 0, value: 0, maxPoints: 0, refusal: .excludedCategory),
    ]

    @Test("redeem rules with the business's numbers", arguments: cases)
    func redeems(_ c: Case) throws {
        let quote = try RedeemCalculator.quote(
            program: Fixture.program,
            input: RedeemInput(
                merchant: Fixture.mall, bill: c.bill, lines: c.lines, requestedPoints: Points(c.requested),
                availablePoints: Points(c.available)))
        #expect(quote.points.value == c.points)
        #expect(quote.value.minorUnits == c.value)
        #expect(quote.remainingDue == c.bill - Money(minorUnits: c.value))
        #expect(quote.maxPoints.value == c.maxPoints)
        #expect(quote.refusal == c.refusal)
        #expect(quote.allowed == (c.refusal == nil))
        if c.refusal != nil { #expect(!quote.message.isEmpty) }
    }

    @Test("with 3 points = 2 fen, points that would buy a fraction of a fen are not taken")
    func normalisesFractions() throws {
        let program = try Fixture.program(setting: "redeem.point_value", to: ["points": 3, "money_minor": 2])
            .withMinimum(1)
        let quote = try RedeemCalculator.quote(
            program: program,
            input: RedeemInput(
                merchant: Fixture.mall, bill: Fixture.yuan(100), requestedPoints: Points(100),
                availablePoints: Points(1000)))
        // 100 points are worth 66.67 fen: the value rounds down to 66 fen, which 99 points buy.
        #expect(quote.value == Money(minorUnits: 66))
        #expect(quote.points == Points(99))
        #expect(RedeemCalculator.pointsCovering(Money(minorUnits: 1), program.redeem) == Points(2))
        #expect(RedeemCalculator.pointsBuying(Money(minorUnits: 1), program.redeem) == Points(1))
    }

    @Test(
        "bad input is refused with the field named",
        arguments: [
            (Fixture.fen(0), Int64(500), "bill"), (Fixture.fen(-1), Int64(500), "bill"),
            (Fixture.yuan(100), Int64(-1), "points"), (Fixture.yuan(100), Int64(1_000_001), "points"),
        ])
    func refusesBadInput(_ bill: Money, _ points: Int64, _ field: String) {
        #expect {
            try RedeemCalculator.quote(
                program: Fixture.program,
                input: RedeemInput(
                    merchant: Fixture.mall, bill: bill, requestedPoints: Points(points), availablePoints: Points(9000)))
        } throws: { ($0 as? CalculationError)?.field == field }
    }
}

@Suite("Parking calculator")
struct ParkingCalculatorTests {
    static let park = SiteID("park-01")!
    static let entry = Fixture.at("2026-11-24T10:00")

    static func quote(minutes: Int64, seconds: Int64 = 0, tier: TierID?, used: Int = 0) throws -> ParkingQuote {
        try ParkingCalculator.quote(
            program: Fixture.program,
            input: ParkingInput(
                site: park, entry: entry, exit: entry.adding(milliseconds: minutes * Timestamp.minute + seconds * 1000),
                tier: tier, freeMinutesUsedToday: used))
    }

    @Test(
        "tariffs with the business's numbers",
        arguments: [
            // (minutes, extra seconds, tier, used today, charged minutes, fee in fen)
            (180, 0, "gold", 0, 60, 1000),  // 3 h with 2 h free for gold: 1 hour
            (180, 0, "member", 0, 180, 3000),
            (180, 0, "silver", 0, 120, 2000),
            (180, 0, nil, 0, 180, 3000),  // not a member
            (15, 0, nil, 0, 0, 0),  // within grace
            (15, 1, nil, 0, 16, 1000),  // one second past grace: 16 started minutes, 1 started hour
            (60, 0, nil, 0, 60, 1000),
            (61, 0, nil, 0, 61, 2000),  // a started hour is a whole hour
            (600, 0, nil, 0, 600, 6000),  // 10 hours capped at ¥60
            (1500, 0, nil, 0, 1500, 7000),  // 25 hours: a capped day and one hour
            (2880, 0, nil, 0, 2880, 12000),  // two capped days
            (180, 0, "gold", 90, 150, 3000),  // 30 free minutes left today
            (100, 0, "gold", 0, 0, 0),  // free minutes cover the stay
        ] as [(Int64, Int64, String?, Int, Int64, Int64)])
    func tariffs(_ minutes: Int64, _ seconds: Int64, _ tier: String?, _ used: Int, _ charged: Int64, _ fee: Int64)
        throws
    {
        let quote = try Self.quote(minutes: minutes, seconds: seconds, tier: tier.flatMap(TierID.init), used: used)
        #expect(quote.chargedMinutes == charged)
        #expect(quote.fee == Money(minorUnits: fee))
        #expect(quote.pointsForFullFee == Points(fee))  // 100 points = ¥1 means 1 point per fen
    }

    @Test("points for a fee round up so the fee is covered")
    func pointsRoundUp() throws {
        let program = try Fixture.program(setting: "redeem.point_value", to: ["points": 1, "money_minor": 100])
        let quote = try ParkingCalculator.quote(
            program: program,
            input: ParkingInput(
                site: Self.park, entry: Self.entry, exit: Self.entry.adding(milliseconds: 90 * Timestamp.minute),
                tier: nil))
        #expect(quote.fee == Money(minorUnits: 2000))
        #expect(quote.pointsForFullFee == Points(20))
        let cheap = try Fixture.program(setting: "sites.2.parking.price_per_hour_minor", to: 150)
            .replacingRedeem(with: program.redeem)
        let odd = try ParkingCalculator.quote(
            program: cheap,
            input: ParkingInput(
                site: Self.park, entry: Self.entry, exit: Self.entry.adding(milliseconds: 30 * Timestamp.minute),
                tier: nil))
        #expect(odd.fee == Money(minorUnits: 150))
        #expect(odd.pointsForFullFee == Points(2))  // 1.5 points round up to 2
        let paid = try ParkingCalculator.pay(program: cheap, quote: odd, points: Points(2), available: Points(10)).get()
        #expect(paid.pointsValue == Money(minorUnits: 150))  // never more than the fee
        #expect(paid.amountDue == .zero)
    }

    @Test("paying with points, in full, in part, or without enough")
    func pays() throws {
        let quote = try Self.quote(minutes: 180, tier: nil)
        let full = try ParkingCalculator.pay(
            program: Fixture.program, quote: quote, points: Points(3000), available: Points(5000)
        ).get()
        #expect(full.amountDue == .zero)
        let part = try ParkingCalculator.pay(
            program: Fixture.program, quote: quote, points: Points(400), available: Points(5000)
        ).get()
        #expect(part.pointsValue == Money(minorUnits: 400))
        #expect(part.amountDue == Money(minorUnits: 2600))
        let short = try ParkingCalculator.pay(
            program: Fixture.program, quote: quote, points: Points(400), available: Points(300))
        #expect(throws: Refusal.insufficientPoints) { try short.get() }
        #expect(throws: CalculationError.self) {
            try ParkingCalculator.pay(
                program: Fixture.program, quote: quote, points: Points(3001), available: Points(5000))
        }
    }

    @Test("impossible stays are refused")
    func refuses() {
        #expect(throws: CalculationError.self) { try Self.quote(minutes: -1, tier: nil) }
        #expect(throws: CalculationError.self) { try Self.quote(minutes: 31 * 24 * 60 + 1, tier: nil) }
        #expect(throws: CalculationError.self) {
            try ParkingCalculator.quote(
                program: Fixture.program,
                input: ParkingInput(site: SiteID("mall-01")!, entry: Self.entry, exit: Self.entry, tier: nil))
        }
    }
}

extension Program {
    fileprivate func withMinimum(_ points: Int64) -> Program {
        var copy = self
        copy.redeem.minimumPoints = Points(points)
        return copy
    }

    fileprivate func replacingRedeem(with rules: RedeemRules) -> Program {
        var copy = self
        copy.redeem = rules
        return copy
    }
}
