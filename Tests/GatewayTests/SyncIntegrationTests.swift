// Goal: the promises of DESIGN §5-§6 through real gateway and edge servers on loopback with real
// mutual TLS: offline redemptions that overdraw a member end at zero with the excess on the
// cut-off site's offline_risk, conflicts are listed, and every edge converges to the gateway.
import Core
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Sync between edges and the gateway")
struct SyncIntegrationTests {
    /// A port nothing listens on: an edge configured with it is cut off from the gateway.
    static let deadPort = 9

    /// An edge lists several gateways (`gateway.addresses`): a call that fails on one moves the
    /// next calls to the next (issue #15).
    @Test("an edge whose first gateway address is down syncs through the next one", arguments: LedgerKind.allCases)
    func failover(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        let dir = directory.url.path
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock, ledger: ledger
        ) {
            gateway in
            var config = try Network.edgeConfiguration(
                dir, site: "mall-01", certificates: certificates, gatewayPort: Self.deadPort)
            config.gateway?.alternates = [GatewayLink.Alternate(host: "127.0.0.1", port: gateway.port)]
            #expect(config.gateway?.addresses.map(\.port) == [Self.deadPort, gateway.port])
            try await Network.withEdge(config, merchant: "mall-fashion", clock: clock) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 80_000), metadata: mall.auth)
                try await Network.eventually("the gateway has the member's 1,000 points") {
                    try await gateway.balance(member) == 1_000
                }
                try await Network.eventually("synced") { try await Network.synced(mall) }
            }
            try await gateway.checkInvariants()
        }
    }

    @Test(
        "an overdraw by a cut-off site ends at zero everywhere, with the excess on that site's offline_risk",
        arguments: LedgerKind.allCases)
    func offlineOverdraw(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(
            directory: directory.url.path, sites: ["mall-01", "hotel-01", "park-01"])
        let clock = ManualWallClock()
        let dir = directory.url.path
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock, ledger: ledger
        ) {
            gateway in
            let connected = { (site: String) in
                var config = try Network.edgeConfiguration(
                    dir, site: site, certificates: certificates, gatewayPort: gateway.port)
                // Which path decides is under test, not this machine's speed under a loaded suite.
                config.gateway?.authorizeDeadlineMilliseconds = 30_000
                return config
            }
            try await Network.withEdge(try connected("park-01"), merchant: "park-operator", clock: clock) { park in
                try await Network.withEdge(try connected("mall-01"), merchant: "mall-fashion", clock: clock) { mall in
                    let member = try await mall.points.enroll(
                        Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                    ).member.memberID
                    _ = try await mall.points.earn(
                        Make.earn("R-1", member: member, amount: 80_000), metadata: mall.auth)
                    try await Network.eventually("the gateway has the member's 1,000 points") {
                        try await gateway.balance(member) == 1_000
                    }

                    // The hotel learns the member while connected.
                    try await Network.withEdge(try connected("hotel-01"), merchant: "hotel-rooms", clock: clock) {
                        hotel in
                        try await Network.eventually("the hotel sees 1,000") {
                            try await hotel.balance(member) == 1_000
                        }
                    }
                    // Cut off, the hotel redeems within its floor limit.
                    let cutOff = try Network.edgeConfiguration(
                        dir, site: "hotel-01", certificates: certificates, gatewayPort: Self.deadPort)
                    try await Network.withEdge(cutOff, merchant: "hotel-rooms", clock: clock) { hotel in
                        let redeemed = try await hotel.points.redeem(
                            Make.redeem("H-1", member: member, bill: 200_000, points: 800), metadata: hotel.auth)
                        #expect(redeemed.authorization == .floorLimit)
                        #expect(redeemed.balanceAfterPoints == 200)
                    }
                    // Meanwhile the mall, online, redeems against the global balance.
                    let online = try await mall.points.redeem(
                        Make.redeem("P-1", member: member, bill: 200_000, points: 600), metadata: mall.auth)
                    #expect(online.authorization == .online)
                    try await Network.eventually("the mall's redemption is posted") {
                        try await gateway.balance(member) == 400
                    }

                    // The hotel reconnects: its 800 meet 400 left.
                    try await Network.withEdge(try connected("hotel-01"), merchant: "hotel-rooms", clock: clock) {
                        hotel in
                        try await Network.eventually("the hotel is synced") { try await Network.synced(hotel) }
                        #expect(try await gateway.balance(member) == 0)
                        #expect(try await gateway.account("offline_risk:hotel-01") == -400)
                        #expect(try await gateway.account("redeemed:hotel-rooms") == 800)
                        let conflicts = try await gateway.conflicts(kind: "offline_overdraw")
                        #expect(conflicts.count == 1)
                        #expect(conflicts.first?.site == "hotel-01")
                        #expect(conflicts.first?.points == 400)
                        #expect(try await gateway.flags("hotel-01").contains("offline_overdraw"))
                        for edge in [mall, hotel, park] {
                            try await Network.eventually("every edge shows 0") { try await edge.balance(member) == 0 }
                        }
                    }
                    try await gateway.checkInvariants()
                }
            }
        }
    }
}
