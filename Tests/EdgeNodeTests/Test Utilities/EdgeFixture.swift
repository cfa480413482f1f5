import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization
import Testing
import Wire

/// A wall clock tests set by hand. Starts on Tuesday 2026-11-24 12:00 in Shanghai (no promotion,
/// nobody's birthday unless a test says so).
final class ManualWallClock: WallClock {
    static let tuesdayNoon = Timestamp(milliseconds: 1_795_492_800_000)
    private let current = Mutex(ManualWallClock.tuesdayNoon)

    func now() -> Timestamp { current.withLock { $0 } }
    func advance(milliseconds: Int64) { current.withLock { $0 = $0.adding(milliseconds: milliseconds) } }
    func set(_ time: Timestamp) { current.withLock { $0 = time } }
}

/// Paths of the repository, for the example program and the built binary.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let exampleProgram = root.appendingPathComponent("examples/program.yaml")

    /// The example program's text with replacements (`"minimum_points: 500"` → `"minimum_points: 100"`).
    static func exampleProgram(replacing replacements: [(String, String)]) throws -> String {
        var text = try String(contentsOf: exampleProgram, encoding: .utf8)
        for (old, new) in replacements {
            precondition(text.contains(old), "the example program has no '\(old)'")
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text
    }
}

/// A temporary directory removed when the test ends.
struct TemporaryDirectory: ~Copyable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("coalition-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A running edge node and a client connected to it over real HTTP/2 on loopback.
struct EdgeHarness: Sendable {
    let node: EdgeNode
    let clock: ManualWallClock
    let points: Coalition_Edge_V1_Points.Client<HTTP2ClientTransport.Posix>
    let parking: Coalition_Edge_V1_Parking.Client<HTTP2ClientTransport.Posix>
    let health: Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>
    /// Tokens issued for the test, by merchant.
    let tokens: [String: String]
    let program: Program

    func auth(_ merchant: String) -> Metadata {
        ["authorization": "Bearer \(tokens[merchant]!)"]
    }

    /// Row counts of every table, to prove a refused request wrote nothing.
    func rowCounts() async throws -> [String: Int] {
        try await node.ledger.database.pool.read { db in
            var counts: [String: Int] = [:]
            for table in ["outbox", "member_delta", "idempotency", "members", "terminals"] {
                counts[table] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)")
            }
            return counts
        }
    }
}

/// Configuration shared by in-process and process-level tests.
enum EdgeFixture {
    static let phoneKeyHex = String(repeating: "ab", count: 32)

    static func configuration(
        directory: borrowing TemporaryDirectory, site: String = "mall-01", programText: String? = nil,
        limits: EdgeLimits = EdgeLimits()
    ) throws -> EdgeConfiguration {
        let programPath = directory.path("program.yaml")
        try (programText ?? String(contentsOf: Repository.exampleProgram, encoding: .utf8))
            .write(toFile: programPath, atomically: true, encoding: .utf8)
        return EdgeConfiguration(
            siteID: SiteID(site)!, databasePath: directory.path("\(site).sqlite"), listenHost: "127.0.0.1", listenPort: 0,
            programFile: programPath, phoneHashKey: EdgeConfiguration.hexBytes(phoneKeyHex)!, limits: limits)
    }

    static let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` against a real edge node serving on a free loopback port, with terminals
    /// issued for `merchants`; stops everything afterwards.
    static func withEdge<Result: Sendable>(
        site: String = "mall-01", merchants: [String] = ["mall-fashion", "mall-grocer", "mall-cafe"],
        programText: String? = nil, limits: EdgeLimits = EdgeLimits(),
        _ body: (EdgeHarness) async throws -> Result
    ) async throws -> Result {
        let directory = try TemporaryDirectory()
        let configuration = try configuration(
            directory: directory, site: site, programText: programText, limits: limits)
        return try await withEdge(configuration: configuration, merchants: merchants, body)
    }

    static func withEdge<Result: Sendable>(
        configuration: EdgeConfiguration, merchants: [String], clock: ManualWallClock = ManualWallClock(),
        _ body: (EdgeHarness) async throws -> Result
    ) async throws -> Result {
        let node = try EdgeNode(configuration: configuration, clock: clock, logger: quietLogger)
        var tokens: [String: String] = [:]
        for merchant in merchants {
            tokens[merchant] = try node.terminals.issue(merchant: MerchantID(merchant)!, terminalID: "\(merchant)-\(UUID())")
        }
        let issued = tokens
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await node.run() }
            let port = try await node.listeningPort
            let client = GRPCClient(
                transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext))
            group.addTask { try await client.runConnections() }
            let harness = EdgeHarness(
                node: node, clock: clock, points: .init(wrapping: client), parking: .init(wrapping: client),
                health: .init(wrapping: client), tokens: issued, program: node.ledger.program.program)
            do {
                let result = try await body(harness)
                client.beginGracefulShutdown()
                node.beginGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                client.beginGracefulShutdown()
                node.beginGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}

/// Builders for requests.
enum Requests {
    static func enroll(_ requestID: String, phone: String, birthMonth: Int32 = 0, referrer: String = "") -> Coalition_Edge_V1_EnrollRequest {
        var request = Coalition_Edge_V1_EnrollRequest()
        request.requestID = requestID
        request.phone = phone
        request.birthMonth = birthMonth
        request.referrerMemberID = referrer
        return request
    }

    static func earn(_ requestID: String, member: String, amount: Int64, lines: [(String, Int64)] = []) -> Coalition_Edge_V1_EarnRequest {
        var request = Coalition_Edge_V1_EarnRequest()
        request.requestID = requestID
        request.memberID = member
        request.amountMinor = amount
        request.lines = lines.map { category, amount in
            var line = Coalition_Common_V1_SaleLine()
            line.category = category
            line.amountMinor = amount
            return line
        }
        return request
    }

    static func redeem(_ requestID: String, member: String, bill: Int64, points: Int64) -> Coalition_Edge_V1_RedeemRequest {
        var request = Coalition_Edge_V1_RedeemRequest()
        request.requestID = requestID
        request.memberID = member
        request.billAmountMinor = bill
        request.points = points
        return request
    }

    static func reverse(_ requestID: String, original: String, amount: Int64 = 0) -> Coalition_Edge_V1_ReverseRequest {
        var request = Coalition_Edge_V1_ReverseRequest()
        request.requestID = requestID
        request.originalTransactionID = original
        request.amountMinor = amount
        return request
    }

    static func balance(_ member: String) -> Coalition_Edge_V1_GetBalanceRequest {
        var request = Coalition_Edge_V1_GetBalanceRequest()
        request.memberID = member
        return request
    }
}

/// The gRPC code and `coalition-reason` of an error, for assertions.
func status(of error: any Error) -> (code: RPCError.Code?, reason: String?, message: String) {
    guard let rpc = error as? RPCError else { return (nil, nil, "\(error)") }
    let reason = rpc.metadata[stringValues: "coalition-reason"].first(where: { _ in true })
    return (rpc.code, reason, rpc.message)
}

/// Expects `body` to fail with `code` (and `reason` when given); returns the message.
@discardableResult
func expectStatus(
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
