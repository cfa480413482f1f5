// Goal (issue #16): the member app backend's API answers only channel certificates, and a channel
// certificate opens nothing else; the account view's figures are the ledger's (balance, points by
// format this year, tier progress, expiring points); orders take exactly their price once per
// request id, are refused with a stable reason for every rule, give the points back when
// cancelled, and show in the history with the points mall's format. Real gateway and edge, real
// mutual TLS, on SQLite and on PostgreSQL.
import Core
import EdgeNode
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Member service")
struct MemberServiceTests {
    typealias MemberClient = Coalition_Member_V1_Member.Client<HTTP2ClientTransport.Posix>

    @discardableResult
    static func withMember<Result: Sendable>(
        port: Int, certificates: TestCertificates, certificate: String,
        _ body: (MemberClient) async throws -> Result
    ) async throws -> Result {
        try await withGRPCClient(
            transport: .http2NIOPosix(
                target: .ipv4(address: "127.0.0.1", port: port),
                transportSecurity: .mTLS(
                    certificateChain: [.file(path: certificates.path("\(certificate).pem"), format: .pem)],
                    privateKey: .file(path: certificates.path("\(certificate).key"), format: .pem)
                ) { $0.trustRoots = .certificates([.file(path: certificates.path("ca.pem"), format: .pem)]) })
        ) { client in
            try await body(MemberClient(wrapping: client))
        }
    }

    static func order(_ request: String, member: String, item: String, quantity: Int64 = 1)
        -> Coalition_Member_V1_PlaceOrderRequest
    {
        var message = Coalition_Member_V1_PlaceOrderRequest()
        message.requestID = request
        message.memberID = member
        message.itemID = item
        message.quantity = quantity
        return message
    }

    static func account(_ member: String) -> Coalition_Member_V1_GetAccountRequest {
        var message = Coalition_Member_V1_GetAccountRequest()
        message.memberID = member
        return message
    }

    /// A mall network for the member API's tests: a gateway (on `ledger`, its configuration
    /// changed by `edit`) with a channel certificate `app`, the mall's edge with a terminal of
    /// `merchant`, and a member who enrolled there and earned ¥6,000 (6,200 points), synced; all on
    /// one manual clock at Tuesday noon.
    struct MallNetwork: Sendable {
        let gateway: GatewayHarness
        let mall: LinkedEdge
        let member: String
        let certificates: TestCertificates
        let clock: ManualWallClock
    }

    static func withMallNetwork(
        ledger: LedgerKind = .sqlite, merchant: String = "mall-fashion",
        edit: (inout GatewayConfiguration) -> Void = { _ in }, _ body: (MallNetwork) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try certificates.issue(.channel("app"), name: "app")
        let clock = ManualWallClock()
        var configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        edit(&configuration)
        try await Network.withGateway(configuration, clock: clock, ledger: ledger) { gateway in
            let edgeConfig = try Network.edgeConfiguration(
                dir, site: "mall-01", certificates: certificates, gatewayPort: gateway.port)
            try await Network.withEdge(edgeConfig, merchant: merchant, clock: clock) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 600_000), metadata: mall.auth)
                try await Network.eventually("synced") { try await Network.synced(mall) }
                try await body(
                    MallNetwork(gateway: gateway, mall: mall, member: member, certificates: certificates, clock: clock))
            }
        }
    }

    @Test("only channel certificates reach the member API, and a channel certificate reaches nothing else")
    func roles() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try certificates.issue(.operator("alice"), name: "alice")
        try certificates.issue(.channel("app"), name: "app")
        let revoked = try certificates.issue(.channel("old-app"), name: "old-app")
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: ManualWallClock()
        ) { gateway in
            for other in ["mall-01", "alice"] {
                try await Self.withMember(port: gateway.port, certificates: certificates, certificate: other) {
                    member in
                    await expectStatus(.permissionDenied, reason: "NOT_A_CHANNEL") {
                        _ = try await member.listCatalog(Coalition_Member_V1_ListCatalogRequest())
                    }
                }
            }
            _ = try await OpsServiceTests.withOps(port: gateway.port, certificates: certificates, certificate: "app") {
                ops in
                await expectStatus(.permissionDenied, reason: "NOT_AN_OPERATOR") {
                    _ = try await ops.listSites(Coalition_Ops_V1_ListSitesRequest())
                }
            }
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "app") { sync in
                await expectStatus(.permissionDenied, reason: "NOT_A_SITE") {
                    _ = try await sync.pull(Coalition_Sync_V1_PullRequest())
                }
            }
            _ = try await gateway.ledger.revokeCertificate(serial: revoked.serial, reason: "retired", by: "alice")
            try await Self.withMember(port: gateway.port, certificates: certificates, certificate: "old-app") {
                member in
                await expectStatus(.permissionDenied, reason: "CERTIFICATE_REVOKED") {
                    _ = try await member.listCatalog(Coalition_Member_V1_ListCatalogRequest())
                }
            }
            // The channel itself is served, and the refusals are on the audit list.
            try await Self.withMember(port: gateway.port, certificates: certificates, certificate: "app") { member in
                let catalog = try await member.listCatalog(Coalition_Member_V1_ListCatalogRequest())
                #expect(catalog.items.contains { $0.itemID == "coffee" })
            }
            let refused = try await gateway.ledger.refusedCalls(before: nil, limit: 100)
            #expect(refused.filter { $0.service == "member" && $0.kind == "NOT_A_CHANNEL" }.count == 2)
        }
    }

    @Test("without a voucher key, goods sell and voucher items are refused; a key id keeps its key")
    func voucherKey() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try certificates.issue(.channel("app"), name: "app")
        let clock = ManualWallClock()
        var configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        let key = try #require(configuration.voucherKey)
        configuration.voucherKey = nil
        try await Network.withGateway(configuration, clock: clock) { gateway in
            let edge = try Network.edgeConfiguration(
                dir, site: "mall-01", certificates: certificates, gatewayPort: gateway.port)
            try await Network.withEdge(edge, merchant: "mall-fashion", clock: clock) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 600_000), metadata: mall.auth)
                try await Network.eventually("synced") { try await Network.synced(mall) }
                try await Self.withMember(port: gateway.port, certificates: certificates, certificate: "app") { api in
                    await expectStatus(.failedPrecondition, reason: "VOUCHERS_DISABLED") {
                        _ = try await api.placeOrder(Self.order("V-1", member: member, item: "coffee"))
                    }
                    let mug = try await api.placeOrder(Self.order("V-2", member: member, item: "harbour-mug"))
                    #expect(mug.order.vouchers.isEmpty && mug.order.points == 3_000)
                }
            }
            #expect(try await gateway.ledger.voucherKeys().isEmpty)
        }
        // With the key: its public half is registered; another key under the same id is refused.
        configuration.voucherKey = key
        try await Network.withGateway(configuration, clock: clock) { gateway in
            let keys = try await gateway.ledger.voucherKeys()
            #expect(keys == [1: key.publicKey])
        }
        configuration.voucherKey = try VoucherSigningKey(id: 1, text: VoucherSeal.newKeyText())
        await #expect(throws: ConfigurationError.self) {
            try await Network.withGateway(configuration, clock: clock) { _ in }
        }
    }

    @Test("account, catalog, orders and history through the member API", arguments: LedgerKind.allCases)
    func ordersAndAccount(ledger: LedgerKind) async throws {
        try await Self.withMallNetwork(ledger: ledger, edit: { $0.phoneHashKey = Network.phoneKey }) { network in
            let (gateway, mall, member, certificates) = (
                network.gateway, network.mall, network.member, network.certificates
            )
            _ = try await mall.points.redeem(
                Make.redeem("R-2", member: member, bill: 100_000, points: 1_000), metadata: mall.auth)
            try await Network.eventually("synced") { try await Network.synced(mall) }
            // 200 sign-up + 6,000 earned − 1,000 redeemed.
            #expect(try await gateway.balance(member) == 5_200)

            try await Self.withMember(port: gateway.port, certificates: certificates, certificate: "app") { api in
                var lookup = Coalition_Member_V1_LookupMemberRequest()
                lookup.phone = "+8613800138000"
                #expect(try await api.lookupMember(lookup).memberID == member)
                lookup.phone = "+8613900000000"
                await expectStatus(.notFound, reason: "UNKNOWN_MEMBER") { _ = try await api.lookupMember(lookup) }

                let account = try await api.getAccount(Self.account(member))
                #expect(account.balancePoints == 5_200 && account.availablePoints == 5_200)
                #expect(account.year == 2026)
                #expect(account.byFormat.map(\.format) == ["mall"])
                #expect(
                    account.byFormat.first?.earnedPoints == 6_200 && account.byFormat.first?.spentPoints == 1_000)
                #expect(account.tier.tier == "silver" && account.nextTier.tier == "gold")
                #expect(account.pointsToNextTier == 20_000 - account.qualifyingPoints12M)
                #expect(account.expiring90DaysPoints == 0, "points earned now expire in a year")

                let catalog = try await api.listCatalog(Coalition_Member_V1_ListCatalogRequest())
                #expect(!catalog.items.contains { $0.itemID == "new-year-gala" }, "not on sale yet")
                var all = Coalition_Member_V1_ListCatalogRequest()
                all.includeClosed = true
                #expect(try await api.listCatalog(all).items.contains { $0.itemID == "new-year-gala" })

                // A mug: 3,000 points and ¥9.90, once however often the app retries.
                let mug = try await api.placeOrder(Self.order("O-1", member: member, item: "harbour-mug"))
                #expect(mug.order.points == 3_000 && mug.order.moneyMinor == 990 && mug.balanceAfterPoints == 2_200)
                let retry = try await api.placeOrder(Self.order("O-1", member: member, item: "harbour-mug"))
                #expect(retry.order.orderID == mug.order.orderID && retry.balanceAfterPoints == 2_200)
                await expectStatus(.alreadyExists, reason: "REQUEST_ID_REUSED") {
                    _ = try await api.placeOrder(Self.order("O-1", member: member, item: "coffee"))
                }
                let coffee = try await api.placeOrder(Self.order("O-2", member: member, item: "coffee"))
                #expect(coffee.order.points == 1_500 && coffee.balanceAfterPoints == 700)
                // One voucher, signed by the gateway's key, valid 30 days (to the minute).
                #expect(mug.order.vouchers.isEmpty)
                let voucher = try #require(coffee.order.vouchers.first)
                #expect(coffee.order.vouchers.count == 1 && voucher.status == .issued)
                let code = try VoucherCode.parse(voucher.code).get()
                #expect(VoucherSeal.verify(code, keys: try await gateway.ledger.voucherKeys()))
                #expect(
                    code.claim.item == ItemID("coffee") && code.claim.voucherID.description == voucher.voucherID)
                #expect(voucher.validUntilAtMs == (coffee.order.placedAtMs + 30 * 86_400_000) / 60_000 * 60_000)
                // Every refusal names its reason and takes nothing.
                await expectStatus(.failedPrecondition, reason: "TIER_NOT_ALLOWED") {
                    _ = try await api.placeOrder(Self.order("O-3", member: member, item: "gold-lounge"))
                }
                await expectStatus(.failedPrecondition, reason: "NOT_ON_SALE") {
                    _ = try await api.placeOrder(Self.order("O-4", member: member, item: "new-year-gala"))
                }
                await expectStatus(.notFound, reason: "UNKNOWN_ITEM") {
                    _ = try await api.placeOrder(Self.order("O-5", member: member, item: "caviar"))
                }
                await expectStatus(.failedPrecondition, reason: "MEMBER_LIMIT") {
                    _ = try await api.placeOrder(Self.order("O-6", member: member, item: "coffee", quantity: 5))
                }
                await expectStatus(.failedPrecondition, reason: "INSUFFICIENT_POINTS") {
                    _ = try await api.placeOrder(Self.order("O-7", member: member, item: "coffee"))
                }
                await expectStatus(.invalidArgument) {
                    _ = try await api.placeOrder(Self.order("O-8", member: member, item: "coffee", quantity: 11))
                }
                await expectStatus(.notFound, reason: "UNKNOWN_MEMBER") {
                    _ = try await api.placeOrder(
                        Self.order("O-9", member: "01JD3X5Q7M8N9P0R1S2T3V4W5X", item: "coffee"))
                }
                #expect(try await gateway.balance(member) == 700)

                // Goods cannot be cancelled here; a voucher can, once, and its stock returns.
                var cancel = Coalition_Member_V1_CancelOrderRequest()
                cancel.orderID = mug.order.orderID
                await expectStatus(.failedPrecondition, reason: "NOT_CANCELLABLE") {
                    _ = try await api.cancelOrder(cancel)
                }
                cancel.orderID = coffee.order.orderID
                let cancelled = try await api.cancelOrder(cancel)
                #expect(cancelled.order.status == .cancelled && cancelled.balanceAfterPoints == 2_200)
                #expect(cancelled.order.vouchers.map(\.status) == [.cancelled])
                let again = try await api.cancelOrder(cancel)
                #expect(again.order.status == .cancelled && again.balanceAfterPoints == 2_200)
                let left = try await api.listCatalog(Coalition_Member_V1_ListCatalogRequest()).items
                    .first { $0.itemID == "coffee" }
                #expect(left?.stockLeft == 1_000)
                cancel.orderID = "01JD3X5Q7M8N9P0R1S2T3V4W5X"
                await expectStatus(.notFound, reason: "UNKNOWN_ORDER") { _ = try await api.cancelOrder(cancel) }

                // The history pages by cursor and names the points mall.
                var history = Coalition_Member_V1_ListHistoryRequest()
                history.memberID = member
                history.pageSize = 2
                let page = try await api.listHistory(history)
                #expect(page.entries.map(\.kind) == ["reverse", "order"])
                #expect(page.entries.map(\.points) == [1_500, -1_500])
                #expect(page.entries.allSatisfy { $0.format == "points_mall" && $0.siteID.isEmpty })
                history.pageToken = page.nextPageToken
                let next = try await api.listHistory(history)
                #expect(next.entries.map(\.kind) == ["order", "redeem"])
                #expect(next.entries.last?.format == "mall" && next.entries.last?.siteID == "mall-01")
                history.pageToken = "not-a-token"
                await expectStatus(.invalidArgument) { _ = try await api.listHistory(history) }

                var orders = Coalition_Member_V1_ListOrdersRequest()
                orders.memberID = member
                orders.pageSize = 1
                let newest = try await api.listOrders(orders)
                #expect(newest.orders.map(\.orderID) == [coffee.order.orderID])
                orders.pageToken = newest.nextPageToken
                #expect(try await api.listOrders(orders).orders.map(\.orderID) == [mug.order.orderID])

                let after = try await api.getAccount(Self.account(member))
                #expect(after.byFormat.first { $0.format == "points_mall" }?.spentPoints == 3_000)
            }
            try await gateway.checkInvariants()
            // The edge learns the new balance by pull.
            let expected = try await gateway.balance(member)
            try await Network.eventually("the edge sees the order") {
                try await mall.balance(member) == expected
            }
        }
    }
}

/// The flash sale (积分秒杀): many members ordering the same few units at one instant.
extension MemberServiceTests {
    /// Runs `body` with one gateway (SQLite) or two over one ledger (PostgreSQL), on `clock`.
    static func withGateways(
        _ configuration: GatewayConfiguration, clock: ManualWallClock, ledger: LedgerKind,
        _ body: ([GatewayHarness]) async throws -> Void
    ) async throws {
        guard ledger == .postgres else {
            try await Network.withGateway(configuration, clock: clock) { try await body([$0]) }
            return
        }
        try await Network.withLedger(.postgres, configuration) { shared in
            try await Network.withGateway(shared, clock: clock) { first in
                try await Network.withGateway(shared, clock: clock) { second in try await body([first, second]) }
            }
        }
    }

    @Test(
        "a flash sale sells exactly its stock, at most one per member, and takes points only for orders answered OK",
        arguments: LedgerKind.allCases)
    func flashSale(ledger: LedgerKind) async throws {
        let members = 120
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try certificates.issue(.channel("app"), name: "app")
        let clock = ManualWallClock()  // Tuesday 12:00: the cinema flash sale opens this instant.
        let configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        try await Self.withGateways(configuration, clock: clock, ledger: ledger) { gateways in
            let edgeConfig = try Network.edgeConfiguration(
                dir, site: "mall-01", certificates: certificates, gatewayPort: gateways[0].port)
            try await Network.withEdge(edgeConfig, merchant: "mall-fashion", clock: clock) { mall in
                // Each member: 200 sign-up + 1,000 earned = 1,200 points, enough for two tickets.
                let ids = try await Self.bounded(members, inFlight: 16) { index in
                    let id = try await mall.points.enroll(
                        Make.enroll("E-\(index)", phone: "+86139\(String(format: "%08d", index))"), metadata: mall.auth
                    ).member.memberID
                    _ = try await mall.points.earn(
                        Make.earn("R-\(index)", member: id, amount: 100_000), metadata: mall.auth)
                    return id
                }
                try await Network.eventually("synced") { try await Network.synced(mall) }
                for id in ids.prefix(3) { #expect(try await gateways[0].balance(id) == 1_200) }

                // Every member sends two orders at once, and the app retries the first.
                var calls: [(member: String, request: String)] = []
                for id in ids {
                    for attempt in 0..<2 { calls.append((id, "F-\(id.suffix(10))-\(attempt)")) }
                    calls.append((id, "F-\(id.suffix(10))-0"))
                }
                let planned = calls
                let outcomes = try await Self.withClients(gateways, certificates: certificates, count: 8) { clients in
                    // 48 calls in flight (as a busy app server keeps them); a BUSY answer wrote
                    // nothing and is retried with the same request id, as the app would.
                    try await Self.bounded(planned.count, inFlight: 48) { index in
                        let call = planned[index]
                        for _ in 0..<50 {
                            do {
                                let answer = try await clients[index % clients.count].placeOrder(
                                    Self.order(call.request, member: call.member, item: "cinema-flash"))
                                return (
                                    call.member, call.request,
                                    Result<String, FlashRefusal>.success(answer.order.orderID)
                                )
                            } catch {
                                let refused = status(of: error)
                                if refused.reason == "BUSY" {
                                    try await Task.sleep(for: .milliseconds(100))
                                    continue
                                }
                                let reason = refused.reason ?? refused.message
                                return (call.member, call.request, .failure(FlashRefusal(reason: reason)))
                            }
                        }
                        return (call.member, call.request, .failure(FlashRefusal(reason: "BUSY 50 times")))
                    }
                }
                var ordersOfMember: [String: Set<String>] = [:]
                var orderOfRequest: [String: Set<String>] = [:]
                var reasons: [String: Int] = [:]
                for (member, request, outcome) in outcomes {
                    switch outcome {
                    case .success(let order):
                        ordersOfMember[member, default: []].insert(order)
                        orderOfRequest[request, default: []].insert(order)
                    case .failure(let refusal):
                        reasons[refusal.reason, default: 0] += 1
                    }
                }
                let sold = ordersOfMember.values.reduce(0) { $0 + $1.count }
                #expect(sold == 100, "exactly the stock is sold")
                #expect(ordersOfMember.values.allSatisfy { $0.count == 1 }, "one ticket per member")
                #expect(orderOfRequest.values.allSatisfy { $0.count == 1 }, "a retried request is the same order")
                #expect(Set(reasons.keys).isSubset(of: ["SOLD_OUT", "MEMBER_LIMIT"]), "\(reasons)")
                for id in ids {
                    let expected: Int64 = ordersOfMember[id] == nil ? 1_200 : 700
                    #expect(try await gateways[0].balance(id) == expected, "member \(id)")
                }
                #expect(try await gateways[0].account("redeemed:mall-cinema") == 100 * 500)
                try await Self.withClients(gateways, certificates: certificates, count: 1) { clients in
                    var request = Coalition_Member_V1_ListCatalogRequest()
                    request.includeClosed = true
                    let item = try await clients[0].listCatalog(request).items.first { $0.itemID == "cinema-flash" }
                    #expect(item?.stockLeft == 0)
                }
                try await gateways[0].checkInvariants()
            }
        }
    }

    struct FlashRefusal: Error, Equatable {
        var reason: String
    }

    /// `count` calls of `body`, at most `inFlight` at once; the results in index order.
    static func bounded<Result: Sendable>(
        _ count: Int, inFlight: Int, _ body: @escaping @Sendable (Int) async throws -> Result
    ) async throws -> [Result] {
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var results: [Int: Result] = [:]
            var next = 0
            while next < min(count, inFlight) {
                let index = next
                group.addTask { (index, try await body(index)) }
                next += 1
            }
            while let (index, result) = try await group.next() {
                results[index] = result
                if next < count {
                    let index = next
                    group.addTask { (index, try await body(index)) }
                    next += 1
                }
            }
            return (0..<count).map { results[$0]! }
        }
    }

    /// Runs `body` with `count` member API clients over mutual TLS, spread over the gateways.
    @discardableResult
    static func withClients<Result: Sendable>(
        _ gateways: [GatewayHarness], certificates: TestCertificates, count: Int,
        _ body: @Sendable ([MemberClient]) async throws -> Result
    ) async throws -> Result {
        func open(_ index: Int, _ clients: [MemberClient]) async throws -> Result {
            guard index < count else { return try await body(clients) }
            return try await withMember(
                port: gateways[index % gateways.count].port, certificates: certificates, certificate: "app"
            ) { client in try await open(index + 1, clients + [client]) }
        }
        return try await open(0, [])
    }
}
