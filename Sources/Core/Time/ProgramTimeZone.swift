import struct Foundation.Date
import typealias Foundation.TimeInterval
import struct Foundation.TimeZone

/// The program's time zone: where its days begin and end (promotion windows, birthday months,
/// streaks, expiry at the end of a month, settlement periods).
///
/// Foundation is used here for its time-zone database only.
package struct ProgramTimeZone: Hashable, Sendable, CustomStringConvertible {
    /// The IANA identifier, for example `Asia/Shanghai`.
    package let identifier: String
    private let zone: TimeZone

    /// The zone with this IANA identifier, or nil when unknown.
    package init?(identifier: String) {
        guard !identifier.isEmpty, let zone = TimeZone(identifier: identifier) else { return nil }
        self.identifier = identifier
        self.zone = zone
    }

    package var description: String { identifier }

    package static func == (lhs: ProgramTimeZone, rhs: ProgramTimeZone) -> Bool { lhs.identifier == rhs.identifier }
    package func hash(into hasher: inout Hasher) { hasher.combine(identifier) }

    /// The zone's offset from UTC at an instant, in milliseconds.
    package func offsetMilliseconds(at instant: Timestamp) -> Int64 {
        // Foundation's zone database takes a Date; it is built from whole seconds (floored, so the
        // conversion is exact), and only the zone's integer offset comes back. No amount is involved.
        let seconds = instant.milliseconds >= 0 ? instant.milliseconds / 1000 : (instant.milliseconds - 999) / 1000
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        return Int64(zone.secondsFromGMT(for: date)) * 1000
    }

    /// The local calendar date of an instant.
    package func date(of instant: Timestamp) -> CivilDate {
        let local = instant.milliseconds + offsetMilliseconds(at: instant)
        return CivilDate(daysSinceEpoch: floorDiv(local, Timestamp.day))
    }

    /// The instant a local wall-clock time happens. For a time skipped by a daylight-saving jump
    /// the instant after the jump is returned; for a repeated time, the first one.
    package func instant(of local: CivilDateTime) -> Timestamp {
        let localMs = local.localMilliseconds
        // Two passes settle on the offset in force at the resulting instant.
        var guess = Timestamp(milliseconds: localMs - offsetMilliseconds(at: Timestamp(milliseconds: localMs)))
        guess = Timestamp(milliseconds: localMs - offsetMilliseconds(at: guess))
        return guess
    }

    /// The instant the local day `date` begins.
    package func startOfDay(_ date: CivilDate) -> Timestamp {
        instant(of: CivilDateTime(date: date, hour: 0, minute: 0)!)
    }

    /// An instant as local time with its offset, `2026-11-24T18:05:09.250+08:00` (ISO 8601), for
    /// people reading statements.
    package func localText(_ instant: Timestamp) -> String {
        let offset = offsetMilliseconds(at: instant)
        let local = instant.milliseconds + offset
        let date = CivilDate(daysSinceEpoch: floorDiv(local, Timestamp.day))
        let inDay = local - date.daysSinceEpoch * Timestamp.day
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = inDay % 1000
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        let minutes = abs(offset) / Timestamp.minute
        let sign = offset < 0 ? "-" : "+"
        return "\(date)T\(two(inDay / Timestamp.hour)):\(two(inDay / Timestamp.minute % 60)):"
            + "\(two(inDay / 1000 % 60)).\(fraction)\(sign)\(two(minutes / 60)):\(two(minutes % 60))"
    }

    private func floorDiv(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return (value % divisor < 0) ? quotient - 1 : quotient
    }
}
