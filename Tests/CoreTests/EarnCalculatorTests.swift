// Goal: every earn rule gives the business's numbers, rounds down exactly where docs/rules.md says,
// and explains every point in its breakdown.
import Core
import Testing

@Suite("Earn calculator")
struct EarnCalculatorTests {
    /// Tuesday 2026-11-24 noon, Shanghai: no promotion, not a birthday in the default state.
    static let weekday = Fixture.at("2026-11-24T12:00")
    static let saturday = Fixture.at("2026-11-28T12:00")

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var merchant = Fixture.mall
        var amount: Money
        var lines: [SaleLine] = []
        var at = EarnCalculatorTests.weekday
        var member = MemberEarnState(tier: Fixture.member)
        var budgets: [PromotionID: Points] = [:]
        /// Expected points per component kind (kinds not listed must be absent).
        var expected: [EarnComponentKind: Int64]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "¥1 earns 1 point", amount: Fixture.yuan(100), expected: [.base: 100]),
        Case(name: "fractions of a yuan round down", amount: Fixture.fen(10_099), expected: [.base: 100]),
        Case(name: "99 fen earn nothing", amount: Fixture.fen(99), expected: [.base: 0]),
        Case(name: "exactly ¥1 earns 1", amount: Fixture.fen(100), expected: [.base: 1]),
        Case(
            name: "low-margin retail earns 0.5 per yuan", merchant: Fixture.grocer, amount: Fixture.yuan(100),
            expected: [.base: 50]),
        Case(
            name: "0.5 per yuan on ¥3 rounds 1.5 down to 1", merchant: Fixture.grocer, amount: Fixture.yuan(3),
            expected: [.base: 1]),
        Case(
            name: "0.5 per yuan on ¥1.99 is 0", merchant: Fixture.grocer, amount: Fixture.fen(199), expected: [.base: 0]
        ),
        Case(
            name: "lines are summed exactly before one rounding (1.5 + 1.5 = 3, not 1 + 1)", merchant: Fixture.grocer,
            amount: Fixture.yuan(6), lines: [Fixture.line("grocery", 300), Fixture.line("grocery", 300)],
            expected: [.base: 3]),
        Case(
            name: "each line earns at its category's rate", merchant: Fixture.grocer, amount: Fixture.yuan(200),
            lines: [Fixture.line("grocery", 10_000), Fixture.line("apparel", 10_000)], expected: [.base: 150]),
        Case(
            name: "excluded categories earn nothing", amount: Fixture.yuan(100),
            lines: [Fixture.line("tobacco", 5_000), Fixture.line("apparel", 5_000)], expected: [.base: 50]),
        Case(
            name: "a bill of excluded lines only earns nothing, not even bonuses", amount: Fixture.yuan(100),
            lines: [Fixture.line("gift-cards", 10_000)], member: MemberEarnState(tier: Fixture.gold),
            expected: [.base: 0]),
        Case(
            name: "a merchant's own rate beats the format rate", merchant: Fixture.jeweller, amount: Fixture.yuan(100),
            expected: [.base: 200]),
        Case(
            name: "a merchant's own rate beats a line's category rate", merchant: Fixture.jeweller,
            amount: Fixture.yuan(100),
            lines: [Fixture.line("grocery", 10_000)], expected: [.base: 200]),
        Case(
            name: "gold earns 1.5×", amount: Fixture.yuan(100), member: MemberEarnState(tier: Fixture.gold),
            expected: [.base: 100, .tier: 50]),
        Case(
            name: "gold 1.5× on 99 rounds the bonus 49.5 down", amount: Fixture.yuan(99),
            member: MemberEarnState(tier: Fixture.gold),
            expected: [.base: 99, .tier: 49]),
        Case(
            name: "silver 1.2× on 101 gives 20", amount: Fixture.yuan(101),
            member: MemberEarnState(tier: Fixture.silver),
            expected: [.base: 101, .tier: 20]),
        Case(
            name: "double points on the promotion day", amount: Fixture.yuan(100), at: saturday,
            expected: [.base: 100, .promotion: 100]),
        Case(
            name: "the promotion starts at local midnight", amount: Fixture.yuan(100),
            at: Fixture.at("2026-11-28T00:00"),
            expected: [.base: 100, .promotion: 100]),
        Case(
            name: "one minute before the promotion", amount: Fixture.yuan(100), at: Fixture.at("2026-11-27T23:59"),
            expected: [.base: 100]),
        Case(
            name: "the promotion's end is not in it", amount: Fixture.yuan(100), at: Fixture.at("2026-11-29T00:00"),
            expected: [.base: 100]),
        Case(
            name: "promotion and tier stack on base", amount: Fixture.yuan(100), at: saturday,
            member: MemberEarnState(tier: Fixture.gold), expected: [.base: 100, .tier: 50, .promotion: 100]),
        Case(
            name: "the mall promotion does not apply at the hotel", merchant: Fixture.rooms, amount: Fixture.yuan(100),
            at: saturday,
            expected: [.base: 100]),
        Case(
            name: "a fixed bonus at the filtered merchant", merchant: Fixture.restaurant, amount: Fixture.yuan(80),
            at: Fixture.at("2026-11-24T19:00"), expected: [.base: 80, .promotion: 150]),
        Case(
            name: "a fixed bonus is capped by the budget left", merchant: Fixture.restaurant, amount: Fixture.yuan(80),
            at: Fixture.at("2026-11-24T19:00"), budgets: [PromotionID("quay-dinner")!: Points(40)],
            expected: [.base: 80, .promotion: 40]),
        Case(
            name: "a dinner bill of 50 fen earns no base points and so no fixed bonus", merchant: Fixture.restaurant,
            amount: Fixture.fen(50), at: Fixture.at("2026-11-24T19:00"), expected: [.base: 0]),
        Case(
            name: "a spent budget gives nothing", merchant: Fixture.restaurant, amount: Fixture.yuan(80),
            at: Fixture.at("2026-11-24T19:00"), budgets: [PromotionID("quay-dinner")!: Points(0)], expected: [.base: 80]
        ),
        Case(
            name: "the dinner bonus window opens at 17:00 on Nov 1", merchant: Fixture.restaurant,
            amount: Fixture.yuan(80),
            at: Fixture.at("2026-11-01T16:59"), expected: [.base: 80]),
        Case(
            name: "and is open at 17:00 on Nov 1", merchant: Fixture.restaurant, amount: Fixture.yuan(80),
            at: Fixture.at("2026-11-01T17:00"), expected: [.base: 80, .promotion: 150]),
        Case(
            name: "+10 % when the member earned at another format within 7 days", amount: Fixture.yuan(100),
            member: MemberEarnState(
                tier: Fixture.member,
                lastEarnByFormat: [Format("hotel")!: weekday.adding(milliseconds: -3 * Timestamp.day)]),
            expected: [.base: 100, .crossFormat: 10]),
        Case(
            name: "cross-format bonus rounds 5.5 down", amount: Fixture.yuan(55),
            member: MemberEarnState(
                tier: Fixture.member, lastEarnByFormat: [Format("hotel")!: weekday.adding(milliseconds: -Timestamp.day)]
            ),
            expected: [.base: 55, .crossFormat: 5]),
        Case(
            name: "exactly 7 days ago still counts", amount: Fixture.yuan(100),
            member: MemberEarnState(
                tier: Fixture.member,
                lastEarnByFormat: [Format("hotel")!: weekday.adding(milliseconds: -7 * Timestamp.day)]),
            expected: [.base: 100, .crossFormat: 10]),
        Case(
            name: "7 days and 1 ms ago does not", amount: Fixture.yuan(100),
            member: MemberEarnState(
                tier: Fixture.member,
                lastEarnByFormat: [Format("hotel")!: weekday.adding(milliseconds: -7 * Timestamp.day - 1)]),
            expected: [.base: 100]),
        Case(
            name: "an earn at the same format gives no cross-format bonus", amount: Fixture.yuan(100),
            member: MemberEarnState(
                tier: Fixture.member, lastEarnByFormat: [Format("mall")!: weekday.adding(milliseconds: -Timestamp.day)]),
            expected: [.base: 100]),
        Case(
            name: "birthday month doubles base", amount: Fixture.yuan(100),
            member: MemberEarnState(tier: Fixture.member, birthMonth: 11),
            expected: [.base: 100, .birthday: 100]),
        Case(
            name: "no birthday bonus in another month", amount: Fixture.yuan(100),
            member: MemberEarnState(tier: Fixture.member, birthMonth: 12),
            expected: [.base: 100]),
        Case(
            name: "the fifth consecutive day earns the streak bonus", amount: Fixture.yuan(100),
            member: MemberEarnState(tier: Fixture.member, streak: Streak(lastDay: Fixture.date("2026-11-23"), days: 4)),
            expected: [.base: 100, .streak: 100]),
        Case(
            name: "the tenth consecutive day earns it again", amount: Fixture.yuan(100),
            member: MemberEarnState(tier: Fixture.member, streak: Streak(lastDay: Fixture.date("2026-11-23"), days: 9)),
            expected: [.base: 100, .streak: 100]),
        Case(
            name: "a gap restarts the streak", amount: Fixture.yuan(100),
            member: MemberEarnState(tier: Fixture.member, streak: Streak(lastDay: Fixture.date("2026-11-22"), days: 4)),
            expected: [.base: 100]),
        Case(
            name: "a second earn the same day does not extend the streak", amount: Fixture.yuan(100),
            member: MemberEarnState(tier: Fixture.member, streak: Streak(lastDay: Fixture.date("2026-11-24"), days: 5)),
            expected: [.base: 100]),
        Case(
            name: "everything at once", amount: Fixture.yuan(100), at: saturday,
            member: MemberEarnState(
                tier: Fixture.gold, birthMonth: 11,
                lastEarnByFormat: [Format("hotel")!: saturday.adding(milliseconds: -Timestamp.day)],
                streak: Streak(lastDay: Fixture.date("2026-11-27"), days: 4)),
            expected: [.base: 100, .tier: 50, .promotion: 100, .crossFormat: 10, .birthday: 100, .streak: 100]),
    ]

    @Test("earn rules with the business's numbers", arguments: cases)
    func earns(_ c: Case) throws {
        let result = try EarnCalculator.earn(
            program: Fixture.program,
            input: EarnInput(
                merchant: c.merchant, amount: c.amount, lines: c.lines, occurredAt: c.at, member: c.member,
                promotionBudgetsLeft: c.budgets))
        var actual: [EarnComponentKind: Int64] = [:]
        for component in result.components { actual[component.kind, default: 0] += component.points.value }
        #expect(actual == c.expected)
        // The breakdown explains every point.
        #expect(result.total.value == c.expected.values.reduce(0, +))
        #expect(result.components.first?.kind == .base)
    }

    @Test("the streak moves with the earn and stays when nothing is earned")
    func streakState() throws {
        let input = EarnInput(
            merchant: Fixture.mall, amount: Fixture.yuan(10), occurredAt: Self.weekday,
            member: MemberEarnState(tier: Fixture.member, streak: Streak(lastDay: Fixture.date("2026-11-23"), days: 2)))
        #expect(
            try EarnCalculator.earn(program: Fixture.program, input: input).streak
                == Streak(lastDay: Fixture.date("2026-11-24"), days: 3))
        var nothing = input
        nothing.amount = Fixture.fen(50)  // earns 0 points
        #expect(try EarnCalculator.earn(program: Fixture.program, input: nothing).streak == input.member.streak)
    }

    static let badInputs: [(name: String, input: EarnInput, field: String)] = {
        func input(
            merchant: MerchantID = Fixture.mall, _ amount: Money, _ lines: [SaleLine] = [],
            tier: TierID = Fixture.member
        ) -> EarnInput {
            EarnInput(
                merchant: merchant, amount: amount, lines: lines, occurredAt: weekday,
                member: MemberEarnState(tier: tier))
        }
        return [
            ("unknown merchant", input(merchant: MerchantID("nobody")!, Fixture.yuan(1)), "merchant"),
            ("zero amount", input(Fixture.fen(0)), "amount"),
            ("negative amount", input(Fixture.fen(-100)), "amount"),
            ("amount over the program maximum", input(Fixture.fen(10_000_001)), "amount"),
            ("lines that do not sum to the amount", input(Fixture.yuan(10), [Fixture.line("apparel", 500)]), "lines"),
            (
                "a line of zero", input(Fixture.yuan(10), [Fixture.line("apparel", 1000), Fixture.line("apparel", 0)]),
                "lines[1].amount"
            ),
            (
                "too many lines", input(Fixture.fen(201), Array(repeating: Fixture.line("apparel", 1), count: 201)),
                "lines"
            ),
            ("unknown tier", input(Fixture.yuan(1), tier: TierID("platinum")!), "tier"),
        ]
    }()

    @Test("input the program cannot accept is refused with the field named", arguments: badInputs.indices)
    func refusesBadInput(_ index: Int) {
        let bad = Self.badInputs[index]
        #expect {
            try EarnCalculator.earn(program: Fixture.program, input: bad.input)
        } throws: { error in
            (error as? CalculationError)?.field == bad.field
        }
    }

    @Test("enrolment gives the sign-up bonus, and the referral bonus to the referrer")
    func enrollment() {
        let withReferrer = EarnCalculator.enrollment(program: Fixture.program, hasReferrer: true)
        #expect(withReferrer.signup.total == Points(200))
        #expect(withReferrer.signup.components.map(\.kind) == [.signup])
        #expect(withReferrer.referral == Points(300))
        #expect(EarnCalculator.enrollment(program: Fixture.program, hasReferrer: false).referral == .zero)
    }
}

/// docs/rules.md, "Earning on a bill paid partly with points" (#13 item 11): no points are earned
/// on the part of a bill the member paid with points.
@Suite("Earning on a bill paid partly with points")
struct PaidWithPointsTests {
    static func category(_ text: String) -> Category { Category(text)! }

    @Test(
        "the part paid with points comes off the lines points can pay, in proportion, largest remainder first",
        arguments: [
            // line amounts (apparel unless "tobacco"), paid → amounts left
            ([10_000], 2_000, [8_000]),
            ([6_000, 4_000], 1_000, [5_400, 3_600]),
            // 100 × 1/3 = 33.3 each, one minor unit left over goes to the earliest of the ties.
            ([100, 100, 100], 100, [66, 67, 67]),
            // 7 × 2/3 = 4.67 and 7 × 1/3 = 2.33: floors 4 and 2, the unit left goes to the larger remainder.
            ([200, 100], 7, [195, 98]),
            // Tobacco cannot be paid with points: it keeps its amount.
            ([5_000, -5_000], 5_000, [0, -5_000]),
            ([10_000], 0, [10_000]),
            ([10_000], 10_000, [0]),
        ] as [([Int64], Int64, [Int64])])
    func proportional(_ amounts: [Int64], _ paid: Int64, _ left: [Int64]) throws {
        let lines: [(category: Category, amount: Money)] = amounts.map { amount in
            (amount < 0 ? Self.category("tobacco") : Self.category("apparel"), Money(minorUnits: abs(amount)))
        }
        let result = try EarnCalculator.paidWithMoney(
            lines, paidWithPoints: Money(minorUnits: paid), redeemExcluded: [Self.category("tobacco")])
        let expected: [Int64] = left.map { abs($0) }
        #expect(result.map(\.amount.minorUnits) == expected)
        let before: Int64 = lines.reduce(0) { $0 + $1.1.minorUnits }
        let after: Int64 = result.reduce(0) { $0 + $1.amount.minorUnits }
        #expect(after == before - paid)
    }

    @Test("more than the lines points can pay, or a negative amount, is refused naming the field")
    func refused() {
        let lines: [(category: Category, amount: Money)] = [
            (Self.category("apparel"), Money(minorUnits: 1_000)), (Self.category("tobacco"), Money(minorUnits: 1_000)),
        ]
        for paid: Int64 in [1_001, -1] {
            #expect {
                try EarnCalculator.paidWithMoney(
                    lines, paidWithPoints: Money(minorUnits: paid), redeemExcluded: [Self.category("tobacco")])
            } throws: { ($0 as? CalculationError)?.field == "paidWithPoints" }
        }
    }

    @Test("¥1,000 of which ¥200 paid with points earns on ¥800, bonuses included")
    func earn() throws {
        let result = try EarnCalculator.earn(
            program: Fixture.program,
            input: EarnInput(
                merchant: Fixture.mall, amount: Fixture.yuan(1_000), occurredAt: EarnCalculatorTests.saturday,
                member: MemberEarnState(tier: Fixture.member), paidWithPoints: Fixture.yuan(200)))
        #expect(result.points(of: .base) == Points(800))
        #expect(result.total == Points(1_600))  // double-saturday on the ¥800
        #expect(result.eligibleAmount == Fixture.yuan(800))
    }
}
