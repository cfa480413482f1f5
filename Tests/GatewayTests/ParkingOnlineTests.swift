// Goal: a barrier payment in points is a redemption, decided in the same order (DESIGN §4): the
// gateway first, within the authorisation deadline, and the site's floor limits only when the
// gateway does not answer. Through a real gateway and a real car-park edge over mutual TLS.
import Core
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Parking payments online")
struct ParkingOnlineTests {
    static func pay(_ id: String, member: String, hours: Int64, points: Int64, at now: Timestamp)
        -> Coalition_Edge_V1_ParkingPayRequest
    {
        var request = Coalition_Edge_V1_ParkingPayRequest()
        request.requestID = id
        request.ticketID = "T-\(id)"
        request.memberID = member
        request.entryAtMs = now.milliseconds - hours * 3_600_000
        request.exitAtMs = now.milliseconds
        request.points = points
        return request
    }

    @Test(
        "a fee above the offline cap is authorised by the gateway and paid from its hold",
        arguments: LedgerKind.allCases)
    func aboveOfflineCap(ledger: LedgerKind) async throws {
        // The order of the decision is under test, not this machine's speed: a deadline the gateway
        // on loopback never misses, even with the rest of the suite running beside it.
        try await Network.withLinkedEdge(
            site: "park-01", merchant: "park-operator", edit: { $0.gateway?.authorizeDeadlineMilliseconds = 30_000 },
            ledger: ledger
        ) { gateway, park, clock in
            let member = try await park.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: park.auth
            ).member.memberID
            _ = try await park.points.earn(Make.earn("R-1", member: member, amount: 700_000), metadata: park.auth)
            try await Network.eventually("the gateway knows the member's 7,200 points") {
                try await gateway.balance(member) == 7_200
            }
            try await Network.eventually("the edge has the member's silver tier from the gateway") {
                var request = Coalition_Edge_V1_GetBalanceRequest()
                request.memberID = member
                return try await park.points.getBalance(request, metadata: park.auth).member.tier == "silver"
            }
            // 7,200 points made the member silver (60 free minutes a day): 25 hours are charged
            // as 24, ¥60 (the daily cap) = 6,000 points, above the car park's offline cap of
            // 5,000 points a transaction.
            let paid = try await park.parking.pay(
                Self.pay("P-1", member: member, hours: 25, points: 6_000, at: clock.now()), metadata: park.auth)
            #expect(paid.authorization == .online)
            #expect(paid.points == 6_000)
            #expect(paid.openBarrier)
            #expect(paid.amountDueMinor == 0)
            try await Network.eventually("the payment is posted") { try await Network.synced(park) }
            #expect(try await gateway.balance(member) == 1_200)
            #expect(try await gateway.account("redeemed:park-operator") == 6_000)
            #expect(try await gateway.account("offline_risk:park-01") == 0)
            #expect(try await gateway.activeHolds() == 0)
            #expect(try await gateway.conflicts(kind: "offline_overdraw").isEmpty)
            try await Network.eventually("the edge shows the gateway's balance") {
                try await park.balance(member) == 1_200
            }
            try await gateway.checkInvariants()
        }
    }

    @Test(
        "without the gateway the same payment meets the floor limit; within it, it is paid offline",
        arguments: LedgerKind.allCases)
    func gatewayUnreachable(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["park-01"])
        let clock = ManualWallClock()
        let config = try Network.edgeConfiguration(
            dir, site: "park-01", certificates: certificates, gatewayPort: nil)
        try await Network.withEdge(config, merchant: "park-operator", clock: clock) { park in
            let member = try await park.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: park.auth
            ).member.memberID
            _ = try await park.points.earn(Make.earn("R-1", member: member, amount: 700_000), metadata: park.auth)
            await expectStatus(.failedPrecondition, reason: "OFFLINE_TRANSACTION_CAP") {
                _ = try await park.parking.pay(
                    Self.pay("P-1", member: member, hours: 25, points: 7_000, at: clock.now()), metadata: park.auth)
            }
            let paid = try await park.parking.pay(
                Self.pay("P-2", member: member, hours: 5, points: 5_000, at: clock.now()), metadata: park.auth)
            #expect(paid.authorization == .floorLimit)
            #expect(paid.points == 5_000)
        }
    }
}
