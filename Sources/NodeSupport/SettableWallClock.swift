import Core
import Synchronization

/// A wall clock set by its owner: `coalition demo` plays a day in a minute with it.
package final class SettableWallClock: WallClock {
    private let current: Mutex<Timestamp>

    package init(_ start: Timestamp) {
        current = Mutex(start)
    }

    package func now() -> Timestamp { current.withLock { $0 } }

    package func set(_ time: Timestamp) { current.withLock { $0 = time } }
}
