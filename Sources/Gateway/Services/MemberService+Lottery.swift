import Core
import Foundation
import GRPCCore
import Wire

/// The points mall's lotteries: the published odds and commitments, and draws.
extension MemberService {
    package func getLottery(
        request: ServerRequest<Coalition_Member_V1_GetLotteryRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_GetLotteryResponse> {
        try await handle(request, context) { _, message in
            guard let id = LotteryID(message.lotteryID) else { throw ServiceError.invalid("lottery_id", Slug.rule) }
            guard let lottery = store.programs.latest?.program.lotteries.lottery(id) else {
                throw ServiceError(
                    .notFound, DrawRefusal.unknownLottery(id.rawValue).message, reason: "UNKNOWN_LOTTERY")
            }
            let periods = try await store.lotteryPeriods(id)
            let given = try await store.lotteryGiven(id)
            var response = Coalition_Member_V1_GetLotteryResponse()
            response.lotteryID = id.rawValue
            response.name = lottery.name
            response.costPoints = lottery.cost.value
            response.perMemberDailyMax = lottery.perMemberDailyMax
            response.startAtMs = lottery.start.milliseconds
            response.endAtMs = lottery.end.milliseconds
            var from: Int64 = 0
            response.prizes = lottery.prizes.map { prize in
                var wire = Coalition_Member_V1_LotteryPrize()
                wire.prizeID = prize.id.rawValue
                wire.name = prize.name
                switch prize.kind {
                case .points(let points): wire.points = points.value
                case .item(let item): wire.itemID = item.rawValue
                }
                wire.chancePpm = prize.parts
                wire.fromTicket = from
                from += prize.parts
                wire.stock = prize.stock
                wire.left = max(0, prize.stock - (given[prize.id] ?? 0))
                return wire
            }
            response.noPrizePpm = lottery.losingParts
            response.periods = periods.map { period in
                var wire = Coalition_Member_V1_LotteryPeriod()
                wire.period = period.period.description
                wire.commitment = Hex.string(period.commitment)
                wire.seed = period.seed.map(Hex.string) ?? ""
                wire.committedAtMs = period.committedAt.milliseconds
                wire.draws = period.draws
                return wire
            }
            return response
        }
    }

    package func draw(
        request: ServerRequest<Coalition_Member_V1_DrawRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_DrawResponse> {
        try await handle(request, context) { channel, message in
            guard let requestID = RequestID(message.requestID) else {
                throw ServiceError.invalid("request_id", RequestID.rule)
            }
            guard let member = MemberID(message.memberID) else {
                throw ServiceError.invalid("member_id", "must be a 26-character member id")
            }
            guard let lottery = LotteryID(message.lotteryID) else {
                throw ServiceError.invalid("lottery_id", Slug.rule)
            }
            do {
                let (draw, balance) = try await store.draw(
                    DrawCommand(channel: channel, requestID: requestID, member: member, lottery: lottery),
                    vouchers: vouchers)
                var response = Coalition_Member_V1_DrawResponse()
                response.draw = Self.wire(draw)
                response.balanceAfterPoints = balance.value
                return response
            } catch let refusal as DrawRefusal {
                let code: RPCError.Code =
                    switch refusal {
                    case .unknownMember, .unknownLottery: .notFound
                    default: .failedPrecondition
                    }
                throw ServiceError(code, refusal.message, reason: refusal.reason)
            }
        }
    }

    static func wire(_ draw: LotteryDrawEntry) -> Coalition_Member_V1_LotteryDrawResult {
        var wire = Coalition_Member_V1_LotteryDrawResult()
        wire.drawID = draw.drawID
        wire.period = draw.period.description
        wire.number = draw.number
        wire.ticket = draw.ticket
        wire.prizeID = draw.prize ?? ""
        wire.prizePoints = draw.prizePoints
        if let voucher = draw.voucher { wire.voucher = Coalition_Member_V1_Voucher(voucher) }
        wire.transactionID = draw.transactionID
        wire.drawnAtMs = draw.drawnAt.milliseconds
        return wire
    }
}
