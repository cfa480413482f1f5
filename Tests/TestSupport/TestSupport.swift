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

/// The built `coalition` executable: beside the test bundle (as `swift build && swift test`
/// leaves it), or `COALITION_BINARY`.
package enum Binary {
    package static var path: String? {
        if let explicit = ProcessInfo.processInfo.environment["COALITION_BINARY"] { return explicit }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "coalition")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside.path }
        let debug = Repository.root.appendingPathComponent(".build/debug/coalition")
        return FileManager.default.isExecutableFile(atPath: debug.path) ? debug.path : nil
    }

    /// Runs the binary to completion and returns its standard output; fails on a non-zero exit.
    /// Blocks no thread of the cooperative pool (`ChildProcess`).
    package static func run(_ arguments: [String]) async throws -> String {
        guard let path else { throw ProcessFailure("the coalition binary is not built: run `swift build` first") }
        let outcome = try await ChildProcess.run(path, arguments)
        guard outcome.status == 0 else {
            throw ProcessFailure(
                "coalition \(arguments.joined(separator: " ")) exited \(outcome.status): \(outcome.errors)")
        }
        return outcome.output
    }
}

package struct ProcessFailure: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// Bytes sent and received as they are: a client that puts arbitrary (truncated, bit-flipped)
/// bodies on the wire.
package struct RawBytesCodec: MessageSerializer, MessageDeserializer {
    package init() {}

    package func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }

    package func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

extension GRPCClient {
    /// Sends `body` as the request message of `service/method` and returns the response bytes.
    package func raw(_ body: [UInt8], service: String, method: String, metadata: Metadata = [:]) async throws -> [UInt8]
    {
        try await unary(
            request: ClientRequest(message: body, metadata: metadata),
            descriptor: MethodDescriptor(fullyQualifiedService: service, method: method),
            serializer: RawBytesCodec(), deserializer: RawBytesCodec(), options: .defaults
        ) { try $0.message }
    }
}

/// Corruptions of an encoded message: every proper prefix length from a sample, and single-bit
/// flips at a sample of positions. Deterministic: the same message gives the same list.
package func corruptions(of bytes: [UInt8], samples: Int = 64) -> [(name: String, body: [UInt8])] {
    guard !bytes.isEmpty else { return [] }
    let step = max(1, bytes.count / samples)
    var result: [(String, [UInt8])] = []
    for length in stride(from: 1, to: bytes.count, by: step) {
        result.append(("truncated to \(length) of \(bytes.count) bytes", Array(bytes.prefix(length))))
    }
    for position in stride(from: 0, to: bytes.count, by: step) {
        for bit in [0, 7] {
            var flipped = bytes
            flipped[position] ^= UInt8(1 << bit)
            result.append(("bit \(bit) of byte \(position) flipped", flipped))
        }
    }
    return result
}

/// SplitMix64: small, fast and fully determined by its seed.
package struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    package mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &self) < percent }
}
