// Goal (#18): a hotel's check-in reserves points for the stay; the hotel's edge, cut off and then
// crashed and restarted on the same database file, still spends the allowance first (the
// restaurant bill), and when the stop instant passes its own job gives back what is left, which
// the gateway posts on healing: the member's balance is right, nothing is escrowed, no risk.
import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Allowances at a hotel")
struct AllowanceHotelTests {
    @Test("check-in, a crash, a restaurant bill from the allowance, the rest given back at the stop instant")
    func stay() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["hotel-01"])
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock
        ) { gateway in
            let proxy = DatabaseOutageTests.Proxy(portFile: dir + "/proxy.port")
            defer { proxy.kill() }
            let proxyPort = try await proxy.start(listen: 0, target: gateway.port)
            var config = try Network.edgeConfiguration(
                dir, site: "hotel-01", certificates: certificates, gatewayPort: proxyPort)
            config.limits.allowanceCheckMilliseconds = 100
            config.gateway?.authorizeDeadlineMilliseconds = 30_000
            let (member, start, checkedIn) = try await Network.withEdge(
                config, merchant: "hotel-rooms", clock: clock
            ) { hotel in
                let member = try await hotel.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: hotel.auth
                ).member.memberID
                let start = try await hotel.points.earn(
                    Make.earn("R-1", member: member, amount: 1_500_000), metadata: hotel.auth
                ).balanceAfterPoints
                try await Network.eventually("the gateway has the member's points") {
                    try await gateway.balance(member) == start
                }
                var request = Coalition_Edge_V1_CheckInRequest()
                request.requestID = "CI-1"
                request.memberID = member
                let checkedIn = try await hotel.points.checkIn(request, metadata: hotel.auth)
                #expect(checkedIn.allowancePoints == min(20_000, start))
                // Bad input changes nothing: an unknown member, a malformed one.
                request.requestID = "CI-2"
                request.memberID = "01JAAAAAAAAAAAAAAAAAAAAAAA"
                await expectStatus(.notFound) { _ = try await hotel.points.checkIn(request, metadata: hotel.auth) }
                request.memberID = "nobody"
                await expectStatus(.invalidArgument) {
                    _ = try await hotel.points.checkIn(request, metadata: hotel.auth)
                }
                return (member, start, checkedIn)
            }
            #expect(try await gateway.account("escrow:hotel-01") == checkedIn.allowancePoints)
            // The link goes down; the edge crashes and restarts on the same file.
            proxy.kill()
            try await Network.withEdge(config, merchant: "hotel-restaurant", clock: clock) { hotel in
                // A check-in cannot be granted offline: the desk hears so at once.
                var again = Coalition_Edge_V1_CheckInRequest()
                again.requestID = "CI-3"
                again.memberID = member
                await expectStatus(.unavailable, reason: "OFFLINE") {
                    _ = try await hotel.points.checkIn(again, metadata: hotel.auth)
                }
                clock.advance(milliseconds: 20 * 3_600_000)
                let bill = try await hotel.points.redeem(
                    Make.redeem("S-1", member: member, bill: 300_000, points: 3_000), metadata: hotel.auth)
                #expect(bill.authorization == .allowance && bill.points == 3_000)
                #expect(bill.balanceAfterPoints == start - 3_000)
                // Past the stop instant (three nights, less the clocks' tolerance) the edge gives
                // back what is left on its own.
                clock.set(Timestamp(milliseconds: checkedIn.allowanceUntilMs))
                try await Network.eventually("the edge gives the rest back") {
                    try await hotel.node.ledger.database.pool.read { db in
                        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE kind = 'allowance_return'") == 1
                    }
                }
                #expect(try await hotel.balance(member) == start - 3_000)
                #expect(try await proxy.start(listen: proxyPort, target: gateway.port) == proxyPort)
                try await Network.eventually("the hotel is synced") { try await Network.synced(hotel) }
                let allowance = try #require(try await gateway.ledger.allowance(checkedIn.allowanceID))
                #expect(allowance.status == .returned)
                #expect(allowance.spent == Points(3_000))
                #expect(allowance.released == Points(checkedIn.allowancePoints - 3_000))
                #expect(try await gateway.account("escrow:hotel-01") == 0)
                #expect(try await gateway.account("offline_risk:hotel-01") == 0)
                #expect(try await gateway.balance(member) == start - 3_000)
                try await Network.eventually("the edge shows the gateway's figure") {
                    try await hotel.balance(member) == start - 3_000
                }
                try await gateway.checkInvariants()
            }
        }
    }
}
