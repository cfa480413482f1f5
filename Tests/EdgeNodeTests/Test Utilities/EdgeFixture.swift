import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import LocalNetwork
import Logging
import TestSupport
import Testing
import Wire

/// A running edge node and a client connected to it over real HTTP/2 on loopback.
struct EdgeHarness: Sendable {
    let node: EdgeNode
    let clock: ManualWallClock
    let points: Coalition_Edge_V1_Points.Client<HTTP2ClientTransport.Posix>
    let parking: Coalition_Edge_V1_Parking.Client<HTTP2ClientTransport.Posix>
    let health: Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>
    /// The client under the typed ones, for raw bytes.
    let client: GRPCClient<HTTP2ClientTransport.Posix>
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
            siteID: SiteID(site)!, databasePath: directory.path("\(site).sqlite"), listenHost: "127.0.0.1",
            listenPort: 0,
            programFile: programPath, phoneHashKey: Hex.bytes(phoneKeyHex)!, limits: limits)
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
        try await LocalNetwork.withEdge(configuration, clock: clock, logger: quietLogger, merchants: merchants) {
            edge in
            try await body(
                EdgeHarness(
                    node: edge.node, clock: clock, points: edge.points, parking: edge.parking,
                    health: .init(wrapping: edge.client), client: edge.client, tokens: edge.tokens.mapValues { $0[0] },
                    program: edge.node.ledger.program.program))
        }
    }
}

/// Builders for requests.
enum Requests {
    static func enroll(_ requestID: String, phone: String, birthMonth: Int32 = 0, referrer: String = "")
        -> Coalition_Edge_V1_EnrollRequest
    {
        var request = Coalition_Edge_V1_EnrollRequest()
        request.requestID = requestID
        request.phone = phone
        request.birthMonth = birthMonth
        request.referrerMemberID = referrer
        return request
    }

    static func earn(_ requestID: String, member: String, amount: Int64, lines: [(String, Int64)] = [])
        -> Coalition_Edge_V1_EarnRequest
    {
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

    static func redeem(_ requestID: String, member: String, bill: Int64, points: Int64)
        -> Coalition_Edge_V1_RedeemRequest
    {
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
