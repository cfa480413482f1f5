/// A calendar date with no time zone (proleptic Gregorian), such as a promotion day, a birthday
/// month or a settlement period.
///
/// Day arithmetic is exact integer arithmetic (days since 1970-01-01), with no Foundation.
package struct CivilDate: Hashable, Comparable, Sendable, CustomStringConvertible {
    package let year: Int
    /// 1-12.
    package let month: Int
    /// 1-31, valid for the month.
    package let day: Int

    /// A valid date, or nil (for example 2026-02-29).
    package init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month),
            (1...CivilDate.daysIn(year: year, month: month)).contains(day)
        else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// The date `days` days after 1970-01-01 (negative before it).
    package init(daysSinceEpoch days: Int64) {
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        self.year = Int(y)
        self.month = Int(m)
        self.day = Int(d)
    }

    /// Parses `YYYY-MM-DD`; nil for anything else or an impossible date.
    package init?(parsing text: String) {
        // Ten ASCII bytes, read directly (stored dates are parsed on the posting path).
        var text = text
        guard let date = text.withUTF8({ CivilDate(utf8: $0) }) else { return nil }
        self = date
    }

    /// Parses `YYYY-MM-DD` given as UTF-8 bytes.
    package init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        let parsed: (Int, Int, Int)? = {
            guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-") else { return nil }
            func number(_ range: Range<Int>) -> Int? {
                var value = 0
                for index in range {
                    let byte = bytes[index]
                    guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                    value = value * 10 + Int(byte - UInt8(ascii: "0"))
                }
                return value
            }
            guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10) else { return nil }
            return (year, month, day)
        }()
        guard let (year, month, day) = parsed else { return nil }
        self.init(year: year, month: month, day: day)
    }

    /// Days since 1970-01-01.
    package var daysSinceEpoch: Int64 {
        // Howard Hinnant's days_from_civil.
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// `YYYY-MM-DD`.
    package var description: String {
        // Years are 1...9999, so always four digits.
        String(unsafeUninitializedCapacity: 10) { buffer in
            func put(_ value: Int, at start: Int, width: Int) {
                var value = value
                for index in stride(from: start + width - 1, through: start, by: -1) {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(year, at: 0, width: 4)
            buffer[4] = UInt8(ascii: "-")
            put(month, at: 5, width: 2)
            buffer[7] = UInt8(ascii: "-")
            put(day, at: 8, width: 2)
            return 10
        }
    }

    package static func < (lhs: CivilDate, rhs: CivilDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// The date `count` days later (earlier when negative).
    package func adding(days count: Int) -> CivilDate {
        CivilDate(daysSinceEpoch: daysSinceEpoch + Int64(count))
    }

    /// The same day `count` months later, clamped to the end of a shorter month (Jan 31 + 1 month
    /// is Feb 28 or 29).
    package func adding(months count: Int) -> CivilDate {
        let index = year * 12 + (month - 1) + count
        let newYear = index / 12
        let newMonth = index % 12 + 1
        let newDay = min(day, CivilDate.daysIn(year: newYear, month: newMonth))
        return CivilDate(year: newYear, month: newMonth, day: newDay)!
    }

    /// The first day of this date's month.
    package var firstOfMonth: CivilDate { CivilDate(year: year, month: month, day: 1)! }

    /// Days in a month of a year.
    package static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// A local date and time with minute precision, as an operator writes promotion windows.
package struct CivilDateTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    package let date: CivilDate
    /// 0-23.
    package let hour: Int
    /// 0-59.
    package let minute: Int

    /// A valid time of day on `date`, or nil.
    package init?(date: CivilDate, hour: Int, minute: Int) {
        guard (0...23).contains(hour), (0...59).contains(minute) else { return nil }
        self.date = date
        self.hour = hour
        self.minute = minute
    }

    /// Parses `YYYY-MM-DD` (midnight), `YYYY-MM-DDTHH:MM` or `YYYY-MM-DD HH:MM`.
    package init?(parsing text: String) {
        let trimmed = text.replacingAll(" ", with: "T")
        let parts = trimmed.split(separator: "T", omittingEmptySubsequences: false)
        guard let first = parts.first, let date = CivilDate(parsing: String(first)) else { return nil }
        if parts.count == 1 {
            self.init(date: date, hour: 0, minute: 0)
            return
        }
        let clock = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, clock.count == 2, clock.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isASCIIDigit) }),
            let hour = Int(clock[0]), let minute = Int(clock[1])
        else { return nil }
        self.init(date: date, hour: hour, minute: minute)
    }

    package var description: String {
        let hh = hour < 10 ? "0\(hour)" : "\(hour)"
        let mm = minute < 10 ? "0\(minute)" : "\(minute)"
        return "\(date)T\(hh):\(mm)"
    }

    package static func < (lhs: CivilDateTime, rhs: CivilDateTime) -> Bool {
        (lhs.date, lhs.hour, lhs.minute) < (rhs.date, rhs.hour, rhs.minute)
    }

    /// Milliseconds since 1970-01-01T00:00 of this wall-clock time, read as if it were UTC.
    package var localMilliseconds: Int64 {
        date.daysSinceEpoch * Timestamp.day + Int64(hour) * Timestamp.hour + Int64(minute) * Timestamp.minute
    }
}

extension String {
    /// This string with every `target` character replaced (no Foundation).
    fileprivate func replacingAll(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
