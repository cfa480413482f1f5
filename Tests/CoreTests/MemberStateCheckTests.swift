// Goal: the member state an edge states for an earn is accepted only within the staleness an honest
// replica can have (DESIGN §8); anything else is replaced by the gateway's record.
import Core
import Testing

@Suite("Member state an edge states")
struct MemberStateCheckTests {
    static let member = TierID("member")!
    static let silver = TierID("silver")!
    static let gold = TierID("gold")!
    static let mall = Format("mall")!
    static let hotel = Format("hotel")!
    static let noon = Timestamp(milliseconds: 1_795_492_800_000)
    static let day = CivilDate(year: 2026, month: 11, day: 24)!

    /// Member from position 3, silver from 40, gold from 90, back to silver at 150 (a review).
    static let spells = [
        TierSpell(position: 3, tier: member), TierSpell(position: 40, tier: silver),
        TierSpell(position: 90, tier: gold), TierSpell(position: 150, tier: silver),
    ]

    @Test(
        "tiers held since a replica position",
        arguments: [
            (0, [member, silver, gold]), (3, [member, silver, gold]), (39, [member, silver, gold]),
            (40, [silver, gold]), (89, [silver, gold]), (90, [gold, silver]), (149, [gold, silver]),
            (150, [silver]), (10_000, [silver]),
        ] as [(Int64, [TierID])])
    func tiersHeld(position: Int64, expected: [TierID]) {
        #expect(MemberStateCheck.tiersHeld(since: position, spells: Self.spells, current: Self.silver) == Set(expected))
    }

    static func record(
        tier: TierID = silver, birthMonths: [Int?] = [nil], lastEarn: [Format: Timestamp] = [:], streak: Streak? = nil
    ) -> RecordedMemberState {
        RecordedMemberState(
            current: MemberEarnState(
                tier: tier, birthMonth: birthMonths[0], lastEarnByFormat: lastEarn, streak: streak),
            tiers: spells, birthMonths: birthMonths)
    }

    @Test("an honest replica's state, stale or current, is taken as stated")
    func honest() {
        let stated = MemberEarnState(
            tier: Self.gold, birthMonth: nil,
            lastEarnByFormat: [Self.mall: Self.noon.adding(milliseconds: -86_400_000)],
            streak: Streak(lastDay: Self.day.adding(days: -3), days: 6))
        let checked = MemberStateCheck.check(
            stated: stated, replicaPosition: 120,
            record: Self.record(
                lastEarn: [Self.mall: Self.noon], streak: Streak(lastDay: Self.day.adding(days: -1), days: 1)),
            toleranceMilliseconds: 300_000)
        #expect(checked.replaced.isEmpty)
        #expect(checked.state == stated)
    }

    @Test("a tier, birthday, earn elsewhere or streak the member did not have is replaced by the record")
    func liar() {
        let stated = MemberEarnState(
            tier: Self.gold, birthMonth: 11, lastEarnByFormat: [Self.hotel: Self.noon, Self.mall: Self.noon],
            streak: Streak(lastDay: Self.day.adding(days: -1), days: 4))
        let record = Self.record(
            birthMonths: [3], lastEarn: [Self.mall: Self.noon.adding(milliseconds: -400_000)],
            streak: Streak(lastDay: Self.day.adding(days: -5), days: 2))
        let checked = MemberStateCheck.check(
            stated: stated, replicaPosition: 150, record: record, toleranceMilliseconds: 300_000)
        #expect(checked.replaced == ["tier", "birth_month", "last_earn", "streak"])
        #expect(checked.state.tier == Self.silver)
        #expect(checked.state.birthMonth == 3)
        #expect(checked.state.lastEarnByFormat == [Self.mall: Self.noon.adding(milliseconds: -400_000)])
        #expect(checked.state.streak == Streak(lastDay: Self.day.adding(days: -5), days: 2))
    }

    @Test(
        "boundaries: a stated earn time up to the tolerance after the record's, a streak ending by the record's day",
        arguments: [
            (299_999, 0, true), (300_000, 0, true), (300_001, 0, false), (0, 1, false), (0, -1, true),
        ] as [(Int64, Int, Bool)])
    func boundaries(later: Int64, streakDayOffset: Int, accepted: Bool) {
        let stated = MemberEarnState(
            tier: Self.silver, lastEarnByFormat: [Self.mall: Self.noon.adding(milliseconds: later)],
            streak: Streak(lastDay: Self.day.adding(days: streakDayOffset), days: 9))
        let checked = MemberStateCheck.check(
            stated: stated, replicaPosition: 200,
            record: Self.record(lastEarn: [Self.mall: Self.noon], streak: Streak(lastDay: Self.day, days: 2)),
            toleranceMilliseconds: 300_000)
        #expect(checked.replaced.isEmpty == accepted)
    }

    @Test("after a merge, the birth month of the record the edge named is the member's too")
    func mergedRecord() {
        let stated = MemberEarnState(tier: Self.silver, birthMonth: 7)
        let checked = MemberStateCheck.check(
            stated: stated, replicaPosition: 200, record: Self.record(birthMonths: [3, 7]),
            toleranceMilliseconds: 0)
        #expect(checked.replaced.isEmpty)
    }
}
