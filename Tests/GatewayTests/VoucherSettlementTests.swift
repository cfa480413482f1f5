// Goal (issue #16): vouchers are settled in money. Each voucher use that stands pays its honouring
// merchant the item's settlement price, from the item's sponsor (a merchant, or the platform), on
// lines of their own in the statement and the journal; a double use is the honouring site's cost
// (paid for the points, charged the same as risk, no settlement price); orders' points count as
// redeemed in the liability roll-forward. A day of app orders and till uses, hand-computed, on
// SQLite and PostgreSQL, with two real edges.
import Core
import EdgeNode
import Foundation
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Settlement of vouchers")
struct VoucherSettlementTests {
    @Test("a day of orders and voucher uses settles with hand-computed voucher lines", arguments: LedgerKind.allCases)
    func day(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "hotel-01"])
        try certificates.issue(.channel("app"), name: "app")
        let clock = ManualWallClock()
        clock.set(SettlementTests.at("2026-11-24T12:00"))
        let configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        // The coffee voucher is good at the mall's café and the hotel's restaurant.
        try Repository.exampleProgram(replacing: [
            ("minimum_points: 500", "minimum_points: 100"),
            (
                "        formats: [mall]\n        merchants: [mall-cafe]",
                "        formats: [mall, hotel]\n        merchants: [mall-cafe, hotel-restaurant]"
            ),
        ]).write(toFile: try #require(configuration.programFile), atomically: true, encoding: .utf8)
        try await Network.withGateway(configuration, clock: clock, ledger: ledger) { gateway in
            try await Self.play(gateway: gateway, dir: dir, certificates: certificates, clock: clock)
        }
    }

    static func play(gateway: GatewayHarness, dir: String, certificates: TestCertificates, clock: ManualWallClock)
        async throws
    {
        func edge(_ site: String, online: Bool) throws -> EdgeConfiguration {
            try Network.edgeConfiguration(
                dir, site: site, certificates: certificates,
                gatewayPort: online ? gateway.port : SyncIntegrationTests.deadPort)
        }
        let member = try await Network.withEdge(edge("mall-01", online: true), merchant: "mall-cafe", clock: clock) {
            mall in
            let member = try await mall.points.enroll(Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth)
                .member.memberID
            _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 1_200_000), metadata: mall.auth)
            try await Network.eventually("synced") { try await Network.synced(mall) }
            return member
        }
        // Two coffees (platform, ¥18 each when honoured) and an afternoon tea (the hotel's
        // restaurant sponsors it, ¥128 when honoured).
        let (coffees, tea) = try await MemberServiceTests.withMember(
            port: gateway.port, certificates: certificates, certificate: "app"
        ) { api in
            let coffees = try await api.placeOrder(
                MemberServiceTests.order("O-1", member: member, item: "coffee", quantity: 2))
            let tea = try await api.placeOrder(MemberServiceTests.order("O-2", member: member, item: "afternoon-tea"))
            return (coffees.order.vouchers, tea.order.vouchers[0])
        }
        #expect(coffees.count == 2)
        // The hotel pulls the voucher key, then goes offline before hearing of any use.
        try await Network.withEdge(edge("hotel-01", online: true), merchant: "hotel-restaurant", clock: clock) {
            hotel in
            try await Network.eventually("the hotel pulled the voucher key") {
                (try? await hotel.vouchers.check(VoucherCheckTests.check(tea.code), metadata: hotel.auth)) != nil
            }
        }
        // The café honours the first coffee online.
        try await Network.withEdge(edge("mall-01", online: true), merchant: "mall-cafe", clock: clock) { cafe in
            _ = try await cafe.vouchers.redeem(VoucherUseTests.use("C-1", coffees[0].code), metadata: cafe.auth)
            try await Network.eventually("the café synced") { try await Network.synced(cafe) }
        }
        // Offline, the restaurant honours the afternoon tea and the same coffee again.
        clock.advance(milliseconds: 60_000)
        try await Network.withEdge(edge("hotel-01", online: false), merchant: "hotel-restaurant", clock: clock) {
            hotel in
            _ = try await hotel.vouchers.redeem(VoucherUseTests.use("H-1", tea.code), metadata: hotel.auth)
            _ = try await hotel.vouchers.redeem(VoucherUseTests.use("H-2", coffees[0].code), metadata: hotel.auth)
        }
        try await Network.withEdge(edge("hotel-01", online: true), merchant: "hotel-restaurant", clock: clock) {
            hotel in
            try await Network.eventually("the hotel synced") { try await Network.synced(hotel) }
        }
        #expect(try await gateway.conflicts(kind: "voucher_double_use").map(\.site) == ["hotel-01"])

        clock.set(SettlementTests.at("2026-11-25T00:30"))
        let day = try await gateway.ledger.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "alice")
        let cafe = try SettlementTests.merchant(day.json, "mall-cafe")
        let restaurant = try SettlementTests.merchant(day.json, "hotel-restaurant")
        let object = try SettlementTests.statement(day.json)
        let platform = try #require(object["platform"] as? [String: Any])
        func int(_ row: [String: Any], _ key: String) -> Int { row[key] as? Int ?? -1 }

        // By hand. The café honoured one coffee: the platform pays it ¥18. It sponsors nothing.
        #expect(int(cafe, "vouchers_honoured") == 1 && int(cafe, "vouchers_honoured_minor") == 1_800)
        #expect(int(cafe, "vouchers_sponsored") == 0 && int(cafe, "vouchers_sponsored_minor") == 0)
        #expect(
            int(cafe, "net_minor")
                == int(cafe, "receivable_minor") - int(cafe, "payable_minor") - int(cafe, "risk_charge_minor") + 1_800)
        // The restaurant: 8,000 points of the tea order (its own item) and the 1,500 of the coffee
        // it honoured a second time, both at 1 fen; the second coffee is its risk (1,500 points at
        // 1 fen); it honoured its own tea: ¥128 in and ¥128 out; no settlement price for the coffee.
        #expect(int(restaurant, "points_redeemed") == 9_500)
        #expect(int(restaurant, "offline_risk_points") == 1_500)
        #expect(int(restaurant, "receivable_minor") == 9_500 && int(restaurant, "risk_charge_minor") == 1_500)
        #expect(int(restaurant, "vouchers_honoured") == 1 && int(restaurant, "vouchers_honoured_minor") == 12_800)
        #expect(int(restaurant, "vouchers_sponsored") == 1 && int(restaurant, "vouchers_sponsored_minor") == 12_800)
        #expect(int(restaurant, "payable_minor") == 0 && int(restaurant, "net_minor") == 8_000)
        // The platform pays for the coffee it sponsors.
        #expect(int(platform, "vouchers_sponsored") == 1 && int(platform, "vouchers_sponsored_minor") == 1_800)
        #expect(
            int(platform, "net_minor") == int(platform, "spread_minor") + int(platform, "risk_minor") - 1_800)
        let merchants = try #require(object["merchants"] as? [[String: Any]])
        #expect(merchants.reduce(0) { $0 + int($1, "net_minor") } + int(platform, "net_minor") == 0)
        // The journal: the platform's voucher expense to the café; nothing between the restaurant
        // and itself; debits equal credits.
        let journal = try #require(object["journal"] as? [[String: Any]])
        let voucherLines = journal.filter { $0["memo"] as? String == "vouchers honoured" }
        #expect(voucherLines.count == 1)
        #expect(voucherLines.first?["debit"] as? String == "platform:voucher_expense")
        #expect(voucherLines.first?["credit"] as? String == "merchant:mall-cafe")
        #expect(voucherLines.first?["amount_minor"] as? Int == 1_800)
        #expect(object["journal_debits_minor"] as? Int == object["journal_credits_minor"] as? Int)
        // The liability: the orders' 11,000 points left members' lots as redeemed; what was left
        // closes the period (the café's sign-up and earn, less the orders).
        let liability = try #require(platform["liability"] as? [String: Any])
        #expect(liability["redeemed_points"] as? Int == 11_000)
        #expect(liability["closing_points"] as? Int == Int(try await gateway.balance(member)))
        // The CSV says the same in its voucher columns.
        let csv = String(decoding: day.csv, as: UTF8.self)
        #expect(
            csv.contains(
                "risk_charge_minor,vouchers_honoured,vouchers_honoured_minor,vouchers_sponsored,vouchers_sponsored_minor,net_minor"
            ))
        #expect(csv.contains("\nhotel-restaurant,hotel-01,1,0,0,0,9500,0,1500,0,0,9500,1500,1,12800,1,12800,8000,0"))
        try await gateway.checkInvariants()
    }
}
