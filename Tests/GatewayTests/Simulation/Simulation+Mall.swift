import Core
import Crypto
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import Synchronization
import TestSupport
import Wire

/// What the simulation's member app did in the points mall: the vouchers the ledger issued (any of
/// them may be honoured again, at any till: a double use), the orders placed, and the orders and
/// draws answered OK, kept to be asked again with the same request id.
struct MallTraffic {
    var vouchers: [(code: String, id: String, item: ItemID)] = []
    var orders: [(id: String, member: String)] = []
    var answeredOrders: [(command: OrderCommand, order: String)] = []
    var answeredDraws: [(command: DrawCommand, transaction: String)] = []
    var requestNumber = 0

    /// The example program's mall made small, so items sell out: a few units of each, a cheap tea
    /// (honoured at the hotel's restaurant and the mall's café, so two offline sites can take one
    /// voucher), a flash sale of cinema tickets in the first hour, and a lottery whose top prize
    /// runs out.
    static let programChanges = [
        ("      price_points: 8000\n      stock: 40\n", "      price_points: 900\n      stock: 3\n"),
        ("      stock: 1000\n", "      stock: 3\n"),
        ("      stock: 500\n      sale_start", "      stock: 2\n      sale_start"),
        ("      stock: 200\n", "      stock: 2\n"),
        ("      stock: 100\n      per_member_max: 1\n", "      stock: 4\n      per_member_max: 1\n"),
        ("chance_ppm: 1000         # 0.1 %\n          stock: 10", "chance_ppm: 150000\n          stock: 3"),
    ]

    static let items = ["afternoon-tea", "coffee", "parking-2h", "cinema-flash", "harbour-mug", "gold-lounge"]
    static let lottery = LotteryID("winter-draw")!
    static let channel = "simulated-app"

    /// Lottery seeds derived from the run's seed: a seed's draws come out the same on every run.
    static func lotterySeeds(_ seed: UInt64) -> @Sendable () -> [UInt8] {
        let counter = Mutex<Int>(0)
        return {
            let number = counter.withLock { value in
                value += 1
                return value
            }
            return Array(SHA256.hash(data: Data("simulation \(seed) lottery seed \(number)".utf8)))
        }
    }
}

extension Simulation {
    private func mallRequest() -> RequestID {
        mall.requestNumber += 1
        return RequestID("mall-\(mall.requestNumber)")!
    }

    /// A member the gateway knows (the app finds members there; one enrolled at an offline till
    /// is not known yet), chosen in the simulation's own order.
    private func knownMember() async throws -> MemberID? {
        let known = Set(try await gateway.sql.rows("SELECT member_id FROM members").compactMap { $0[0] })
        return members.filter(known.contains).randomElement(using: &random).flatMap(MemberID.init)
    }

    /// A member orders an item (sometimes two units) in the app.
    func order() async throws -> String {
        guard gateway.isUp else { return "order: the gateway is down" }
        guard let member = try await knownMember() else { return "no member to order" }
        let item = ItemID(MallTraffic.items.randomElement(using: &random)!)!
        let command = OrderCommand(
            channel: MallTraffic.channel, requestID: mallRequest(), member: member, item: item,
            quantity: random.chance(80) ? 1 : 2)
        return try await place(command)
    }

    private func place(_ command: OrderCommand) async throws -> String {
        let order: MallOrder
        do {
            order = try await gateway.store.placeOrder(command, vouchers: voucherIssuer).order
        } catch let refusal as OrderRefusal {
            return "order of \(command.item) refused (\(refusal.reason))"
        } catch {
            violation("order \(command.requestID) of \(command.item) failed: \(error)")
            return "order failed"
        }
        if let first = mall.answeredOrders.first(where: { $0.command == command }) {
            if first.order != order.orderID {
                violation("order request \(command.requestID) asked again got \(order.orderID), first \(first.order)")
            }
            return "order \(command.requestID) asked again: \(order.orderID)"
        }
        mall.answeredOrders.append((command, order.orderID))
        let unit = order.points.value / max(1, order.quantity)
        model.record(
            order.orderID,
            .order(
                member: command.member.description, points: order.points.value,
                vouchers: order.vouchers.map {
                    ReferenceModel.Voucher(id: $0.voucherID, points: unit, validUntil: $0.validUntil.milliseconds)
                }))
        for voucher in order.vouchers { mall.vouchers.append((voucher.code, voucher.voucherID, command.item)) }
        if order.kind.issuesVoucher { mall.orders.append((order.orderID, command.member.description)) }
        return "order \(order.orderID): \(order.quantity) × \(command.item) for \(order.points) points"
    }

    /// The app cancels an order of vouchers (refused once one of them is known used).
    func cancelOrder() async throws -> String {
        guard gateway.isUp else { return "cancel: the gateway is down" }
        guard let placed = mall.orders.randomElement(using: &random) else { return "no order to cancel" }
        let order: MallOrder
        do {
            order = try await gateway.store.cancelOrder(placed.id).order
        } catch let refusal as MallCancelRefusal {
            return "cancel of \(placed.id) refused (\(refusal))"
        } catch {
            violation("cancel of order \(placed.id) failed: \(error)")
            return "cancel failed"
        }
        guard let transaction = order.cancelTransactionID else {
            violation("order \(placed.id) was answered cancelled without a cancellation")
            return "cancel failed"
        }
        model.record(transaction, .cancel(order: placed.id))
        return "cancelled \(placed.id) by \(transaction)"
    }

    /// A member draws in the lottery.
    func draw() async throws -> String {
        guard gateway.isUp else { return "draw: the gateway is down" }
        guard let member = try await knownMember() else { return "no member to draw" }
        return try await draw(
            DrawCommand(
                channel: MallTraffic.channel, requestID: mallRequest(), member: member, lottery: MallTraffic.lottery))
    }

    private func draw(_ command: DrawCommand) async throws -> String {
        let entry: LotteryDrawEntry
        do {
            entry = try await gateway.store.draw(command, vouchers: voucherIssuer).draw
        } catch let refusal as DrawRefusal {
            return "draw refused (\(refusal.reason))"
        } catch {
            violation("draw \(command.requestID) failed: \(error)")
            return "draw failed"
        }
        if let first = mall.answeredDraws.first(where: { $0.command == command }) {
            if first.transaction != entry.transactionID {
                violation(
                    "draw request \(command.requestID) asked again got \(entry.transactionID), first \(first.transaction)"
                )
            }
            return "draw \(command.requestID) asked again: \(entry.transactionID)"
        }
        mall.answeredDraws.append((command, entry.transactionID))
        guard let lottery = model.program.lotteries.items.first(where: { $0.id == command.lottery }) else {
            violation("the simulation's program has no lottery \(command.lottery)")
            return "draw failed"
        }
        var won: ReferenceModel.Voucher?
        if let voucher = entry.voucher {
            guard let code = try? VoucherCode.parse(voucher.code).get(),
                let item = model.program.catalog.item(code.claim.item)
            else {
                violation("draw \(entry.drawID): its voucher \(voucher.voucherID) does not parse as an item's")
                return "draw failed"
            }
            won = ReferenceModel.Voucher(
                id: voucher.voucherID, points: item.pricePoints.value, validUntil: voucher.validUntil.milliseconds)
            mall.vouchers.append((voucher.code, voucher.voucherID, item.id))
        }
        model.record(
            entry.transactionID,
            .draw(member: command.member.description, cost: lottery.cost.value, won: entry.prizePoints, voucher: won))
        return "draw \(entry.drawID): ticket \(entry.ticket) \(entry.prize ?? "nothing")"
    }

    /// The app asks again an order or a draw that was answered: the same answer, nothing taken twice.
    func askMallAgain() async throws -> String {
        guard gateway.isUp else { return "ask again: the gateway is down" }
        if random.chance(50), let asked = mall.answeredOrders.randomElement(using: &random) {
            fault("order asked again")
            return try await place(asked.command)
        }
        guard let asked = mall.answeredDraws.randomElement(using: &random) else { return "nothing to ask again" }
        fault("draw asked again")
        return try await draw(asked.command)
    }

    /// A till honours a voucher the ledger issued, used or not, cancelled or not: the edge decides
    /// from what it knows (offline too); the gateway books a second use to the site.
    func honourVoucher(_ index: Int) async throws -> String {
        guard let voucher = mall.vouchers.randomElement(using: &random) else { return "no voucher to honour" }
        // Mostly at a till the voucher is for; sometimes at any (refused: another format or merchant).
        let terms = model.program.catalog.item(voucher.item)?.voucher
        func honours(_ merchant: MerchantID, at edge: SimulatedEdge) -> Bool {
            guard let terms else { return false }
            let format = model.program.site(edge.site)?.format
            return (terms.formats.isEmpty || format.map(terms.formats.contains) == true)
                && (terms.merchants.isEmpty || terms.merchants.contains(merchant))
        }
        var edge = edges[index]
        if random.chance(75),
            let fitting = edges.filter({ edge in edge.merchants.contains { honours($0, at: edge) } })
                .randomElement(using: &random)
        {
            edge = fitting
        }
        let merchant =
            edge.merchants.first { honours($0, at: edge) } ?? edge.merchants.randomElement(using: &random)!
        let index = edges.firstIndex { $0 === edge }!
        var request = Coalition_Edge_V1_RedeemVoucherRequest()
        request.requestID = nextRequest()
        request.code = voucher.code
        let metadata = edge.metadata(merchant)
        return try await till(index, "voucher \(voucher.item)") { [weak self] in
            let response = try await callInProcess(request, metadata: metadata, method: "Redeem") {
                try await edge.vouchers.redeem(request: $0, context: $1)
            }
            self?.model.record(
                response.transactionID, .voucherUse(voucher: voucher.id, occurredAt: response.usedAtMs))
            return response.transactionID
        }
    }

    /// The daily job issues the tier benefits due; the app learns the new vouchers (in the
    /// simulation's order of members), so tills may honour them like any voucher.
    func grantBenefits(_ store: any LedgerStore) async throws {
        try await store.grantTierBenefits(vouchers: voucherIssuer)
        let known = Set(mall.vouchers.map(\.id))
        let place = Dictionary(members.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let issued = try await gateway.sql.rows(
            """
            SELECT v.voucher_id, v.code, v.item_id, v.member_id, v.valid_until_ms
            FROM vouchers v JOIN benefit_grants g ON g.grant_id = v.order_id
            """
        ).filter { !known.contains($0[0] ?? "") }.sorted {
            (place[$0[3] ?? ""] ?? Int.max, $0[2] ?? "") < (place[$1[3] ?? ""] ?? Int.max, $1[2] ?? "")
        }
        for row in issued {
            guard let id = row[0], let code = row[1], let item = row[2].flatMap(ItemID.init),
                let validUntil = row[4].flatMap(Int64.init)
            else { continue }
            let points = model.program.catalog.item(item)?.pricePoints.value ?? 0
            model.issued(benefit: ReferenceModel.Voucher(id: id, points: points, validUntil: validUntil))
            mall.vouchers.append((code, id, item))
        }
    }

    // MARK: Invariants

    /// The mall's invariants: no item sold beyond its stock, no prize given beyond its own, each
    /// voucher honoured at most once without a conflict (and that use is the one its row names),
    /// and every conflicted use's points on the honouring site's `offline_risk`.
    func checkMall(_ sql: LedgerSQL) async throws {
        let sold = Dictionary(
            try await sql.rows(
                "SELECT item_id, CAST(SUM(quantity) AS BIGINT) FROM mall_orders WHERE status = 'placed' GROUP BY item_id"
            ).map { ($0[0] ?? "", Int64($0[1] ?? "") ?? 0) }, uniquingKeysWith: +)
        let adjusted = Dictionary(
            try await sql.rows(
                "SELECT item_id, CAST(SUM(units) AS BIGINT) FROM mall_stock_adjustments GROUP BY item_id"
            ).map { ($0[0] ?? "", Int64($0[1] ?? "") ?? 0) }, uniquingKeysWith: +)
        for item in model.program.catalog.items {
            let left = item.stock + adjusted[item.id.rawValue, default: 0] - sold[item.id.rawValue, default: 0]
            if left < 0 { violation("gateway: \(item.id) has \(left) units left (sold beyond its stock)") }
        }
        let given = Dictionary(
            try await sql.rows("SELECT prize_id, given FROM lottery_given WHERE lottery_id = 'winter-draw'").map {
                ($0[0] ?? "", Int64($0[1] ?? "") ?? 0)
            }, uniquingKeysWith: +)
        for lottery in model.program.lotteries.items where lottery.id == MallTraffic.lottery {
            for prize in lottery.prizes where given[prize.id.rawValue, default: 0] > prize.stock {
                violation(
                    "gateway: prize \(prize.id) given \(given[prize.id.rawValue, default: 0]) times of \(prize.stock)")
            }
        }
        // Each tier benefit granted issued its benefit's count of vouchers, once per member and period.
        var counts: [String: Int64] = [:]
        for tier in model.program.tiers.tiers {
            for benefit in tier.benefits { counts["\(tier.id)/\(benefit.id)"] = Int64(benefit.count) }
        }
        for row in try await sql.rows(
            """
            SELECT g.benefit, g.member_id, (SELECT COUNT(*) FROM vouchers v WHERE v.order_id = g.grant_id)
            FROM benefit_grants g
            """)
        where Int64(row[2] ?? "") != counts[row[0] ?? ""] {
            violation("gateway: benefit \(row[0] ?? "?") of \(row[1] ?? "?") issued \(row[2] ?? "?") vouchers")
        }
        for row in try await sql.rows(
            """
            SELECT t.detail, COUNT(*) FROM transactions t
            WHERE t.kind = 'voucher_use'
              AND NOT EXISTS (SELECT 1 FROM conflicts c WHERE c.transaction_id = t.transaction_id)
            GROUP BY t.detail HAVING COUNT(*) > 1
            """)
        {
            violation("gateway: voucher \(row[0] ?? "?") honoured \(row[1] ?? "?") times without a conflict")
        }
        for row in try await sql.rows(
            """
            SELECT v.voucher_id FROM vouchers v WHERE v.status = 'used' AND NOT EXISTS (
              SELECT 1 FROM transactions t WHERE t.transaction_id = v.used_transaction_id
                AND t.kind = 'voucher_use' AND t.detail = v.voucher_id
                AND NOT EXISTS (SELECT 1 FROM conflicts c WHERE c.transaction_id = t.transaction_id))
            """)
        {
            violation("gateway: voucher \(row[0] ?? "?") is used by no use that stands")
        }
        for row in try await sql.rows(
            """
            SELECT c.transaction_id, c.kind, c.site_id, c.points,
              (SELECT CAST(COALESCE(SUM(p.points), 0) AS BIGINT) FROM postings p
               JOIN transactions t ON t.position = p.position
               WHERE t.transaction_id = c.transaction_id AND p.account = 'offline_risk:' || c.site_id) AS risk
            FROM conflicts c WHERE c.kind IN ('voucher_double_use', 'voucher_cancelled', 'voucher_expired')
            """)
        {
            let points = Int64(row[3] ?? "") ?? 0
            if points <= 0 || Int64(row[4] ?? "") != -points {
                violation(
                    "gateway: \(row[1] ?? "") \(row[0] ?? "") at \(row[2] ?? ""): \(points) points, offline_risk moved \(row[4] ?? "")"
                )
            }
        }
    }

    /// What the mall did in the run, from the ledger.
    func mallCounts(_ sql: LedgerSQL) async throws -> [String: Int64] {
        let rows = try await sql.rows(
            """
            SELECT 'orders', COUNT(*) FROM mall_orders
            UNION ALL SELECT 'orders cancelled', COUNT(*) FROM mall_orders WHERE status = 'cancelled'
            UNION ALL SELECT 'draws', COUNT(*) FROM lottery_draws
            UNION ALL SELECT 'prizes', COUNT(*) FROM lottery_draws WHERE prize_id IS NOT NULL
            UNION ALL SELECT 'benefit vouchers', COUNT(*) FROM vouchers v JOIN benefit_grants g ON g.grant_id = v.order_id
            UNION ALL SELECT 'voucher uses', COUNT(*) FROM transactions WHERE kind = 'voucher_use'
            UNION ALL SELECT c.kind, COUNT(*) FROM conflicts c WHERE c.kind LIKE 'voucher%' GROUP BY c.kind
            """)
        return Dictionary(rows.map { ($0[0] ?? "", Int64($0[1] ?? "") ?? 0) }, uniquingKeysWith: +)
    }

    /// After a full sync: every revealed period of the lottery recomputes from its seed, draw by
    /// draw (`coalition admin lottery verify`'s audit).
    func auditLottery() async throws {
        let lotteries = try gateway.store
        try await lotteries.keepLotterySeeds()
        guard let lottery = model.program.lotteries.items.first(where: { $0.id == MallTraffic.lottery }) else {
            return
        }
        var audit = LotteryAudit(lottery)
        for period in try await lotteries.lotteryPeriods(lottery.id) {
            guard let seed = period.seed else { break }
            let draws = try await lotteries.lotteryDraws(lottery.id, period: period.period, after: 0, limit: 100_000)
            if let mismatch = audit.check(
                period: period.period, commitment: Hex.string(period.commitment), seed: Hex.string(seed),
                draws: draws.map {
                    LotteryAudit.Draw(
                        number: $0.number, ticket: $0.ticket, prize: $0.prize ?? "", prizePoints: $0.prizePoints,
                        voucher: $0.voucher?.voucherID ?? "")
                }, count: period.draws)
            {
                violation("lottery audit: \(mismatch)")
            }
        }
    }
}
