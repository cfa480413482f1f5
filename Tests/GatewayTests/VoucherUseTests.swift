// Goal (issue #16): a voucher is honoured at a till without the gateway, exactly once per request
// id, and an edge refuses a voucher it has seen used. Two sites offline honouring the same voucher:
// at sync the first use posted stands and the second is a `voucher_double_use` conflict booked to
// that site's `offline_risk`, never to the member, and never lost; a voucher used offline after its
// order was cancelled is a `voucher_cancelled` conflict booked the same way. Real gateway, two real
// edges restarted off and on line over mutual TLS, on SQLite and on PostgreSQL.
import Core
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Vouchers honoured at tills")
struct VoucherUseTests {
    static func use(_ request: String, _ code: String) -> Coalition_Edge_V1_RedeemVoucherRequest {
        var message = Coalition_Edge_V1_RedeemVoucherRequest()
        message.requestID = request
        message.code = code
        return message
    }

    @Test(
        "two offline sites honour one voucher: the first use posted stands, the second is booked to its site's risk",
        arguments: LedgerKind.allCases)
    func doubleUse(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "hotel-01"])
        try certificates.issue(.channel("app"), name: "app")
        let clock = ManualWallClock()
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
        do {
            func edge(_ site: String, online: Bool) throws -> EdgeConfiguration {
                try Network.edgeConfiguration(
                    dir, site: site, certificates: certificates,
                    gatewayPort: online ? gateway.port : SyncIntegrationTests.deadPort)
            }
            let member = try await Network.withEdge(edge("mall-01", online: true), merchant: "mall-cafe", clock: clock)
            { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 600_000), metadata: mall.auth)
                try await Network.eventually("synced") { try await Network.synced(mall) }
                return member
            }
            // Two coffee vouchers (1,500 points each); the second order is cancelled below.
            let (kept, dropped) = try await MemberServiceTests.withMember(
                port: gateway.port, certificates: certificates, certificate: "app"
            ) { api in
                let kept = try await api.placeOrder(MemberServiceTests.order("O-1", member: member, item: "coffee"))
                let dropped = try await api.placeOrder(MemberServiceTests.order("O-2", member: member, item: "coffee"))
                return (kept.order, dropped.order)
            }
            let voucher = kept.vouchers[0]
            let balance = try await gateway.balance(member)
            // Both sites meet the gateway once and pull the voucher key.
            for (site, merchant) in [("mall-01", "mall-cafe"), ("hotel-01", "hotel-restaurant")] {
                try await Network.withEdge(edge(site, online: true), merchant: merchant, clock: clock) { till in
                    try await Network.eventually("\(site) pulled the voucher key") {
                        (try? await till.vouchers.check(VoucherCheckTests.check(voucher.code), metadata: till.auth))
                            != nil
                    }
                }
            }
            // The app cancels the second order; neither site hears of it before it goes offline.
            _ = try await MemberServiceTests.withMember(
                port: gateway.port, certificates: certificates, certificate: "app"
            ) { api in
                var cancel = Coalition_Member_V1_CancelOrderRequest()
                cancel.orderID = dropped.orderID
                return try await api.cancelOrder(cancel)
            }
            #expect(try await gateway.balance(member) == balance + 1_500)

            // Offline, the café honours the kept voucher; its retry gets the same answer; another
            // till's use of it and a reuse of the request id are refused; it honours the cancelled one.
            let first = try await Network.withEdge(edge("mall-01", online: false), merchant: "mall-cafe", clock: clock)
            {
                cafe in
                let first = try await cafe.vouchers.redeem(Self.use("C-1", voucher.code), metadata: cafe.auth)
                #expect(first.voucher.voucherID == voucher.voucherID && first.voucher.itemID == "coffee")
                #expect(first.voucher.settlementPriceMinor == 1_800)
                let retry = try await cafe.vouchers.redeem(Self.use("C-1", voucher.code), metadata: cafe.auth)
                #expect(retry == first)
                await expectStatus(.failedPrecondition, reason: "VOUCHER_USED") {
                    _ = try await cafe.vouchers.redeem(Self.use("C-2", voucher.code), metadata: cafe.auth)
                }
                await expectStatus(.failedPrecondition, reason: "VOUCHER_USED") {
                    _ = try await cafe.vouchers.check(VoucherCheckTests.check(voucher.code), metadata: cafe.auth)
                }
                await expectStatus(.alreadyExists, reason: "REQUEST_ID_REUSED") {
                    _ = try await cafe.vouchers.redeem(
                        Self.use("C-1", dropped.vouchers[0].code), metadata: cafe.auth)
                }
                await expectStatus(.invalidArgument, reason: "VOUCHER_MALFORMED") {
                    _ = try await cafe.vouchers.redeem(Self.use("C-3", "CV123"), metadata: cafe.auth)
                }
                // A use is not a purchase the till can refund.
                var reverse = Coalition_Edge_V1_ReverseRequest()
                reverse.requestID = "C-4"
                reverse.originalTransactionID = first.transactionID
                await expectStatus(.failedPrecondition, reason: "NOT_REVERSIBLE") {
                    _ = try await cafe.points.reverse(reverse, metadata: cafe.auth)
                }
                _ = try await cafe.vouchers.redeem(Self.use("C-5", dropped.vouchers[0].code), metadata: cafe.auth)
                return first
            }
            // The hotel's restaurant, offline too, honours the kept voucher a minute later.
            clock.advance(milliseconds: 60_000)
            let second = try await Network.withEdge(
                edge("hotel-01", online: false), merchant: "hotel-restaurant", clock: clock
            ) { restaurant in
                try await restaurant.vouchers.redeem(Self.use("H-1", voucher.code), metadata: restaurant.auth)
            }
            #expect(second.transactionID != first.transactionID)

            // The café syncs first: its use stands. Then the hotel's: a conflict on the hotel.
            try await Network.withEdge(edge("mall-01", online: true), merchant: "mall-cafe", clock: clock) { cafe in
                try await Network.eventually("the café synced") { try await Network.synced(cafe) }
            }
            try await Network.withEdge(edge("hotel-01", online: true), merchant: "hotel-restaurant", clock: clock) {
                restaurant in
                try await Network.eventually("the hotel synced") { try await Network.synced(restaurant) }
                await expectStatus(.failedPrecondition, reason: "VOUCHER_USED") {
                    _ = try await restaurant.vouchers.check(
                        VoucherCheckTests.check(voucher.code), metadata: restaurant.auth)
                }
            }
            let stood = try await gateway.sql.rows(
                "SELECT status, used_site, used_transaction_id FROM vouchers WHERE voucher_id = ?", [voucher.voucherID])
            #expect(stood.first == ["used", "mall-01", first.transactionID])
            let cancelled = try await gateway.sql.rows(
                "SELECT status, used_site FROM vouchers WHERE voucher_id = ?", [dropped.vouchers[0].voucherID])
            #expect(cancelled.first == ["cancelled", nil])
            // The member paid once for each order kept, and nothing for the uses.
            #expect(try await gateway.balance(member) == balance + 1_500)
            #expect(
                try await gateway.conflicts(kind: "voucher_double_use").map { "\($0.site) \($0.points)" } == [
                    "hotel-01 1500"
                ])
            #expect(
                try await gateway.conflicts(kind: "voucher_cancelled").map { "\($0.site) \($0.points)" } == [
                    "mall-01 1500"
                ])
            #expect(try await gateway.account("offline_risk:hotel-01") == -1_500)
            #expect(try await gateway.account("offline_risk:mall-01") == -1_500)
            #expect(try await gateway.account("redeemed:hotel-restaurant") == 1_500)
            #expect(try await gateway.account("redeemed:mall-cafe") == 1_500)
            // Every use is in the ledger, the conflicts' too.
            #expect(
                try await gateway.sql.int("SELECT COUNT(*) FROM transactions WHERE kind = 'voucher_use'", []) == 3)
            // A used voucher's order is not cancelled.
            try await MemberServiceTests.withMember(port: gateway.port, certificates: certificates, certificate: "app")
            { api in
                var cancel = Coalition_Member_V1_CancelOrderRequest()
                cancel.orderID = kept.orderID
                await expectStatus(.failedPrecondition, reason: "VOUCHER_USED") {
                    _ = try await api.cancelOrder(cancel)
                }
                var get = Coalition_Member_V1_GetOrderRequest()
                get.orderID = kept.orderID
                let order = try await api.getOrder(get)
                #expect(order.order.vouchers.map(\.status) == [.used])
            }
            try await gateway.checkInvariants()
        }
    }
}
