// Goal: calendar arithmetic and the program time zone give the days the business means, at the
// edges of days, months and years.
import Core
import Testing

@Suite("Civil dates and the program time zone")
struct TimeTests {
    @Test(
        "days since the epoch",
        arguments: [
            ("1970-01-01", 0), ("2000-03-01", 11_017), ("2026-11-23", 20_780), ("1969-12-31", -1),
        ] as [(String, Int64)])
    func epochDays(_ text: String, _ days: Int64) {
        let date = CivilDate(parsing: text)!
        #expect(date.daysSinceEpoch == days)
        #expect(CivilDate(daysSinceEpoch: days) == date)
    }

    @Test("every day of four years round-trips")
    func roundTrip() {
        for days in Int64(20_000)..<Int64(21_461) {
            let date = CivilDate(daysSinceEpoch: days)
            #expect(date.daysSinceEpoch == days)
            #expect(CivilDate(parsing: date.description) == date)
        }
    }

    @Test(
        "impossible dates are refused",
        arguments: ["2026-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "26-11-01", "2026-1-01", "2026/11/01"])
    func impossible(_ text: String) {
        #expect(CivilDate(parsing: text) == nil)
    }

    @Test("leap day exists in leap years only")
    func leapDay() {
        #expect(CivilDate(parsing: "2028-02-29") != nil)
        #expect(CivilDate(parsing: "2100-02-29") == nil)
        #expect(CivilDate(parsing: "2000-02-29") != nil)
    }

    @Test(
        "adding months clamps to the end of a shorter month",
        arguments: [
            ("2026-01-31", 1, "2026-02-28"), ("2028-01-31", 1, "2028-02-29"), ("2026-11-23", 12, "2027-11-23"),
            ("2026-11-30", 3, "2027-02-28"), ("2026-03-31", -1, "2026-02-28"), ("2026-12-15", 1, "2027-01-15"),
        ])
    func addMonths(_ start: String, _ months: Int, _ expected: String) {
        #expect(CivilDate(parsing: start)!.adding(months: months).description == expected)
    }

    @Test("the local day of an instant in Asia/Shanghai (UTC+8)")
    func localDay() {
        let zone = Fixture.zone
        // 2026-11-30T16:00:00Z is 2026-12-01 00:00 in Shanghai; one millisecond earlier is Nov 30.
        let midnight = Timestamp(milliseconds: 1_796_054_400_000)
        #expect(zone.date(of: midnight).description == "2026-12-01")
        #expect(zone.date(of: midnight.adding(milliseconds: -1)).description == "2026-11-30")
        #expect(zone.startOfDay(CivilDate(parsing: "2026-12-01")!) == midnight)
    }

    @Test("local times in a zone with daylight saving")
    func daylightSaving() {
        let berlin = ProgramTimeZone(identifier: "Europe/Berlin")!
        // Summer (UTC+2) and winter (UTC+1).
        let summer = berlin.instant(of: CivilDateTime(parsing: "2026-07-01T12:00")!)
        let winter = berlin.instant(of: CivilDateTime(parsing: "2026-12-01T12:00")!)
        #expect(summer.milliseconds % Timestamp.day == 10 * Timestamp.hour)
        #expect(winter.milliseconds % Timestamp.day == 11 * Timestamp.hour)
        #expect(berlin.date(of: summer).description == "2026-07-01")
    }

    @Test("unknown zones are refused")
    func unknownZone() {
        #expect(ProgramTimeZone(identifier: "Mars/Olympus") == nil)
        #expect(ProgramTimeZone(identifier: "") == nil)
    }

    @Test(
        "date-times parse in the forms an operator writes",
        arguments: [
            ("2026-11-28", "2026-11-28T00:00"), ("2026-11-28T18:30", "2026-11-28T18:30"),
            ("2026-11-28 18:30", "2026-11-28T18:30"),
        ])
    func dateTimes(_ text: String, _ expected: String) {
        #expect(CivilDateTime(parsing: text)?.description == expected)
    }

    @Test(
        "malformed date-times are refused",
        arguments: ["2026-11-28T24:00", "2026-11-28T9:00", "2026-11-28T18:30:00", "tomorrow"])
    func badDateTimes(_ text: String) {
        #expect(CivilDateTime(parsing: text) == nil)
    }
}
