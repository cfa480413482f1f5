import Dispatch

/// Milliseconds of a monotonic clock (time since boot), for rate limits that must not follow the
/// wall clock when it jumps.
enum Uptime {
    static var milliseconds: Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }
}
