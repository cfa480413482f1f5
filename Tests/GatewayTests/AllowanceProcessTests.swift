// Goal (#18, "Bad input and faults": an edge that crashes with an allowance granted): the real
// `coalition edge serve` process of a car park is granted an allowance at the entry, killed with
// SIGKILL, and restarted on the same file with its link to the gateway cut (a TCP proxy process,
// killed): the exit is paid from the allowance, and after healing the car park's offline_risk is 0,
// nothing is escrowed and the member's balance is right.
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import NodeSupport
import TestSupport
import Testing
import Wire

@Suite("Allowances and a killed edge process")
struct AllowanceProcessTests {
    @Test("SIGKILL after the entry: the restarted car park, cut off, pays the exit from the allowance")
    func killedAfterEntry() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["park-01"])
        _ = try Network.programFile(dir)
        // The edge process runs on the real clock; the gateway's starts at the same instant.
        let clock = ManualWallClock()
        clock.set(Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
        try await Network.withGateway(try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock) {
            gateway in
            let proxy = DatabaseOutageTests.Proxy(portFile: dir + "/proxy.port")
            defer { proxy.kill() }
            let proxyPort = try await proxy.start(listen: 0, target: gateway.port)
            try PrivateFiles.write(String(repeating: "cd", count: 32), to: dir + "/phone.key")
            let config = dir + "/edge.yaml"
            try """
            site_id: park-01
            database_path: park-01.sqlite
            listen: 127.0.0.1:0
            program_file: program.yaml
            phone_hash_key_file: phone.key
            gateway:
              address: 127.0.0.1:\(proxyPort)
              ca_certificate: ca.pem
              certificate: park-01.pem
              private_key: park-01.key
              authorize_deadline_ms: 30000
              sync_interval_ms: 20
              backoff_initial_ms: 20
              backoff_max_ms: 200
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let token = try await Binary.run([
                "edge", "terminal", "add", "--config", config, "--merchant", "park-operator", "--name", "barrier-1",
            ]).trimmingCharacters(in: .whitespacesAndNewlines)
            let auth: Metadata = ["authorization": .string("Bearer \(token)")]
            func withEdge<R: Sendable>(
                _ edge: EdgeProcess,
                _ body: (
                    Coalition_Edge_V1_Points.Client<HTTP2ClientTransport.Posix>,
                    Coalition_Edge_V1_Parking.Client<HTTP2ClientTransport.Posix>
                ) async throws -> R
            ) async throws -> R {
                let port = try await edge.port()
                return try await withGRPCClient(
                    transport: .http2NIOPosix(
                        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
                ) { client in
                    try await body(.init(wrapping: client), .init(wrapping: client))
                }
            }

            var edge = try EdgeProcess(config: config, directory: dir)
            let (member, start, entered) = try await withEdge(edge) { points, parking in
                let member = try await points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: auth
                ).member.memberID
                let start = try await points.earn(Make.earn("R-1", member: member, amount: 1_000_000), metadata: auth)
                    .balanceAfterPoints
                try await Network.eventually("the gateway has the member's points") {
                    try await gateway.balance(member) == start
                }
                var enter = Coalition_Edge_V1_ParkingEnterRequest()
                enter.requestID = "IN-1"
                enter.ticketID = "T-1"
                enter.memberID = member
                return (member, start, try await parking.enter(enter, metadata: auth))
            }
            #expect(entered.allowancePoints == 6_000)
            edge.signal(SIGKILL)
            _ = try await edge.waitForExit()
            proxy.kill()

            edge = try EdgeProcess(config: config, directory: dir)
            let fee = try await withEdge(edge) { points, parking in
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                var quote = Coalition_Edge_V1_ParkingQuoteRequest()
                quote.ticketID = "T-1"
                quote.memberID = member
                quote.entryAtMs = now - 5 * 3_600_000
                quote.exitAtMs = now
                let fee = try await parking.quote(quote, metadata: auth).pointsForFullFee
                var pay = ParkingOnlineTests.pay(
                    "P-1", member: member, hours: 5, points: fee, at: Timestamp(milliseconds: now))
                pay.ticketID = "T-1"
                let paid = try await parking.pay(pay, metadata: auth)
                #expect(paid.authorization == .allowance && paid.openBarrier && paid.points == fee)
                return fee
            }
            #expect(fee > 0)
            #expect(try await proxy.start(listen: proxyPort, target: gateway.port) == proxyPort)
            try await Network.eventually("the car park gave the rest back") {
                try await gateway.account("escrow:park-01") == 0
            }
            let allowance = try #require(try await gateway.ledger.allowance(entered.allowanceID))
            #expect(allowance.status == .returned && allowance.spent == Points(fee))
            #expect(try await gateway.account("offline_risk:park-01") == 0)
            #expect(try await gateway.balance(member) == start - fee)
            edge.signal(SIGTERM)
            #expect(try await edge.waitForExit() == 0)
            try await gateway.checkInvariants()
        }
    }
}
