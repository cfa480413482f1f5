// Goal: tiers go up at once and down only at review; the rolling window, expiry at the end of the
// month N months later, reminders and soonest-expiring-first consumption hold at their boundaries.
import Core
import Testing

@Suite("Tiers")
struct TierTests {
    let rules = Fixture.program.tiers

    @Test(
        "the eligible tier at each threshold",
        arguments: [
            (0, "member"), (4999, "member"), (5000, "silver"), (19_999, "silver"), (20_000, "gold"),
            (1_000_000, "gold"),
        ] as [(Int64, String)])
    func eligible(_ points: Int64, _ tier: String) {
        #expect(TierCalculator.eligibleTier(rules, qualifying: Points(points)).id.rawValue == tier)
    }

    @Test("upgrade as soon as the threshold is crossed, with a new review date")
    func upgrade() {
        let status = TierCalculator.initial(rules, enrolledOn: Fixture.date("2026-01-10"))
        #expect(status == TierStatus(tier: Fixture.member, reviewDate: Fixture.date("2027-01-10")))
        let upgraded = TierCalculator.afterPosting(
            rules, status: status, qualifying: Points(20_000), on: Fixture.date("2026-11-23"))
        #expect(upgraded == TierStatus(tier: Fixture.gold, reviewDate: Fixture.date("2027-11-23")))
    }

    @Test("no downgrade on posting, even when qualifying points fall")
    func noDowngradeOnPosting() {
        let gold = TierStatus(tier: Fixture.gold, reviewDate: Fixture.date("2027-11-23"))
        #expect(
            TierCalculator.afterPosting(rules, status: gold, qualifying: Points(100), on: Fixture.date("2027-01-01"))
                == gold)
        // And no change when the eligible tier is the same.
        #expect(
            TierCalculator.afterPosting(rules, status: gold, qualifying: Points(25_000), on: Fixture.date("2027-01-01"))
                == gold)
    }

    @Test("downgrade only at the review date, then the next review is a period later")
    func review() {
        let gold = TierStatus(tier: Fixture.gold, reviewDate: Fixture.date("2027-11-23"))
        #expect(
            TierCalculator.atReview(rules, status: gold, qualifying: Points(6000), on: Fixture.date("2027-11-22"))
                == gold)
        #expect(
            TierCalculator.atReview(rules, status: gold, qualifying: Points(6000), on: Fixture.date("2027-11-23"))
                == TierStatus(tier: Fixture.silver, reviewDate: Fixture.date("2028-11-23")))
        // A review run late skips whole periods to the next future review date.
        #expect(
            TierCalculator.atReview(rules, status: gold, qualifying: Points(0), on: Fixture.date("2029-01-05"))
                == TierStatus(tier: Fixture.member, reviewDate: Fixture.date("2029-11-23")))
    }

    @Test("qualifying points count the rolling 12 months ending today, inclusive of its first day")
    func rollingWindow() {
        let zone = Fixture.zone
        let asOf = Fixture.at("2026-11-23T20:00")
        #expect(
            TierCalculator.windowStart(rules, timeZone: zone, endingOn: Fixture.date("2026-11-23"))
                == Fixture.at("2025-11-24T00:00"))
        let entries = [
            QualifyingEntry(at: Fixture.at("2025-11-23T23:59"), points: Points(1000)),  // a day too old
            QualifyingEntry(at: Fixture.at("2025-11-24T00:00"), points: Points(300)),  // first instant in
            QualifyingEntry(at: Fixture.at("2026-06-01T10:00"), points: Points(700)),
            QualifyingEntry(at: Fixture.at("2026-06-02T10:00"), points: Points(-200)),  // a refund
            QualifyingEntry(at: Fixture.at("2026-11-23T20:01"), points: Points(5000)),  // after as-of
        ]
        #expect(TierCalculator.qualifyingPoints(rules, timeZone: zone, entries: entries, asOf: asOf) == Points(800))
        let refundsOnly = [QualifyingEntry(at: Fixture.at("2026-06-02T10:00"), points: Points(-200))]
        #expect(TierCalculator.qualifyingPoints(rules, timeZone: zone, entries: refundsOnly, asOf: asOf) == .zero)
    }
}

@Suite("Expiry and lots")
struct ExpiryAndLotsTests {
    let rules = Fixture.program.expiry
    let zone = Fixture.zone

    @Test(
        "points expire at the end of the month 12 months after the month they were earned",
        arguments: [
            ("2026-11-23T12:00", "2027-12-01T00:00"),
            ("2026-11-01T00:00", "2027-12-01T00:00"),  // first instant of the month
            ("2026-11-30T23:59", "2027-12-01T00:00"),  // last minute of the month (local)
            ("2026-12-01T00:00", "2028-01-01T00:00"),  // first instant of the next month
            ("2026-01-31T10:00", "2027-02-01T00:00"),
            ("2027-02-28T10:00", "2028-03-01T00:00"),  // into a leap February
        ])
    func expiry(_ earned: String, _ expires: String) {
        #expect(
            ExpiryCalculator.expiresAt(earnedAt: Fixture.at(earned), rules: rules, timeZone: zone)
                == Fixture.at(expires))
    }

    @Test(
        "the month is the program time zone's: 23:59:59.999 on Nov 30 local is November, a millisecond later December")
    func timeZoneBoundary() {
        let decemberLocal = Timestamp(milliseconds: 1_796_054_400_000)  // 2026-11-30T16:00:00Z
        let november = ExpiryCalculator.expiresAt(
            earnedAt: decemberLocal.adding(milliseconds: -1), rules: rules, timeZone: zone)
        let december = ExpiryCalculator.expiresAt(earnedAt: decemberLocal, rules: rules, timeZone: zone)
        #expect(november == Timestamp(milliseconds: 1_827_590_400_000))  // 2027-11-30T16:00Z = Dec 1 local
        #expect(december == Fixture.at("2028-01-01T00:00"))
    }

    @Test("24-month expiry")
    func twoYears() {
        var twoYears = rules
        twoYears.months = 24
        #expect(
            ExpiryCalculator.expiresAt(earnedAt: Fixture.at("2026-11-23T12:00"), rules: twoYears, timeZone: zone)
                == Fixture.at("2028-12-01T00:00"))
    }

    static func id(_ n: Int64) -> TransactionID { TransactionID(value: UInt128(n)) }

    @Test("an expiry run as of a day takes the lots that expire by the end of that day")
    func expiring() {
        let lots = [
            Lot(id: Self.id(1), remaining: Points(100), expiresAt: Fixture.at("2027-12-01T00:00")),
            Lot(id: Self.id(2), remaining: Points(0), expiresAt: Fixture.at("2027-12-01T00:00")),  // spent
            Lot(id: Self.id(3), remaining: Points(50), expiresAt: Fixture.at("2028-01-01T00:00")),
        ]
        #expect(ExpiryCalculator.expiring(lots, asOfEndOf: Fixture.date("2027-11-29"), timeZone: zone).isEmpty)
        #expect(
            ExpiryCalculator.expiring(lots, asOfEndOf: Fixture.date("2027-11-30"), timeZone: zone).map(\.id) == [
                Self.id(1)
            ])
        #expect(
            ExpiryCalculator.expiring(lots, asOfEndOf: Fixture.date("2027-12-31"), timeZone: zone).map(\.id) == [
                Self.id(1), Self.id(3),
            ])
    }

    @Test("reminders list points expiring within 30 days")
    func reminders() {
        let lots = [
            Lot(id: Self.id(1), remaining: Points(100), expiresAt: Fixture.at("2027-12-01T00:00")),
            Lot(id: Self.id(2), remaining: Points(40), expiresAt: Fixture.at("2027-12-31T00:00")),
            Lot(id: Self.id(3), remaining: Points(50), expiresAt: Fixture.at("2028-01-01T00:00")),
        ]
        let asOf = Fixture.at("2027-12-01T00:00").adding(milliseconds: -30 * Timestamp.day)
        let reminder = ExpiryCalculator.reminder(lots, asOf: asOf, rules: rules)
        #expect(reminder.points == Points(100))  // exactly 30 days ahead is in; later lots are not
        #expect(reminder.first == Fixture.at("2027-12-01T00:00"))
        let nothing = ExpiryCalculator.reminder(lots, asOf: Fixture.at("2027-06-01T00:00"), rules: rules)
        #expect(nothing.points == .zero)
        #expect(nothing.first == nil)
    }

    @Test("a debit takes the lots that expire soonest first, older lot first on a tie")
    func consumption() throws {
        let lots = [
            Lot(id: Self.id(3), remaining: Points(100), expiresAt: Timestamp(milliseconds: 3000)),
            Lot(id: Self.id(2), remaining: Points(100), expiresAt: Timestamp(milliseconds: 1000)),
            Lot(id: Self.id(1), remaining: Points(100), expiresAt: Timestamp(milliseconds: 1000)),
            Lot(id: Self.id(4), remaining: Points(0), expiresAt: Timestamp(milliseconds: 500)),
        ]
        let draws = try LotConsumption.consume(lots, points: Points(250))
        #expect(draws.map(\.lot) == [Self.id(1), Self.id(2), Self.id(3)])
        #expect(draws.map(\.points.value) == [100, 100, 50])
        #expect(
            try LotConsumption.consume(lots, points: Points(300)).reduce(Points.zero) { $0 + $1.points } == Points(300))
        #expect(try LotConsumption.consume(lots, points: .zero).isEmpty)
        #expect {
            try LotConsumption.consume(lots, points: Points(301))
        } throws: { error in
            let short = error as? InsufficientPoints
            return short?.available == Points(300) && short?.requested == Points(301)
        }
    }
}
