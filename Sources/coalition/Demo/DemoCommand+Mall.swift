import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import LocalNetwork
import Wire

/// The next morning: the member app's points mall — a voucher bought, a flash sale, a lottery
/// draw — and the voucher honoured at the hotel's till while its link is down.
extension Demo {
    func pointsMall(_ gateway: GatewayNode, port: Int, offlinePort: Int) async throws {
        at("2026-11-29T09:00")
        say(
            "\nSunday 09:00 the points mall in the member app (its server calls the gateway with a channel certificate)"
        )
        let members = try await mallShoppers(port: port)
        let wang = members[0]
        let code = try await withMemberAPI(port: port) { api in
            var order = Coalition_Member_V1_PlaceOrderRequest()
            order.requestID = "APP-1"
            order.memberID = wang
            order.itemID = "afternoon-tea"
            let placed = try await api.placeOrder(order)
            let again = try await api.placeOrder(order)
            let voucher = placed.order.vouchers[0]
            say(
                "09:05 in the app Wang buys an afternoon tea for two at The Quay for \(placed.order.points) points (balance \(placed.balanceAfterPoints)); the app's retry gets the same order (\(again.order.orderID == placed.order.orderID ? "unchanged" : "DIFFERENT"))"
            )
            say(
                "      its voucher, for a QR code: \(voucher.code.prefix(24))… (\(voucher.code.count) characters, signed by the network's voucher key)"
            )
            order.requestID = "APP-2"
            order.itemID = "gold-lounge"
            do {
                _ = try await api.placeOrder(order)
                say("      a gold members' lounge pass was sold to a member tier — this should not happen")
            } catch let error as RPCError {
                say("      a gold members' lounge pass is refused: \(error.code) \(Self.reason(error))")
            }
            return voucher.code
        }
        try await flashSale(gateway, port: port, members: members)
        try await lotteryDraw(port: port, member: wang)
        try await honourAtHotel(gateway, code: code, member: wang, port: port, offlinePort: offlinePort)
    }

    /// Wang, who will spend, and three shoppers for the flash sale: enrolled and earning at the mall.
    private func mallShoppers(port: Int) async throws -> [String] {
        try await withEdge("mall-01", merchants: ["mall-fashion"], gatewayPort: port) { mall in
            var members: [String] = []
            for (index, (name, amount)) in [
                ("Wang Fang", 900_000), ("Zhao Lei", 100_000), ("Sun Mei", 100_000),
                ("Zhou Tao", 100_000),
            ].enumerated() {
                var enroll = Coalition_Edge_V1_EnrollRequest()
                enroll.requestID = "M-00\(index + 3)"
                enroll.phone = "+86137000000\(index + 3)"
                let member = try await mall.points.enroll(enroll, metadata: mall.auth("mall-fashion")).member.memberID
                var earn = Coalition_Edge_V1_EarnRequest()
                earn.requestID = "F-700\(index + 1)"
                earn.memberID = member
                earn.amountMinor = Int64(amount)
                let earned = try await mall.points.earn(earn, metadata: mall.auth("mall-fashion"))
                if index == 0 {
                    say(
                        "09:00 \(name) enrols at the mall and earns \(earned.points) points for ¥\(amount / 100): balance \(earned.balanceAfterPoints)"
                    )
                }
                members.append(member)
            }
            say("09:00 Zhao Lei, Sun Mei and Zhou Tao enrol and shop at the mall too")
            try await waitUntil("the mall synced") { try await mall.synced }
            return members
        }
    }

    /// The operator publishes a flash sale of three cinema tickets; eight orders arrive at once.
    private func flashSale(_ gateway: GatewayNode, port: Int, members: [String]) async throws {
        let original = """
                  stock: 100
                  per_member_max: 1
                  sale_start: 2026-11-24T12:00
                  sale_end: 2026-11-24T13:00
            """
        let text = try String(contentsOfFile: path("program.yaml"), encoding: .utf8)
        guard text.contains(original) else {
            say("09:30 (no flash sale: the program has no cinema-flash item of the example's)")
            return
        }
        at("2026-11-29T09:30")
        let sale = text.replacingOccurrences(
            of: original,
            with: original.replacingOccurrences(of: "stock: 100", with: "stock: 3")
                .replacingOccurrences(of: "2026-11-24T12:00", with: "2026-11-29T09:30")
                .replacingOccurrences(of: "2026-11-24T13:00", with: "2026-11-29T10:30"))
        try write(sale, "program.yaml")
        let version = try await gateway.ledger.publish(document: Array(sale.utf8), effectiveAt: nil, by: "alice")
        say(
            "09:30 operator alice publishes program version \(version): a flash sale (积分秒杀) of 3 cinema tickets at 500 points, one per member, 09:30–10:30"
        )
        let answers = try await withMemberAPI(port: port) { api in
            try await withThrowingTaskGroup(of: String.self) { group in
                for (index, member) in (members + members).enumerated() {
                    group.addTask {
                        var order = Coalition_Member_V1_PlaceOrderRequest()
                        order.requestID = "FLASH-\(index)"
                        order.memberID = member
                        order.itemID = "cinema-flash"
                        do {
                            _ = try await api.placeOrder(order)
                            return "OK"
                        } catch let error as RPCError {
                            return Self.reason(error)
                        }
                    }
                }
                return try await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
            }
        }
        let sold = try await gateway.ledger.stock([ItemID("cinema-flash")!])[ItemID("cinema-flash")!]?.sold ?? 0
        let refused = answers.filter { $0.key != "OK" }.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }
        say(
            "09:30 \(members.count) members send \(members.count * 2) orders at once: \(answers["OK", default: 0]) answered OK, the ledger counts \(sold) sold; refused: \(refused.joined(separator: ", "))"
        )
    }

    /// Wang draws once in the winter lucky draw, whose seed's SHA-256 was published before the day.
    private func lotteryDraw(port: Int, member: String) async throws {
        at("2026-11-29T09:40")
        try await withMemberAPI(port: port) { api in
            var request = Coalition_Member_V1_DrawRequest()
            request.requestID = "DRAW-1"
            request.memberID = member
            request.lotteryID = "winter-draw"
            let drawn = try await api.draw(request).draw
            var ask = Coalition_Member_V1_GetLotteryRequest()
            ask.lotteryID = "winter-draw"
            let lottery = try await api.getLottery(ask)
            let commitment = lottery.periods.first { $0.period == drawn.period }?.commitment ?? ""
            let won =
                drawn.prizeID.isEmpty
                ? "nothing this time"
                : "\(drawn.prizeID)\(drawn.prizePoints > 0 ? " (\(drawn.prizePoints) points)" : " (a voucher)")"
            say(
                "09:40 Wang draws in the winter lucky draw for \(lottery.costPoints) points: draw \(drawn.drawID), ticket \(drawn.ticket) of 1,000,000 wins \(won)"
            )
            say(
                "      the day's seed was committed beforehand (SHA-256 \(commitment.prefix(16))…); once the day is over it is revealed, and `coalition admin lottery verify` recomputes every draw"
            )
        }
    }

    /// The hotel's link goes down; its restaurant's till honours Wang's tea voucher offline, refuses
    /// it a second time and refuses a forged one; the use reaches the gateway when the link is back.
    private func honourAtHotel(
        _ gateway: GatewayNode, code: String, member: String, port: Int, offlinePort: Int
    ) async throws {
        try await withEdge("hotel-01", merchants: ["hotel-restaurant"], gatewayPort: port) { hotel in
            try await waitUntil("the hotel pulled the voucher keys") {
                var check = Coalition_Edge_V1_CheckVoucherRequest()
                check.code = code
                return (try? await hotel.vouchers.check(check, metadata: hotel.auth("hotel-restaurant"))) != nil
            }
        }
        at("2026-11-29T15:00")
        say("15:00 the hotel's link is down again")
        try await withEdge("hotel-01", merchants: ["hotel-restaurant"], gatewayPort: offlinePort) { hotel in
            let auth = hotel.auth("hotel-restaurant")
            var redeem = Coalition_Edge_V1_RedeemVoucherRequest()
            redeem.requestID = "TEA-1"
            redeem.code = code
            let used = try await hotel.vouchers.redeem(redeem, metadata: auth)
            say(
                "15:05 offline, The Quay's till scans Wang's voucher: \(used.voucher.itemName), valid; honoured (transaction \(used.transactionID.suffix(6)))"
            )
            redeem.requestID = "TEA-2"
            do {
                _ = try await hotel.vouchers.redeem(redeem, metadata: auth)
                say("      the voucher was honoured twice at one till — this should not happen")
            } catch let error as RPCError {
                say("      scanned again at the till: refused \(Self.reason(error))")
            }
            var forged = try VoucherCode.parse(code).get()
            forged.claim.item = ItemID("new-year-gala")!
            var check = Coalition_Edge_V1_CheckVoucherRequest()
            check.code = forged.text
            do {
                _ = try await hotel.vouchers.check(check, metadata: auth)
                say("      an edited code was accepted — this should not happen")
            } catch let error as RPCError {
                say("      the same code edited to say \"New Year gala dinner\" is refused: \(Self.reason(error))")
            }
        }
        at("2026-11-29T16:00")
        try await withEdge("hotel-01", merchants: ["hotel-restaurant"], gatewayPort: port) { hotel in
            try await waitUntil("the hotel synced") { try await hotel.synced }
        }
        let vouchers = try await gateway.ledger.vouchers(
            VoucherFilter(member: MemberID(member), item: ItemID("afternoon-tea")), before: nil, limit: 10)
        let states = vouchers.map { "\($0.status) at \($0.usedSite ?? "-") by \($0.usedMerchant ?? "-")" }
        say(
            "16:00 the hotel's link is back: the gateway books Wang's tea voucher \(states.joined(separator: ", ")); The Quay sponsors its own tea, so no money moves (a café coffee from the mall would be paid ¥18 by the platform)"
        )
    }

    static func reason(_ error: RPCError) -> String {
        error.metadata[stringValues: "coalition-reason"].first { _ in true } ?? "\(error.code)"
    }

    /// Runs `body` with a client of the member API, as the member app's server (channel certificate).
    func withMemberAPI<R: Sendable>(
        port: Int, _ body: (Coalition_Member_V1_Member.Client<HTTP2ClientTransport.Posix>) async throws -> R
    ) async throws -> R {
        try await withGRPCClient(
            transport: .http2NIOPosix(
                target: .ipv4(address: "127.0.0.1", port: port),
                transportSecurity: .mTLS(
                    certificateChain: [.file(path: network.path("channel-member-app.pem"), format: .pem)],
                    privateKey: .file(path: network.path("channel-member-app.key"), format: .pem)
                ) { $0.trustRoots = .certificates([.file(path: network.path("ca.pem"), format: .pem)]) })
        ) { client in
            try await body(Coalition_Member_V1_Member.Client(wrapping: client))
        }
    }
}
