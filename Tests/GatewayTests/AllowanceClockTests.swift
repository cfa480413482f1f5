// Goal (#18, "Bad input and faults"): the margin and the catch-up rule cover a car park whose
// clock runs fast or slow by the program's whole tolerance (`clock_skew_max_minutes`, 10). The car
// park, cut off (its link through a TCP proxy process that is killed), spends its allowance up to
// its own stop instant; the gateway, past the lease and its margin, must not reclaim what the car
// park may still be carrying; healed, the spend posts from escrow, nothing is charged to risk and
// no conflict is raised. A real gateway and a real edge over mutual TLS, each on its own clock.
import Core
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Allowances and skewed clocks")
struct AllowanceClockTests {
    @Test(
        "a car park 10 minutes fast or slow spends to its stop instant; the gateway waits for it",
        arguments: [Int64(-10), 10], LedgerKind.allCases)
    func skewed(skewMinutes: Int64, ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["park-01"])
        let clock = ManualWallClock()
        let parkClock = ManualWallClock()
        let skew = skewMinutes * 60_000
        func advance(_ milliseconds: Int64) {
            clock.advance(milliseconds: milliseconds)
            parkClock.set(clock.now().adding(milliseconds: skew))
        }
        advance(0)
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock, ledger: ledger
        ) { gateway in
            let proxy = DatabaseOutageTests.Proxy(portFile: dir + "/proxy.port")
            defer { proxy.kill() }
            let proxyPort = try await proxy.start(listen: 0, target: gateway.port)
            var config = try Network.edgeConfiguration(
                dir, site: "park-01", certificates: certificates, gatewayPort: proxyPort)
            config.limits.allowanceCheckMilliseconds = 100
            config.gateway?.authorizeDeadlineMilliseconds = 30_000
            try await Network.withEdge(config, merchant: "park-operator", clock: parkClock) { park in
                let member = try await park.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: park.auth
                ).member.memberID
                let start = try await park.points.earn(
                    Make.earn("R-1", member: member, amount: 1_000_000), metadata: park.auth
                ).balanceAfterPoints
                try await Network.eventually("the gateway has the member's points") {
                    try await gateway.balance(member) == start
                }
                var enter = Coalition_Edge_V1_ParkingEnterRequest()
                enter.requestID = "IN-1"
                enter.ticketID = "T-1"
                enter.memberID = member
                let entered = try await park.parking.enter(enter, metadata: park.auth)
                let lease = try #require(try await gateway.ledger.allowance(entered.allowanceID)).leaseUntil
                // The stop instant is the lease less the tolerance, as a time on the car park's clock.
                #expect(entered.allowanceUntilMs == lease.milliseconds - 10 * 60_000)

                proxy.kill()
                // One second before the car park's stop instant, on its own clock.
                advance(entered.allowanceUntilMs - 1_000 - parkClock.now().milliseconds)
                var quote = Coalition_Edge_V1_ParkingQuoteRequest()
                quote.ticketID = "T-1"
                quote.memberID = member
                quote.entryAtMs = parkClock.now().milliseconds - 3 * 3_600_000
                quote.exitAtMs = parkClock.now().milliseconds
                let fee = try await park.parking.quote(quote, metadata: park.auth).pointsForFullFee
                var pay = ParkingOnlineTests.pay("P-1", member: member, hours: 3, points: fee, at: parkClock.now())
                pay.ticketID = "T-1"
                let paid = try await park.parking.pay(pay, metadata: park.auth)
                #expect(paid.authorization == .allowance && paid.openBarrier)
                // Past the stop instant the car park spends no more of it.
                advance(2_000)
                var late = Coalition_Edge_V1_RedeemRequest()
                late.requestID = "S-1"
                late.memberID = member
                late.billAmountMinor = 1_000
                late.points = 50
                let after = try? await park.points.redeem(late, metadata: park.auth)
                #expect(after?.authorization != .allowance)

                // The gateway, past the lease and its margin, has no word from the car park since
                // before the lease ended: it must not take the allowance back.
                advance(lease.milliseconds + 31 * 60_000 - clock.now().milliseconds)
                #expect(try await gateway.ledger.reclaimAllowances(limit: 100) == 0)

                #expect(try await proxy.start(listen: proxyPort, target: gateway.port) == proxyPort)
                try await Network.eventually("the car park is synced") { try await Network.synced(park) }
                try await Network.eventually("the allowance is given back") {
                    try await gateway.account("escrow:park-01") == 0
                }
                let allowance = try #require(try await gateway.ledger.allowance(entered.allowanceID))
                #expect(allowance.status == .returned)
                #expect(allowance.spent == Points(fee))
                #expect(try await gateway.account("offline_risk:park-01") == 0)
                #expect(try await gateway.sql.int("SELECT COUNT(*) FROM conflicts WHERE kind LIKE 'allowance%'") == 0)
                #expect(try await gateway.balance(member) == start - fee - (after?.points ?? 0))
                try await gateway.checkInvariants()
            }
        }
    }
}
