// Goal: the offline floor limit refuses exactly past each cap, and refunds of an earn take back
// points in proportion so that refunds always add up to the original points.
import Core
import Testing

@Suite("Offline floor limit")
struct OfflinePolicyTests {
    /// The fixture's defaults: 5,000 per transaction, 10,000 per member per day, 200,000 exposure, 1,440 minutes.
    let limits = Fixture.program.site(SiteID("mall-01")!)!.offline

    @Test(
        "each cap is inclusive and refused one past it",
        arguments: [
            (5000, 0, 0, 0, nil),
            (5001, 0, 0, 0, Refusal.offlineTransactionCap),
            (5000, 5000, 0, 0, nil),
            (5000, 5001, 0, 0, .offlineDailyCap),
            (1000, 0, 199_000, 0, nil),
            (1000, 0, 199_001, 0, .offlineSiteExposure),
            (100, 0, 0, 1440 * 60_000, nil),
            (100, 0, 0, 1440 * 60_000 + 1, .offlineTooLong),
        ] as [(Int64, Int64, Int64, Int64, Refusal?)])
    func caps(_ points: Int64, _ today: Int64, _ exposure: Int64, _ offline: Int64, _ refusal: Refusal?) {
        let result = OfflineRedemptionPolicy.check(
            OfflineSituation(
                points: Points(points), memberRedeemedToday: Points(today), siteExposure: Points(exposure),
                offlineMilliseconds: offline),
            limits: limits)
        #expect(result?.0 == refusal)
        if result != nil { #expect(!(result?.1.isEmpty ?? true)) }
    }
}

@Suite("Refunds of earns")
struct EarnReversalTests {
    static let bill = EarnRefundState(
        originalAmount: Money(minorUnits: 10_000), originalPoints: Points(150), refundedAmount: .zero,
        reversedPoints: .zero)

    @Test("a full refund takes back every point")
    func full() throws {
        let result = try EarnReversal.refund(Self.bill, amount: .zero)
        #expect(result.points == Points(150))
        #expect(result.amount == Money(minorUnits: 10_000))
    }

    @Test("partial refunds round down and always add up to the original points")
    func partials() throws {
        var state = Self.bill
        var taken: [Int64] = []
        for amount in [3_333, 3_333, 3_334] as [Int64] {
            let result = try EarnReversal.refund(state, amount: Money(minorUnits: amount))
            taken.append(result.points.value)
            state.refundedAmount += result.amount
            state.reversedPoints += result.points
        }
        // 150 × 3333/10000 = 49.995 → 49; 150 × 6666/10000 = 99.99 → 99 (50 more); then the rest.
        #expect(taken == [49, 50, 51])
        #expect(taken.reduce(0, +) == 150)
        #expect(throws: CalculationError.self) { try EarnReversal.refund(state, amount: .zero) }
    }

    @Test("more than what is left, or negative, is refused")
    func refuses() {
        var state = Self.bill
        state.refundedAmount = Money(minorUnits: 9_000)
        state.reversedPoints = Points(135)
        #expect(throws: CalculationError.self) { try EarnReversal.refund(state, amount: Money(minorUnits: 1_001)) }
        #expect(throws: CalculationError.self) { try EarnReversal.refund(state, amount: Money(minorUnits: -1)) }
        #expect((try? EarnReversal.refund(state, amount: .zero))?.points == Points(15))
    }
}

@Suite("Phone numbers")
struct PhoneTests {
    @Test(
        "E.164 only",
        arguments: [
            ("+8613800138000", true), ("+12025550123", true), ("+1234567", true), ("+123456789012345", true),
            ("+1234567890123456", false), ("+123456", false), ("8613800138000", false), ("+0123456789", false),
            ("+86 138 0013 8000", false), ("", false), ("+86138001380a0", false),
        ])
    func phones(_ text: String, _ valid: Bool) {
        #expect((PhoneNumber(text) != nil) == valid)
    }
}
