import Core
import Foundation

/// The points mall's lotteries (docs/member-api.md, "Lotteries"): seeds committed before their
/// period, draws numbered in each period in the order they are made, prizes given within their stock.
package protocol LotteryLedger: Sendable {
    /// Makes a draw, or returns the draw the channel made before with the same request id; with the
    /// member's balance after it. Throws `DrawRefusal`, `MallRequestConflict`, `MallBusy`, or
    /// `MallVouchersDisabled` (a voucher prize on a gateway without a voucher key).
    func draw(_ command: DrawCommand, vouchers: VoucherIssuer?) async throws -> (
        draw: LotteryDrawEntry, balance: Points
    )
    /// The lottery's periods with their commitments (and seeds once revealed), oldest first.
    func lotteryPeriods(_ lottery: LotteryID) async throws -> [LotteryPeriod]
    /// Units of each prize the lottery has given.
    func lotteryGiven(_ lottery: LotteryID) async throws -> [PrizeID: Int64]
    /// A period's draws in number order, after `number`.
    func lotteryDraws(_ lottery: LotteryID, period: CivilDate, after number: Int64, limit: Int) async throws
        -> [LotteryDrawEntry]
    /// Commits seeds for today and tomorrow of every lottery open then (a period's seed exists
    /// before it opens), and reveals the seeds of periods that have ended. Returns (committed,
    /// revealed).
    @discardableResult
    func keepLotterySeeds() async throws -> (committed: Int, revealed: Int)
}

/// What a draw asks.
package struct DrawCommand: Sendable, Equatable {
    package var channel: String
    package var requestID: RequestID
    package var member: MemberID
    package var lottery: LotteryID

    package init(channel: String, requestID: RequestID, member: MemberID, lottery: LotteryID) {
        self.channel = channel
        self.requestID = requestID
        self.member = member
        self.lottery = lottery
    }
}

/// A period of a lottery: a local day, its seed's commitment, and the seed once the day is over.
package struct LotteryPeriod: Sendable, Equatable {
    package var period: CivilDate
    package var commitment: [UInt8]
    package var seed: [UInt8]?
    package var committedAt: Timestamp
    package var draws: Int64
}

/// A draw as recorded.
package struct LotteryDrawEntry: Sendable, Equatable {
    package var drawID: String
    package var lottery: String
    package var period: CivilDate
    package var number: Int64
    package var channel: String
    package var requestID: String
    package var member: String
    package var transactionID: String
    package var ticket: Int64
    package var prize: String?
    /// The prize's points (points prizes).
    package var prizePoints: Int64
    package var voucher: IssuedVoucher?
    package var drawnAt: Timestamp
}

/// What the stores share of a draw: the period and its number, the outcome, the prize's voucher.
enum LotteryDrawing {
    /// The period (local date) of `instant`.
    static func period(_ instant: Timestamp, _ program: Program) -> CivilDate { program.timeZone.date(of: instant) }

    /// The periods a lottery needs committed at `now`: today, and tomorrow when it is open then.
    static func periodsToCommit(_ lottery: Lottery, program: Program, now: Timestamp) -> [CivilDate] {
        let today = period(now, program)
        var periods: [CivilDate] = []
        for day in [today, today.adding(days: 1)] {
            let start = program.timeZone.startOfDay(day)
            let end = program.timeZone.startOfDay(day.adding(days: 1))
            if start < lottery.end, end > lottery.start { periods.append(day) }
        }
        return periods
    }
}
