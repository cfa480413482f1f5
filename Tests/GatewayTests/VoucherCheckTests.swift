// Goal (issue #16): a voucher bought in the member app is checked at a till by its edge alone:
// the edge pulls the network's voucher keys and the vouchers that can no longer be honoured, and
// refuses a forged, partial, cancelled or foreign-scoped code with the reason a cashier reads,
// while the gateway is down too. Real gateway and edge over mutual TLS.
import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Voucher checks at a till")
struct VoucherCheckTests {
    static func check(_ code: String) -> Coalition_Edge_V1_CheckVoucherRequest {
        var request = Coalition_Edge_V1_CheckVoucherRequest()
        request.code = code
        return request
    }

    @Test("an edge checks vouchers with the keys it pulled, learns cancellations, and keeps checking offline")
    func checks() async throws {
        try await MemberServiceTests.withMallNetwork(merchant: "mall-cafe") { network in
            let (gateway, cafe, member, certificates, clock) = (
                network.gateway, network.mall, network.member, network.certificates, network.clock
            )
            let (kept, dropped) = try await MemberServiceTests.withMember(
                port: gateway.port, certificates: certificates, certificate: "app"
            ) { api in
                let kept = try await api.placeOrder(MemberServiceTests.order("O-1", member: member, item: "coffee"))
                let dropped = try await api.placeOrder(
                    MemberServiceTests.order("O-2", member: member, item: "coffee"))
                var cancel = Coalition_Member_V1_CancelOrderRequest()
                cancel.orderID = dropped.order.orderID
                _ = try await api.cancelOrder(cancel)
                return (kept.order.vouchers[0], dropped.order.vouchers[0])
            }
            // The edge honours the kept voucher once it has pulled the key, and refuses the
            // cancelled one once it has pulled that.
            try await Network.eventually("the edge pulled the key and the cancellation") {
                let good = try? await cafe.vouchers.check(Self.check(kept.code), metadata: cafe.auth)
                let cancelled = await expectRefusal {
                    _ = try await cafe.vouchers.check(Self.check(dropped.code), metadata: cafe.auth)
                }
                return good != nil && cancelled == "VOUCHER_CANCELLED"
            }
            let answer = try await cafe.vouchers.check(Self.check(kept.code), metadata: cafe.auth)
            #expect(answer.voucherID == kept.voucherID && answer.itemID == "coffee" && answer.kind == "voucher")
            #expect(answer.validUntilAtMs == kept.validUntilAtMs && answer.settlementPriceMinor == 1_800)

            // Forged, partial and foreign codes.
            let code = try VoucherCode.parse(kept.code).get()
            var longer = code
            longer.claim.validUntil = longer.claim.validUntil.adding(milliseconds: 365 * 86_400_000)
            await expectStatus(.failedPrecondition, reason: "VOUCHER_FORGED") {
                _ = try await cafe.vouchers.check(Self.check(longer.text), metadata: cafe.auth)
            }
            await expectStatus(.invalidArgument, reason: "VOUCHER_MALFORMED") {
                _ = try await cafe.vouchers.check(Self.check(String(kept.code.dropLast(8))), metadata: cafe.auth)
            }
            await expectStatus(.invalidArgument, reason: "VOUCHER_MALFORMED") {
                _ = try await cafe.vouchers.check(Self.check("not a voucher"), metadata: cafe.auth)
            }
            // Expired: the till's clock past the code's validity.
            clock.advance(milliseconds: 31 * 86_400_000)
            await expectStatus(.failedPrecondition, reason: "VOUCHER_EXPIRED") {
                _ = try await cafe.vouchers.check(Self.check(kept.code), metadata: cafe.auth)
            }
            clock.advance(milliseconds: -31 * 86_400_000)

            // The gateway goes away: the edge still decides.
            gateway.node.beginGracefulShutdown()
            try await Network.eventually("the gateway is down") {
                let answer = try? await MemberServiceTests.withMember(
                    port: gateway.port, certificates: certificates, certificate: "app"
                ) { api in try await api.listCatalog(Coalition_Member_V1_ListCatalogRequest()) }
                return answer == nil
            }
            let offline = try await cafe.vouchers.check(Self.check(kept.code), metadata: cafe.auth)
            #expect(offline.voucherID == kept.voucherID)
            await expectStatus(.failedPrecondition, reason: "VOUCHER_CANCELLED") {
                _ = try await cafe.vouchers.check(Self.check(dropped.code), metadata: cafe.auth)
            }
            // Without a terminal token, nothing.
            await expectStatus(.unauthenticated) { _ = try await cafe.vouchers.check(Self.check(kept.code)) }
        }
    }

    @Test(
        "an edge that never pulled a key refuses every code as forged, and a terminal of another merchant is out of scope"
    )
    func unlinkedEdge() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        let key = try #require(try Network.gatewayConfiguration(dir, certificates: certificates).voucherKey)
        let claim = VoucherClaim(
            keyID: key.id, voucherID: TransactionID(value: 99), item: ItemID("coffee")!,
            validUntil: ManualWallClock.tuesdayNoon.adding(milliseconds: 86_400_000))
        let code = try key.sign(claim).text
        let config = try Network.edgeConfiguration(dir, site: "mall-01", certificates: certificates, gatewayPort: nil)
        try await Network.withEdge(config, merchant: "mall-fashion", clock: ManualWallClock()) { fashion in
            await expectStatus(.failedPrecondition, reason: "VOUCHER_FORGED") {
                _ = try await fashion.vouchers.check(Self.check(code), metadata: fashion.auth)
            }
            // Given the key (as a pull would), the fashion till is still not the café.
            try await fashion.node.ledger.database.pool.write { db in
                try db.execute(
                    sql: "INSERT INTO voucher_keys (key_id, public_key) VALUES (?, ?)",
                    arguments: [Int64(key.id), Data(key.publicKey)])
            }
            await expectStatus(.failedPrecondition, reason: "VOUCHER_WRONG_MERCHANT") {
                _ = try await fashion.vouchers.check(Self.check(code), metadata: fashion.auth)
            }
        }
    }
}

extension VoucherCheckTests {
    @Test("a Python grpcio client generated from protos/ runs the member app's scenario and a till's check and use")
    func python() async throws {
        try await MemberServiceTests.withMallNetwork(merchant: "mall-cafe") { network in
            let (gateway, cafe, member, dir) = (
                network.gateway, network.mall, network.member, network.certificates.directory
            )
            let script = Repository.root.appendingPathComponent("Tests/Interop/member_scenario.py").path
            // The script talks to this process's servers: it must run without taking a pool thread.
            let outcome = try await ChildProcess.run(
                "/usr/bin/env",
                [
                    "python3", script, "127.0.0.1:\(gateway.port)", dir, member,
                    "127.0.0.1:\(try await cafe.node.listeningPort)", cafe.token,
                ])
            let text = outcome.output + outcome.errors
            #expect(outcome.status == 0, "\(text)")
            #expect(text.contains("interop: all checks passed"), "\(text)")
            // The use the script made at the till reached the ledger, once.
            try await Network.eventually("the till's use is posted") {
                try await gateway.sql.int("SELECT COUNT(*) FROM vouchers WHERE status = 'used'", []) == 1
            }
            #expect(try await gateway.sql.int("SELECT COUNT(*) FROM transactions WHERE kind = 'voucher_use'", []) == 1)
        }
    }
}

/// The reason of the refusal `body` ends with; nil when it succeeds.
func expectRefusal(_ body: () async throws -> Void) async -> String? {
    do {
        try await body()
        return nil
    } catch {
        return status(of: error).reason
    }
}
