import ArgumentParser
import Core
import Foundation
import Wire

/// `coalition admin lottery periods|verify`: a lottery's periods, and every draw recomputed from
/// its revealed seeds.
extension AdminCommand {
    struct LotteryAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lottery", abstract: "The points mall's lotteries: their periods, and the audit.",
            subcommands: [Periods.self, Verify.self])

        struct Periods: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "A lottery's periods: each seed's commitment, the seed once revealed, the draws made.")
            @OptionGroup var connection: Connection
            @Option(help: "The lottery's id.") var lottery: String

            func run() async throws {
                var request = Coalition_Ops_V1_ListLotteryPeriodsRequest()
                request.lotteryID = lottery
                let response = try await connection.withOps { try await $0.listLotteryPeriods(request) }
                try connection.show(response) {
                    Table.render(
                        ["period", "draws", "commitment (SHA-256)", "seed"],
                        response.periods.map {
                            [$0.period, "\($0.draws)", $0.commitment, $0.seed.isEmpty ? "(not revealed yet)" : $0.seed]
                        })
                }
            }
        }

        struct Verify: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Recomputes every draw of a lottery from the seeds revealed so far, and checks every prize.",
                discussion: """
                    Periods in order from the first: the revealed seed against the commitment published before the
                    period, the draws numbered without a gap, each ticket (SHA-256 of the seed and the draw id), each
                    prize from the ticket and the odds and stock of the program file given (the published program),
                    each points prize's points and each voucher prize's voucher. Stops at the first period whose seed
                    is not revealed yet (today's). Exits 1 at the first mismatch.
                    """)
            @OptionGroup var connection: Connection
            @Option(help: "The lottery's id.") var lottery: String
            @Option(help: "The program file that published the lottery (its odds and stock).") var program: String

            func run() async throws {
                let document = try ProgramCommand.load(program)
                guard let id = LotteryID(lottery), let definition = document.lotteries.lottery(id) else {
                    throw CommandFailure("\(program) has no lottery '\(lottery)'")
                }
                var audit = LotteryAudit(definition)
                var request = Coalition_Ops_V1_ListLotteryPeriodsRequest()
                request.lotteryID = lottery
                let periods = try await connection.withOps { try await $0.listLotteryPeriods(request) }.periods
                var unrevealed = 0
                for period in periods {
                    guard !period.seed.isEmpty, let date = CivilDate(parsing: period.period) else {
                        unrevealed += 1
                        continue
                    }
                    guard unrevealed == 0 else {
                        throw CommandFailure("\(period.period) is revealed but an earlier period is not")
                    }
                    var draws: [LotteryAudit.Draw] = []
                    var page = Coalition_Ops_V1_ListLotteryDrawsRequest()
                    page.lotteryID = lottery
                    page.period = period.period
                    page.pageSize = 1_000
                    while true {
                        let got = try await connection.withOps { try await $0.listLotteryDraws(page) }.draws
                        draws += got.map {
                            LotteryAudit.Draw(
                                number: $0.number, ticket: $0.ticket, prize: $0.prizeID, prizePoints: $0.prizePoints,
                                voucher: $0.voucherID)
                        }
                        guard let last = got.last, got.count == 1_000 else { break }
                        page.afterNumber = last.number
                    }
                    if let mismatch = audit.check(
                        period: date, commitment: period.commitment, seed: period.seed, draws: draws,
                        count: period.draws)
                    {
                        print("MISMATCH \(mismatch)")
                        throw ExitCode(1)
                    }
                }
                print(
                    "\(lottery): \(audit.periods) periods revealed, \(audit.draws) draws recomputed, "
                        + "\(audit.prizes) prizes checked: every draw matches its seed"
                        + (unrevealed > 0 ? " (\(unrevealed) periods not revealed yet)" : ""))
            }
        }
    }
}
