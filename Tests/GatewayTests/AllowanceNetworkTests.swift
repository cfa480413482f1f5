// Goal (#18, "Done when" 1): two real edges, a car park and a mall, over mutual TLS to a real
// gateway; the car park's link runs through a TCP proxy process that is killed (a cut cable). A
// member with an allowance at the car park exits paying with points while the car park is cut off,
// and spends the rest online at the mall; after healing, the car park's offline_risk is 0, nothing
// is escrowed and the member's balance is right at the gateway and at both edges (a reference
// figure computed from what was earned and spent, not from the ledger's own sums).
import Core
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Allowances across a cut link")
struct AllowanceNetworkTests {
    @Test(
        "the car park spends its allowance offline, the mall the rest online; no risk, right balances",
        arguments: LedgerKind.allCases)
    func cutCarPark(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "park-01"])
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock, ledger: ledger
        ) { gateway in
            let proxy = DatabaseOutageTests.Proxy(portFile: dir + "/proxy.port")
            defer { proxy.kill() }
            let proxyPort = try await proxy.start(listen: 0, target: gateway.port)
            var mallConfig = try Network.edgeConfiguration(
                dir, site: "mall-01", certificates: certificates, gatewayPort: gateway.port)
            mallConfig.gateway?.authorizeDeadlineMilliseconds = 30_000
            var parkConfig = try Network.edgeConfiguration(
                dir, site: "park-01", certificates: certificates, gatewayPort: proxyPort)
            parkConfig.limits.allowanceCheckMilliseconds = 100
            // The order of the decision is under test, not this machine's speed: deadlines the
            // gateway on loopback never misses, even with the rest of the suite running beside it.
            parkConfig.gateway?.authorizeDeadlineMilliseconds = 30_000
            try await Network.withEdge(mallConfig, merchant: "mall-fashion", clock: clock) { mall in
                try await Network.withEdge(parkConfig, merchant: "park-operator", clock: clock) { park in
                    let member = try await mall.points.enroll(
                        Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                    ).member.memberID
                    let earned = try await mall.points.earn(
                        Make.earn("R-1", member: member, amount: 1_000_000), metadata: mall.auth)
                    let start = earned.balanceAfterPoints
                    try await Network.eventually("the gateway has the member's points") {
                        try await gateway.balance(member) == start
                    }
                    try await Network.eventually("the car park knows the member") {
                        try await park.balance(member) == start
                    }
                    // The car enters: up to 6,000 points are reserved for its exit.
                    var enter = Coalition_Edge_V1_ParkingEnterRequest()
                    enter.requestID = "IN-1"
                    enter.ticketID = "T-1"
                    enter.memberID = member
                    let entered = try await park.parking.enter(enter, metadata: park.auth)
                    let reserved: Int64 = 6_000
                    #expect(start > reserved)
                    #expect(entered.allowancePoints == reserved)
                    #expect(try await gateway.account("escrow:park-01") == reserved)
                    #expect(try await gateway.balance(member) == start - reserved)
                    // The member's balance as shown is unchanged everywhere: escrow is still theirs.
                    #expect(try await park.balance(member) == start)
                    try await Network.eventually("the mall shows the member's whole balance") {
                        try await mall.balance(member) == start
                    }
                    // The same entry again answers the first grant.
                    #expect(try await park.parking.enter(enter, metadata: park.auth).alreadyGranted)

                    // The car park's cable is cut.
                    proxy.kill()
                    clock.advance(milliseconds: 3 * 3_600_000)
                    let exit = clock.now()
                    var quote = Coalition_Edge_V1_ParkingQuoteRequest()
                    quote.ticketID = "T-1"
                    quote.memberID = member
                    quote.entryAtMs = exit.milliseconds - 3 * 3_600_000
                    quote.exitAtMs = exit.milliseconds
                    let fee = try await park.parking.quote(quote, metadata: park.auth).pointsForFullFee
                    #expect(fee > 0 && fee <= reserved)
                    let paid = try await park.parking.pay(
                        ParkingOnlineTests.pay("P-1", member: member, hours: 3, points: fee, at: exit),
                        metadata: park.auth)
                    #expect(paid.authorization == .allowance)
                    #expect(paid.openBarrier && paid.points == fee)
                    #expect(paid.balanceAfterPoints == start - fee)
                    // Meanwhile the member spends everything else online at the mall.
                    let rest = start - reserved
                    #expect(rest > 0)
                    do {
                        let redeemed = try await mall.points.redeem(
                            Make.redeem("S-1", member: member, bill: rest * 10, points: rest), metadata: mall.auth)
                        #expect(redeemed.authorization == .online)
                        #expect(redeemed.points == rest)
                    }
                    // Healed: the car park pushes its payment and gives back what the exit left.
                    #expect(try await proxy.start(listen: proxyPort, target: gateway.port) == proxyPort)
                    try await Network.eventually("the car park is synced") { try await Network.synced(park) }
                    try await Network.eventually("the allowance is given back") {
                        try await gateway.account("escrow:park-01") == 0
                    }
                    let expected = start - fee - rest
                    #expect(try await gateway.balance(member) == expected)
                    #expect(try await gateway.account("offline_risk:park-01") == 0)
                    #expect(try await gateway.account("redeemed:park-operator") == fee)
                    #expect(try await gateway.sql.int("SELECT COUNT(*) FROM conflicts") == 0)
                    let allowance = try #require(
                        try await gateway.ledger.allowance(entered.allowanceID))
                    #expect(allowance.status == .returned)
                    #expect(allowance.spent == Points(fee) && allowance.released == Points(reserved - fee))
                    try await Network.eventually("both edges show the member's balance") {
                        let (parked, shopped) = (try await park.balance(member), try await mall.balance(member))
                        return parked == expected && shopped == expected
                    }
                    try await gateway.checkInvariants()
                    // Settlement is unchanged by the reservation: the day's statement pays the car
                    // park for the points spent, and the points members hold (lots) are the liability.
                    clock.set(SettlementTests.at("2026-11-25T01:00"))
                    let day = try await gateway.ledger.closeSettlement(
                        period: CivilDate(parsing: "2026-11-24")!, by: "alice")
                    let carPark = try SettlementTests.merchant(day.json, "park-operator")
                    #expect(carPark["parking_points"] as? Int == Int(fee))
                    #expect(carPark["offline_risk_points"] as? Int == 0)
                    let platform = try #require(SettlementTests.statement(day.json)["platform"] as? [String: Any])
                    let liability = try #require(platform["liability"] as? [String: Any])
                    #expect(liability["closing_points"] as? Int == Int(expected))
                }
            }
        }
    }
}
