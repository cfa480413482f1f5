// Goal: "acknowledged means durable" against a real process: an approved earn and redemption
// survive SIGKILL right after the answer, a retry after restart returns the same answer without
// doubling, and SIGTERM shuts the node down cleanly.
import EdgeNode
import Foundation
import GRPCCore
import NodeSupport
import TestSupport
import Testing
import Wire

@Suite("Edge process")
struct ProcessTests {
    static func writeConfig(_ directory: borrowing TemporaryDirectory) throws -> String {
        try PrivateFiles.write(EdgeFixture.phoneKeyHex, to: directory.path("phone.key"))
        try String(contentsOf: Repository.exampleProgram, encoding: .utf8)
            .write(toFile: directory.path("program.yaml"), atomically: true, encoding: .utf8)
        let config = directory.path("edge.yaml")
        try """
        site_id: mall-01
        database_path: mall-01.sqlite
        listen: 127.0.0.1:0
        program_file: program.yaml
        phone_hash_key_file: phone.key
        """.write(toFile: config, atomically: true, encoding: .utf8)
        return config
    }

    @Test("an approved earn and redemption survive SIGKILL; the retry returns the same answer")
    func killAfterAnswer() async throws {
        let directory = try TemporaryDirectory()
        let config = try Self.writeConfig(directory)
        let token = try await Binary.run(["edge", "terminal", "add", "--config", config, "--merchant", "mall-fashion"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.hasPrefix("ct_"))
        let auth: Metadata = ["authorization": .string("Bearer \(token)")]

        let first = try EdgeProcess(config: config, directory: directory.url.path)
        let earnRequest = Requests.earn("R-1001", member: "", amount: 250_000)
        let (member, earn, redeem) = try await withClient(port: try await first.port()) { client in
            let points = Coalition_Edge_V1_Points.Client(wrapping: client)
            let member = try await points.enroll(Requests.enroll("E-1", phone: "+8613800138000"), metadata: auth).member
                .memberID
            var request = earnRequest
            request.memberID = member
            let earn = try await points.earn(request, metadata: auth)
            let redeem = try await points.redeem(
                Requests.redeem("P-1001", member: member, bill: 10_000, points: 1_000), metadata: auth)
            // Killed the moment the answer is in: no chance to flush anything later.
            first.signal(SIGKILL)
            return (member, earn, redeem)
        }
        #expect(try await first.waitForExit() == SIGKILL)
        #expect(earn.points == 2_500)
        #expect(redeem.points == 1_000)

        let second = try EdgeProcess(config: config, directory: directory.url.path)
        try await withClient(port: try await second.port()) { client in
            let points = Coalition_Edge_V1_Points.Client(wrapping: client)
            let balance = try await points.getBalance(Requests.balance(member), metadata: auth)
            #expect(balance.member.balancePoints == 200 + 2_500 - 1_000)
            var history = Coalition_Edge_V1_HistoryRequest()
            history.memberID = member
            let entries = try await points.history(history, metadata: auth).entries
            #expect(
                entries.map(\.transactionID) == [
                    redeem.transactionID, earn.transactionID, entries.last?.transactionID ?? "",
                ])
            var retry = earnRequest
            retry.memberID = member
            let again = try await points.earn(retry, metadata: auth)
            #expect(again == earn)
            let redeemAgain = try await points.redeem(
                Requests.redeem("P-1001", member: member, bill: 10_000, points: 1_000), metadata: auth)
            #expect(redeemAgain == redeem)
            #expect(try await points.getBalance(Requests.balance(member), metadata: auth).member.balancePoints == 1_700)
        }
        second.signal(SIGTERM)
        #expect(try await second.waitForExit() == 0)
        #expect(second.log.contains("edge node stopped"))
    }

    @Test("wrong terminal tokens are refused, logged with the peer at a bounded rate; the right token still works")
    func wrongTokens() async throws {
        let directory = try TemporaryDirectory()
        let config = try Self.writeConfig(directory)
        try
            (String(contentsOfFile: config, encoding: .utf8) + """

                limits:
                  token_failures_before_delay: 3
                  token_failure_delay_max_ms: 200
                """).write(toFile: config, atomically: true, encoding: .utf8)
        let token = try await Binary.run(["edge", "terminal", "add", "--config", config, "--merchant", "mall-fashion"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let edge = try EdgeProcess(config: config, directory: directory.url.path)
        try await withClient(port: try await edge.port()) { client in
            let points = Coalition_Edge_V1_Points.Client(wrapping: client)
            for attempt in 0..<30 {
                await expectStatus(.unauthenticated) {
                    _ = try await points.enroll(
                        Requests.enroll("W-\(attempt)", phone: "+8613800138000"),
                        metadata: ["authorization": "Bearer ct_wrong\(attempt)"])
                }
            }
            // The right token from the same address is served.
            let member = try await points.enroll(
                Requests.enroll("E-1", phone: "+8613800138000"), metadata: ["authorization": "Bearer \(token)"]
            ).member
            #expect(member.balancePoints == 200)
        }
        edge.signal(SIGTERM)
        #expect(try await edge.waitForExit() == 0)
        let warnings = edge.log.split(separator: "\n").filter { $0.contains("wrong terminal token") }
        #expect(!warnings.isEmpty, "no warning for 30 wrong tokens")
        #expect(warnings.allSatisfy { $0.contains("peer=ipv4:127.0.0.1") })
        #expect(warnings.count < 10, "\(warnings.count) warnings for 30 failures: the rate is not bounded")
    }
}
