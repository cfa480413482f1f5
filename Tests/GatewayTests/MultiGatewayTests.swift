// Goal (issue #15): several `coalition gateway serve` processes over one PostgreSQL ledger behave
// as one gateway. Online authorisations racing for a member's last points at two gateways: exactly
// one wins. Three edges pushing flat out while one gateway is killed with SIGKILL: the edges move to
// the other, every transaction is posted exactly once, the chain heads are intact and the ledger's
// invariants hold. Real processes, real TLS, a real PostgreSQL (scripts/with-postgres).
import Core
import Crypto
import EdgeNode
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import Logging
import PostgresNIO
import SwiftProtobuf
import Synchronization
import TestSupport
import Testing
import Wire

@Suite("Several gateways over one PostgreSQL ledger")
struct MultiGatewayTests {
    /// A `coalition gateway serve` process on the shared ledger, its log in the test's directory.
    final class GatewayProcess: @unchecked Sendable {
        // @unchecked: touched only by the owning test, one step at a time.
        let process = Process()
        let portFile: String

        init(config: String, name: String, directory: String) throws {
            portFile = directory + "/\(name).port"
            process.executableURL = URL(fileURLWithPath: try #require(Binary.path))
            process.arguments = ["gateway", "serve", "--config", config, "--port-file", portFile]
            process.standardOutput = FileHandle.nullDevice
            _ = FileManager.default.createFile(atPath: directory + "/\(name).log", contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/\(name).log"))
            try process.run()
        }

        func port() async throws -> Int { try await GatewayProcessTests.waitForPort(portFile) }

        func kill() {
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        }

        deinit { kill() }
    }

    /// A gateway config on the test database, with the test program.
    static func configFile(_ directory: String, database: PostgresSettings) throws -> String {
        let path = directory + "/gateway.yaml"
        try """
        database: \(database)
        listen: 127.0.0.1:0
        ca_certificate: ca.pem
        certificate: gateway.pem
        private_key: gateway.key
        program_file: \(try Network.programFile(directory))
        limits:
          clock_skew_max_ms: 600000
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func authorize(
        _ sync: Coalition_Sync_V1_Sync.Client<HTTP2ClientTransport.Posix>, member: String, merchant: String,
        points: Int64, transaction: String
    ) async throws -> Coalition_Sync_V1_AuthorizeRedeemResponse {
        var request = Coalition_Sync_V1_AuthorizeRedeemRequest()
        request.protocolVersion = 1
        request.requestID = "A-\(transaction.suffix(8))"
        request.memberID = member
        request.merchantID = merchant
        request.points = points
        request.transactionID = transaction
        return try await sync.authorizeRedeem(request)
    }

    @Test("online authorisations racing for one member's last points at two gateway processes: exactly one wins")
    func racingAuthorisations() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "hotel-01"])
        try await TestPostgres.withDatabase { settings in
            let config = try Self.configFile(dir, database: settings)
            let first = try GatewayProcess(config: config, name: "gateway-a", directory: dir)
            let second = try GatewayProcess(config: config, name: "gateway-b", directory: dir)
            let (portA, portB) = (try await first.port(), try await second.port())
            #expect(portA != portB)
            try await RawSync.withClient(port: portA, certificates: certificates, certificate: "mall-01") { mall in
                try await RawSync.withClient(port: portB, certificates: certificates, certificate: "hotel-01") {
                    hotel in
                    let now = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
                    let enrolments = try RawSync.enrolments(merchant: "mall-fashion", count: 30, time: now)
                    #expect(try await mall.push(RawSync.push(enrolments)).status == .applied)
                    let members = try enrolments.map {
                        try Coalition_Sync_V1_LocalTransaction(serializedBytes: $0.payload).enrollment.memberID
                    }
                    var generator = SystemRandomNumberGenerator()
                    for member in members {
                        // Each member has its 200 sign-up points; both sites ask for all of them at once.
                        let atMall = TransactionID(time: now, using: &generator).description
                        let atHotel = TransactionID(time: now, using: &generator).description
                        async let one = Self.authorize(
                            mall, member: member, merchant: "mall-fashion", points: 200, transaction: atMall)
                        async let other = Self.authorize(
                            hotel, member: member, merchant: "hotel-rooms", points: 200, transaction: atHotel)
                        let answers = try await [one, other]
                        #expect(answers.filter(\.approved).count == 1, "\(member): \(answers.map(\.approved))")
                        #expect(answers.first(where: \.approved)?.availablePoints == 0)
                    }
                }
            }
            first.kill()
            second.kill()
            try await PostgresLedgerDatabase.with(settings, logger: TestPostgres.logger) { database in
                let sql = LedgerSQL(client: database.client)
                #expect(try await sql.int("SELECT COUNT(*) FROM holds WHERE status = 'active'") == 30)
                // No member's active holds exceed its balance.
                #expect(
                    try await sql.int(
                        """
                        SELECT COUNT(*) FROM members m WHERE m.balance_points < (
                            SELECT COALESCE(SUM(h.points), 0) FROM holds h
                            WHERE h.member_id = m.member_id AND h.status = 'active')
                        """) == 0)
                try await sql.checkInvariants()
            }
        }
    }
}
