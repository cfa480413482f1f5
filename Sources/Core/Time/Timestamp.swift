/// An instant as Unix milliseconds (UTC). Core never reads a clock: instants come in as values.
package struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    package var milliseconds: Int64

    /// Wraps Unix milliseconds.
    package init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    package var description: String { "\(milliseconds)ms" }

    package static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// This instant moved by a number of milliseconds.
    package func adding(milliseconds delta: Int64) -> Timestamp {
        Timestamp(milliseconds: milliseconds + delta)
    }

    /// Milliseconds in one minute, hour and day.
    package static let minute: Int64 = 60_000
    package static let hour: Int64 = 3_600_000
    package static let day: Int64 = 86_400_000
    /// The instants a request may state, in milliseconds: 1970-01-01 to the end of 9999-12-31, so
    /// no date arithmetic on an instant from the wire can overflow.
    package static let wireRange: ClosedRange<Int64> = 0...253_402_300_799_999
}

/// Where ledger timestamps come from. Core only declares it; the edge and gateway pass the system
/// clock in production and a manual clock in tests.
package protocol WallClock: Sendable {
    /// The current instant.
    func now() -> Timestamp
}
