import Core
import Foundation

/// The system clock, for production; tests pass a manual clock instead.
package struct SystemWallClock: WallClock {
    package init() {}

    package func now() -> Timestamp {
        Timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }
}
