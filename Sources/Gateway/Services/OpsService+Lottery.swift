import Core
import GRPCCore
import Wire

/// Lotteries for operators: periods with their commitments and seeds, and the draws to recompute.
extension OpsService {
    package func listLotteryPeriods(
        request: ServerRequest<Coalition_Ops_V1_ListLotteryPeriodsRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListLotteryPeriodsResponse> {
        try await handle(request, context) { _, message in
            guard let id = LotteryID(message.lotteryID) else { throw ServiceError.invalid("lottery_id", Slug.rule) }
            var response = Coalition_Ops_V1_ListLotteryPeriodsResponse()
            response.periods = try await store.lotteryPeriods(id).map { period in
                var wire = Coalition_Ops_V1_LotteryPeriodEntry()
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

    package func listLotteryDraws(
        request: ServerRequest<Coalition_Ops_V1_ListLotteryDrawsRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListLotteryDrawsResponse> {
        try await handle(request, context) { _, message in
            guard let id = LotteryID(message.lotteryID) else { throw ServiceError.invalid("lottery_id", Slug.rule) }
            guard let period = CivilDate(parsing: message.period) else {
                throw ServiceError.invalid("period", "a local date, YYYY-MM-DD (found '\(message.period.prefix(32))')")
            }
            guard message.afterNumber >= 0 else {
                throw ServiceError.invalid("after_number", "must be 0 or more (found \(message.afterNumber))")
            }
            let size = try Self.pageSize(message.pageSize)
            var response = Coalition_Ops_V1_ListLotteryDrawsResponse()
            response.draws = try await store.lotteryDraws(id, period: period, after: message.afterNumber, limit: size)
                .map { draw in
                    var wire = Coalition_Ops_V1_LotteryDrawEntry()
                    wire.drawID = draw.drawID
                    wire.number = draw.number
                    wire.memberID = draw.member
                    wire.ticket = draw.ticket
                    wire.prizeID = draw.prize ?? ""
                    wire.prizePoints = draw.prizePoints
                    wire.voucherID = draw.voucher?.voucherID ?? ""
                    wire.transactionID = draw.transactionID
                    wire.drawnAtMs = draw.drawnAt.milliseconds
                    return wire
                }
            return response
        }
    }
}
