import Core
import Foundation

/// The system clock, for production; tests pass a manual clock instead.
package struct SystemWallClock: WallClock {
    package init() {}

    package func now() -> Timestamp {
        Timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// The current instant as a Foundation `Date` (for certificate validity).
    package var date: Date { Date(timeIntervalSince1970: TimeInterval(now().milliseconds) / 1000) }
}
