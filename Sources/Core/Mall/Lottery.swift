/// The points mall's lotteries (积分抽奖, `lotteries` in the program; docs/member-api.md,
/// "Lotteries"): a draw costs points; its outcome is fixed by a seed the gateway committed to
/// (published its SHA-256) before the period of the draw opened, and the draw's id, so anyone given
/// the seed afterwards recomputes every draw.
package struct Lotteries: Sendable, Equatable {
    /// The most a prize may be worth, in minor units (the legal cap for sales-promotion lotteries:
    /// ¥50,000 under China's Anti-Unfair Competition Law, art. 10, by default).
    package var prizeValueMax: Money
    package var items: [Lottery]

    package static let empty = Lotteries(prizeValueMax: Money(minorUnits: 5_000_000), items: [])

    package init(prizeValueMax: Money, items: [Lottery]) {
        self.prizeValueMax = prizeValueMax
        self.items = items
    }

    package func lottery(_ id: LotteryID) -> Lottery? { items.first { $0.id == id } }
}

/// One lottery: its cost, its daily limit per member, its window, its prizes.
package struct Lottery: Sendable, Equatable {
    package var id: LotteryID
    package var name: String
    /// Points one draw costs (≥ 1).
    package var cost: Points
    /// Draws one member may make in a period (a local day of the program).
    package var perMemberDailyMax: Int64
    /// Half-open window [start, end) in which draws are made.
    package var start: Timestamp
    package var end: Timestamp
    /// From the top prize down: the order a prize out of stock falls through in.
    package var prizes: [Prize]

    package func open(at instant: Timestamp) -> Bool { start <= instant && instant < end }

    /// Parts per million of draws that win nothing.
    package var losingParts: Int64 { LotteryDraw.parts - prizes.reduce(0) { $0 + $1.parts } }
}

/// A prize: points credited, or a catalog item's voucher issued.
package struct Prize: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        case points(Points)
        case item(ItemID)
    }

    package var id: PrizeID
    package var name: String
    package var kind: Kind
    /// Its chance, in parts per million of draws (1 to 1,000,000; the prizes' sum at most that).
    package var parts: Int64
    /// Units the lottery gives in all (over every period).
    package var stock: Int64
}

/// The outcome of draws (pure; the ticket is computed from the seed in `Wire.LotterySeal`).
package enum LotteryDraw {
    /// Tickets run 0 ..< 1,000,000: a prize of `parts` ppm wins on `parts` of them.
    package static let parts: Int64 = 1_000_000

    /// The id of the `number`-th draw (from 1) of `lottery` in the period `period` (a local date):
    /// `LOTTERY/PERIOD/NUMBER`, the text hashed with the seed.
    package static func drawID(_ lottery: LotteryID, period: CivilDate, number: Int64) -> String {
        "\(lottery)/\(period)/\(number)"
    }

    /// The prize a ticket wins: the prizes take consecutive ranges of tickets, the top prize first
    /// (`[0, p1)`, `[p1, p1 + p2)`, …), the rest win nothing. A prize with no units left (`given`:
    /// units given so far, by prize) falls through to the next prize below it that has units
    /// left, and to nothing after the last.
    package static func outcome(_ lottery: Lottery, ticket: Int64, given: [PrizeID: Int64]) -> Prize? {
        var from: Int64 = 0
        for (index, prize) in lottery.prizes.enumerated() {
            defer { from += prize.parts }
            guard ticket >= from, ticket < from + prize.parts else { continue }
            return lottery.prizes[index...].first { (given[$0.id] ?? 0) < $0.stock }
        }
        return nil
    }

    /// What a prize is worth for the legal cap, in minor units: an item at its settlement price; points
    /// at the highest redeem price of any format or merchant (what they can buy at most), rounded up.
    package static func value(_ prize: Prize, catalog: Catalog, settlement: SettlementRules, sites: [Site]) -> Money {
        switch prize.kind {
        case .item(let id):
            return catalog.item(id)?.settlementPrice ?? .zero
        case .points(let points):
            let rates =
                settlement.formatPrices.values.map(\.redeemPrice)
                + sites.flatMap { $0.merchants.compactMap { $0.settlementPrices?.redeemPrice } }
            let product = Int128(points.value) * Int128((rates.max() ?? .zero).micros)
            return Money(minorUnits: Int64(clamping: (product + Int128(Rate.scale) - 1) / Int128(Rate.scale)))
        }
    }
}

/// Why a draw was not made.
package enum DrawRefusal: Error, Equatable, Sendable {
    case unknownMember
    case unknownLottery(String)
    case notOpen(start: Timestamp, end: Timestamp)
    /// The member made `max` draws of the lottery in the period already.
    case dailyLimit(max: Int64)
    case insufficientPoints(available: Points, cost: Points)

    /// The stable name for the `coalition-reason` trailing metadata.
    package var reason: String {
        switch self {
        case .unknownMember: "UNKNOWN_MEMBER"
        case .unknownLottery: "UNKNOWN_LOTTERY"
        case .notOpen: "LOTTERY_CLOSED"
        case .dailyLimit: "DAILY_LIMIT"
        case .insufficientPoints: "INSUFFICIENT_POINTS"
        }
    }

    package var message: String {
        switch self {
        case .unknownMember: "no such member"
        case .unknownLottery(let id): "no lottery '\(id)' is in the program"
        case .notOpen(let start, let end):
            "the lottery is open from \(start.milliseconds) to \(end.milliseconds) (Unix ms, half-open)"
        case .dailyLimit(let max): "the member has made the \(max) draws a day this lottery allows"
        case .insufficientPoints(let available, let cost): "a draw costs \(cost) points; the member has \(available)"
        }
    }
}
