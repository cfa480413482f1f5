import Core

/// Recomputes a lottery's draws from its revealed seeds (`coalition admin lottery verify`): each
/// period's seed against the commitment published before it, the draws numbered 1, 2, … without
/// a gap, each ticket from the seed and the draw id, each prize from the ticket and the units the
/// lottery had given before it (periods in order), a points prize's points, a voucher prize's voucher.
package struct LotteryAudit: Sendable {
    /// A draw as the gateway recorded it.
    package struct Draw: Sendable, Equatable {
        package var number: Int64
        package var ticket: Int64
        package var prize: String
        package var prizePoints: Int64
        package var voucher: String

        package init(number: Int64, ticket: Int64, prize: String, prizePoints: Int64, voucher: String) {
            self.number = number
            self.ticket = ticket
            self.prize = prize
            self.prizePoints = prizePoints
            self.voucher = voucher
        }
    }

    package let lottery: Lottery
    package private(set) var given: [PrizeID: Int64] = [:]
    package private(set) var periods = 0
    package private(set) var draws = 0
    package private(set) var prizes = 0

    package init(_ lottery: Lottery) { self.lottery = lottery }

    /// Checks one revealed period (`seed` and `commitment` in hex) and its draws in number order;
    /// returns the first mismatch, in words, or nil.
    package mutating func check(
        period: CivilDate, commitment: String, seed: String, draws recorded: [Draw], count: Int64
    )
        -> String?
    {
        guard let seedBytes = Hex.bytes(seed), seedBytes.count == 32 else {
            return "\(period): the revealed seed is not 32 bytes of hex"
        }
        guard Hex.string(LotterySeal.commitment(seedBytes)) == commitment.lowercased() else {
            return "\(period): SHA-256 of the revealed seed is not the commitment published before the period"
        }
        guard recorded.count == count else {
            return "\(period): \(recorded.count) draws listed, the period counts \(count)"
        }
        for (index, draw) in recorded.enumerated() {
            let number = Int64(index) + 1
            guard draw.number == number else { return "\(period): draw \(number) is missing (found \(draw.number))" }
            let id = LotteryDraw.drawID(lottery.id, period: period, number: number)
            let ticket = LotterySeal.ticket(seed: seedBytes, drawID: id)
            guard ticket == draw.ticket else {
                return "\(id): ticket \(draw.ticket) recorded, the seed gives \(ticket)"
            }
            let prize = LotteryDraw.outcome(lottery, ticket: ticket, given: given)
            guard (prize?.id.rawValue ?? "") == draw.prize else {
                return
                    "\(id): prize '\(draw.prize)' recorded, ticket \(ticket) wins '\(prize?.id.rawValue ?? "nothing")'"
            }
            if let prize {
                switch prize.kind {
                case .points(let points):
                    guard draw.prizePoints == points.value else {
                        return "\(id): \(draw.prizePoints) points given, the prize is \(points)"
                    }
                case .item:
                    guard !draw.voucher.isEmpty else { return "\(id): the prize's voucher was not issued" }
                }
                given[prize.id, default: 0] += 1
                prizes += 1
            } else if draw.prizePoints != 0 || !draw.voucher.isEmpty {
                return "\(id): a prize was given for a ticket that wins nothing"
            }
            draws += 1
        }
        periods += 1
        return nil
    }
}
