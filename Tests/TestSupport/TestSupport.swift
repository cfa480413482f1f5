import Core
import Foundation
import GRPCCore
import Synchronization
import Testing

// Helpers shared by the test targets (a library so both EdgeNodeTests and GatewayTests use one copy).

/// A wall clock tests set by hand. Starts on Tuesday 2026-11-24 12:00 in Shanghai (no promotion,
/// nobody's birthday unless a test says so).
package final class ManualWallClock: WallClock {
    package static let tuesdayNoon = Timestamp(milliseconds: 1_795_492_800_000)
    private let current = Mutex(ManualWallClock.tuesdayNoon)

    package init() {}

    package func now() -> Timestamp { current.withLock { $0 } }
    package func advance(milliseconds: Int64) { current.withLock { $0 = $0.adding(milliseconds: milliseconds) } }
    package func set(_ time: Timestamp) { current.withLock { $0 = time } }
}

/// Paths of the repository, for the example program and the built binary.
package enum Repository {
    package static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    package static let exampleProgram = root.appendingPathComponent("examples/program.yaml")

    /// The example program's text with replacements (`"minimum_points: 500"` → `"minimum_points: 100"`).
    package static func exampleProgram(replacing replacements: [(String, String)]) throws -> String {
        var text = try String(contentsOf: exampleProgram, encoding: .utf8)
        for (old, new) in replacements {
            precondition(text.contains(old), "the example program has no '\(old)'")
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text
    }
}

/// A temporary directory removed when the test ends.
package struct TemporaryDirectory: ~Copyable {
    package let url: URL

    package init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("coalition-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    package func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// The gRPC code and `coalition-reason` of an error, for assertions.
package func status(of error: any Error) -> (code: RPCError.Code?, reason: String?, message: String) {
    guard let rpc = error as? RPCError else { return (nil, nil, "\(error)") }
    let reason = rpc.metadata[stringValues: "coalition-reason"].first(where: { _ in true })
    return (rpc.code, reason, rpc.message)
}

/// Expects `body` to fail with `code` (and `reason` when given); returns the message.
@discardableResult
package func expectStatus(
    _ code: RPCError.Code, reason: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> String {
    do {
        try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
        return ""
    } catch {
        let actual = status(of: error)
        #expect(actual.code == code, "\(actual.message)", sourceLocation: sourceLocation)
        if let reason { #expect(actual.reason == reason, sourceLocation: sourceLocation) }
        return actual.message
    }
}
