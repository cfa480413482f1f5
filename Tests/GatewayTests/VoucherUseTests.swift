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
                // The member's vouchers, every source: both orders', newest first, one status, paged.
                var mine = Coalition_Member_V1_ListVouchersRequest()
                mine.memberID = member
                let all = try await api.listVouchers(mine).vouchers
                #expect(Set(all.map(\.voucher.voucherID)) == [voucher.voucherID, dropped.vouchers[0].voucherID])
                #expect(all.allSatisfy { $0.source == "order" && $0.itemID == "coffee" && !$0.voucher.code.isEmpty })
                #expect(all.first { $0.voucher.voucherID == voucher.voucherID }?.sourceID == kept.orderID)
                mine.status = .used
                #expect(try await api.listVouchers(mine).vouchers.map(\.voucher.voucherID) == [voucher.voucherID])
                mine.status = .unspecified
                mine.pageSize = 1
                let first = try await api.listVouchers(mine)
                #expect(first.vouchers.count == 1 && !first.nextPageToken.isEmpty)
                mine.pageToken = first.nextPageToken
                let second = try await api.listVouchers(mine)
                #expect(second.vouchers.count == 1 && second.nextPageToken.isEmpty)
                #expect(first.vouchers[0].voucher.voucherID > second.vouchers[0].voucher.voucherID)
                mine.pageToken = "not-a-token"
                await expectStatus(.invalidArgument) { _ = try await api.listVouchers(mine) }
            }
            // Operators see the same through the Ops API and the CLI.
            try await Self.operatorsSee(
                gateway: gateway, dir: dir, certificates: certificates, voucher: voucher.voucherID,
                cancelled: dropped.vouchers[0].voucherID, member: member)
            try await Self.ordersTold(
                gateway: gateway, admin: dir + "/admin.yaml", certificates: certificates, kept: kept.orderID,
                dropped: dropped.orderID)
            try await gateway.checkInvariants()
        }
    }

    /// The voucher list, its filters and pages, stock adjustments and their refusals, through the
    /// Ops API and the `coalition admin` binary.
    static func operatorsSee(
        gateway: GatewayHarness, dir: String, certificates: TestCertificates, voucher: String, cancelled: String,
        member: String
    ) async throws {
        try certificates.issue(.operator("alice"), name: "alice")
        let admin = dir + "/admin.yaml"
        try """
        gateway: 127.0.0.1:\(gateway.port)
        ca_certificate: \(certificates.path("ca.pem"))
        certificate: \(certificates.path("alice.pem"))
        private_key: \(certificates.path("alice.key"))
        """.write(toFile: admin, atomically: true, encoding: .utf8)
        let used = try Self.json(
            try await Binary.run(["admin", "vouchers", "--config", admin, "--status", "used", "--json"]))
        let entries = try #require(used["vouchers"] as? [[String: Any]])
        #expect(entries.map { $0["voucher_id"] as? String } == [voucher])
        #expect(entries.first?["used_site_id"] as? String == "mall-01")
        #expect(entries.first?["used_merchant_id"] as? String == "mall-cafe")
        _ = try await OpsServiceTests.withOps(port: gateway.port, certificates: certificates, certificate: "alice") {
            ops in
            // Pages of one, newest first (by voucher id), by the member; every voucher once.
            var request = Coalition_Ops_V1_ListVouchersRequest()
            request.memberID = member
            request.pageSize = 1
            var seen: [String] = []
            repeat {
                let page = try await ops.listVouchers(request)
                seen += page.vouchers.map(\.voucherID)
                request.pageToken = page.nextPageToken
            } while !request.pageToken.isEmpty
            // (Two vouchers issued in the same millisecond are in the order of their random part.)
            #expect(seen == [cancelled, voucher].sorted(by: >))
            request = Coalition_Ops_V1_ListVouchersRequest()
            request.usedSiteID = "hotel-01"
            #expect(try await ops.listVouchers(request).vouchers.isEmpty, "the second use is a conflict, not a use")
            request.usedSiteID = ""
            request.status = "lost"
            await expectStatus(.invalidArgument) { _ = try await ops.listVouchers(request) }
            request.status = ""
            request.pageToken = "not-a-voucher"
            await expectStatus(.invalidArgument) { _ = try await ops.listVouchers(request) }

            // Stock: 1,000 coffees, 2 ordered (one cancelled): 999 left; 20 more arrive, 5 break.
            var adjust = Coalition_Ops_V1_AdjustStockRequest()
            adjust.itemID = "coffee"
            adjust.units = 20
            adjust.reason = "delivery"
            #expect(try await ops.adjustStock(adjust).item.left == 1_019)
            adjust.units = -5
            adjust.reason = "broken cups"
            let after = try await ops.adjustStock(adjust).item
            #expect(after.left == 1_014 && after.adjusted == 15 && after.sold == 1 && after.stock == 1_000)
            adjust.units = -2_000
            await expectStatus(.failedPrecondition, reason: "NOT_ENOUGH_STOCK") {
                _ = try await ops.adjustStock(adjust)
            }
            adjust.units = 0
            await expectStatus(.invalidArgument) { _ = try await ops.adjustStock(adjust) }
            adjust.units = 1
            adjust.reason = ""
            await expectStatus(.invalidArgument) { _ = try await ops.adjustStock(adjust) }
            adjust.reason = "x"
            adjust.itemID = "no-such-item"
            await expectStatus(.notFound) { _ = try await ops.adjustStock(adjust) }
            return ()
        }
        #expect(
            try await gateway.sql.rows(
                "SELECT units, reason, operator_name FROM mall_stock_adjustments ORDER BY adjustment_id") == [
                    ["20", "delivery", "alice"], ["-5", "broken cups", "alice"],
                ])
        // The catalog through the binary: what is left of each item.
        let catalog = try Self.json(try await Binary.run(["admin", "catalog", "--config", admin, "--json"]))
        let coffee = (catalog["items"] as? [[String: Any]])?.first { $0["item_id"] as? String == "coffee" }
        #expect(coffee?["left"] as? String == "1014" || coffee?["left"] as? Int == 1_014)
        let text = try await Binary.run([
            "admin", "catalog", "stock", "coffee", "--add", "1", "--reason", "found one", "--config", admin,
        ])
        #expect(text.contains("coffee: 1015 left"))
    }

    /// An order's story and the sales report, through the Ops API and the `coalition admin` binary:
    /// the kept order's voucher used at the mall (stands) and again at the hotel (a double use);
    /// the dropped order cancelled, its voucher honoured anyway (booked as `voucher_cancelled`).
    static func ordersTold(
        gateway: GatewayHarness, admin: String, certificates: TestCertificates, kept: String, dropped: String
    ) async throws {
        let story = try Self.json(try await Binary.run(["admin", "orders", "show", kept, "--config", admin, "--json"]))
        let uses = try #require(story["uses"] as? [[String: Any]])
        #expect(uses.map { $0["site_id"] as? String } == ["mall-01", "hotel-01"])
        #expect(uses.map { $0["conflict"] as? String } == [nil, "voucher_double_use"])
        let vouchers = try #require(story["vouchers"] as? [[String: Any]])
        #expect(vouchers.map { $0["status"] as? String } == ["used"])
        #expect(vouchers.first?["used_site_id"] as? String == "mall-01")
        #expect(vouchers.first?["used_transaction_id"] as? String == uses.first?["transaction_id"] as? String)
        let text = try await Binary.run(["admin", "orders", "show", dropped, "--config", admin])
        #expect(text.contains("status cancelled at "))
        #expect(text.contains("voucher_cancelled"))
        let report = try Self.json(
            try await Binary.run([
                "admin", "orders", "report", "--from", "2026-11-24", "--to", "2026-11-24", "--config", admin, "--json",
            ]))
        let coffee = try #require((report["items"] as? [[String: Any]])?.first { $0["item_id"] as? String == "coffee" })
        func number(_ key: String) -> Int? { (coffee[key] as? String).flatMap(Int.init) ?? coffee[key] as? Int }
        #expect(number("orders") == 2 && number("units") == 2 && number("units_cancelled") == 1)
        #expect(number("points") == 1_500 && number("vouchers_used") == 1 && number("vouchers_open") == nil)
        #expect(coffee["sponsor"] as? String == "platform")
        // Another day sells nothing; bad input is refused, naming the field.
        let empty = try Self.json(
            try await Binary.run([
                "admin", "orders", "report", "--from", "2026-11-25", "--to", "2026-11-30", "--config", admin, "--json",
            ]))
        #expect(empty["items"] == nil)
        _ = try await OpsServiceTests.withOps(port: gateway.port, certificates: certificates, certificate: "alice") {
            ops in
            var get = Coalition_Ops_V1_GetOrderRequest()
            get.orderID = "not-an-order"
            await expectStatus(.invalidArgument) { _ = try await ops.getOrder(get) }
            get.orderID = String(repeating: "0", count: 26)
            await expectStatus(.notFound, reason: "UNKNOWN_ORDER") { _ = try await ops.getOrder(get) }
            var sales = Coalition_Ops_V1_SalesReportRequest()
            sales.from = "2026-11-30"
            sales.to = "2026-11-01"
            await expectStatus(.invalidArgument) { _ = try await ops.salesReport(sales) }
            sales.from = "2025-01-01"
            sales.to = "2026-11-30"
            await expectStatus(.invalidArgument) { _ = try await ops.salesReport(sales) }
            sales.from = "yesterday"
            await expectStatus(.invalidArgument) { _ = try await ops.salesReport(sales) }
            return ()
        }
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }
}
