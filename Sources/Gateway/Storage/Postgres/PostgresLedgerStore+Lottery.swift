import Core
import Foundation
import Logging
import PostgresNIO
import Wire

/// Lottery draws on PostgreSQL: the member's row is locked, then the period's seed row (draws of
/// a lottery in a period take turns there, on every gateway), then the lottery's prize counts.
extension PostgresLedgerStore {
    package func draw(_ command: DrawCommand, vouchers issuer: VoucherIssuer?) async throws -> (
        draw: LotteryDrawEntry, balance: Points
    ) {
        let now = clockNow
        return try await ordering("drawing") { [logger] connection in
            let reads = PostgresLedgerReads(connection: connection, logger: logger)
            let target = try await self.lockResolved(command.member, connection)
            if let first = try await Self.drawEntries(
                connection,
                "d.channel = \(command.channel) AND d.request_id = \(command.requestID.rawValue) ORDER BY d.number",
                logger
            ).first {
                let requested = try await connection.value(
                    "SELECT requested_member_id FROM lottery_draws WHERE draw_id = \(first.drawID)", as: String.self,
                    logger)
                guard requested == command.member.description, first.lottery == command.lottery.rawValue else {
                    throw MallRequestConflict(requestID: command.requestID.rawValue, orderID: first.drawID)
                }
                return (first, try await reads.balance(.member(MemberID(first.member) ?? command.member)))
            }
            let catalogue = try await self.currentPrograms(connection)
            guard let active = catalogue.active(at: now),
                let lottery = active.program.lotteries.lottery(command.lottery)
            else { throw DrawRefusal.unknownLottery(command.lottery.rawValue) }
            guard lottery.open(at: now) else { throw DrawRefusal.notOpen(start: lottery.start, end: lottery.end) }
            guard let member = target else { throw DrawRefusal.unknownMember }
            let period = LotteryDrawing.period(now, active.program)
            let today =
                try await connection.value(
                    """
                    SELECT COUNT(*)::BIGINT FROM lottery_draws
                    WHERE member_id = \(member.description) AND lottery_id = \(lottery.id.rawValue)
                      AND period = \(period.description)
                    """, as: Int64.self, logger) ?? 0
            guard today < lottery.perMemberDailyMax else {
                throw DrawRefusal.dailyLimit(max: lottery.perMemberDailyMax)
            }
            _ = try await Self.commitSeed(self.lotterySeeds(), connection, lottery.id, period, at: now, logger)
            guard
                let seedRow = try await connection.rows(
                    """
                    SELECT seed, draws FROM lottery_seeds
                    WHERE lottery_id = \(lottery.id.rawValue) AND period = \(period.description) FOR UPDATE
                    """, logger
                ).first
            else { throw PostgresLedgerError("the seed of \(lottery.id) for \(period) is missing") }
            let number = try seedRow.int("draws") + 1
            let drawID = LotteryDraw.drawID(lottery.id, period: period, number: number)
            let ticket = LotterySeal.ticket(seed: Array(try seedRow.bytes("seed")), drawID: drawID)
            var given: [PrizeID: Int64] = [:]
            for row in try await connection.rows(
                """
                SELECT prize_id, given FROM lottery_given WHERE lottery_id = \(lottery.id.rawValue)
                ORDER BY prize_id FOR UPDATE
                """, logger)
            {
                given[PrizeID(unchecked: try row.text("prize_id"))] = try row.int("given")
            }
            let prize = LotteryDraw.outcome(lottery, ticket: ticket, given: given)
            var prizeItem: CatalogItem?
            if case .item(let id)? = prize?.kind {
                prizeItem = active.program.catalog.item(id)
                if issuer == nil { throw MallVouchersDisabled() }
            }
            var keys = PostingKeys()
            keys.members = [member]
            keys.debitedMembers = keys.members
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator).description
            let (booked, instant) = try await self.postOwn(connection, keys: keys, count: 8, now: now) { engine in
                (
                    try engine.draw(
                        member: member, lottery: lottery, prize: prize, transactionID: transaction,
                        requestID: command.requestID.rawValue, detail: "draw \(drawID) by \(command.channel)"
                    ).get(), engine.now
                )
            }
            var voucher: IssuedVoucher?
            if let item = prizeItem, let issuer {
                let ids = [TransactionID(time: instant, using: &generator)]
                for claim in VoucherRules.issue(item, at: instant, keyID: issuer.keyID, ids: ids) {
                    let issued = IssuedVoucher(
                        voucherID: claim.voucherID.description, code: try issuer.sign(claim).text,
                        validUntil: claim.validUntil, status: .issued)
                    try await connection.run(
                        """
                        INSERT INTO vouchers (voucher_id, order_id, item_id, member_id, key_id, code, valid_until_ms,
                            status, changed_position, sponsor)
                        VALUES (\(issued.voucherID), \(transaction), \(item.id.rawValue), \(booked.member.description),
                            \(Int64(claim.keyID)), \(issued.code), \(issued.validUntil.milliseconds), 'issued',
                            \(booked.position), 'platform')
                        """, logger)
                    voucher = issued
                }
            }
            try await connection.run(
                """
                UPDATE lottery_seeds SET draws = draws + 1
                WHERE lottery_id = \(lottery.id.rawValue) AND period = \(period.description)
                """, logger)
            if let prize {
                try await connection.run(
                    """
                    INSERT INTO lottery_given (lottery_id, prize_id, given) VALUES (\(lottery.id.rawValue), \(prize.id.rawValue), 1)
                    ON CONFLICT (lottery_id, prize_id) DO UPDATE SET given = lottery_given.given + 1
                    """, logger)
            }
            var points: Int64 = 0
            if case .points(let won)? = prize?.kind { points = won.value }
            let entry = LotteryDrawEntry(
                drawID: drawID, lottery: lottery.id.rawValue, period: period, number: number,
                channel: command.channel, requestID: command.requestID.rawValue, member: booked.member.description,
                transactionID: transaction, ticket: ticket, prize: prize?.id.rawValue, prizePoints: points,
                voucher: voucher, drawnAt: instant)
            try await connection.run(
                """
                INSERT INTO lottery_draws (draw_id, lottery_id, period, number, channel, request_id, requested_member_id,
                    member_id, transaction_id, ticket, prize_id, prize_points, voucher_id, drawn_at_ms)
                VALUES (\(drawID), \(entry.lottery), \(period.description), \(number), \(entry.channel),
                    \(entry.requestID), \(command.member.description), \(entry.member), \(transaction), \(ticket),
                    \(entry.prize), \(points), \(voucher?.voucherID), \(instant.milliseconds))
                """, logger)
            return (entry, try await reads.balance(.member(booked.member)))
        }
    }

    package func lotteryPeriods(_ lottery: LotteryID) async throws -> [LotteryPeriod] {
        try await reading("reading lottery periods") { connection in
            try await connection.rows(
                """
                SELECT period, commitment, CASE WHEN revealed_at_ms IS NULL THEN NULL ELSE seed END AS seed,
                    committed_at_ms, draws
                FROM lottery_seeds WHERE lottery_id = \(lottery.rawValue) ORDER BY period
                """, self.logger
            ).compactMap { row in
                guard let period = CivilDate(parsing: try row.text("period")) else { return nil }
                return LotteryPeriod(
                    period: period, commitment: Array(try row.bytes("commitment")),
                    seed: try row.bytesOrNil("seed").map(Array.init),
                    committedAt: Timestamp(milliseconds: try row.int("committed_at_ms")), draws: try row.int("draws"))
            }
        }
    }

    package func lotteryGiven(_ lottery: LotteryID) async throws -> [PrizeID: Int64] {
        try await reading("reading lottery prizes") { connection in
            var given: [PrizeID: Int64] = [:]
            for row in try await connection.rows(
                "SELECT prize_id, given FROM lottery_given WHERE lottery_id = \(lottery.rawValue)", self.logger)
            {
                given[PrizeID(unchecked: try row.text("prize_id"))] = try row.int("given")
            }
            return given
        }
    }

    package func lotteryDraws(_ lottery: LotteryID, period: CivilDate, after number: Int64, limit: Int) async throws
        -> [LotteryDrawEntry]
    {
        try await reading("reading lottery draws") { connection in
            try await Self.drawEntries(
                connection,
                """
                d.lottery_id = \(lottery.rawValue) AND d.period = \(period.description) AND d.number > \(number)
                ORDER BY d.number LIMIT \(Int64(limit))
                """, self.logger)
        }
    }

    @discardableResult
    package func keepLotterySeeds() async throws -> (committed: Int, revealed: Int) {
        let now = clockNow
        guard let latest = programs.latest?.program else { return (0, 0) }
        return try await transaction("keeping lottery seeds") { [logger] connection in
            var committed = 0
            for lottery in latest.lotteries.items {
                for period in LotteryDrawing.periodsToCommit(lottery, program: latest, now: now) {
                    committed +=
                        try await Self.commitSeed(self.lotterySeeds(), connection, lottery.id, period, at: now, logger)
                        ? 1 : 0
                }
            }
            let today = LotteryDrawing.period(now, latest)
            let revealed = try await connection.rows(
                """
                UPDATE lottery_seeds SET revealed_at_ms = \(now.milliseconds)
                WHERE revealed_at_ms IS NULL AND period < \(today.description) RETURNING period
                """, logger
            ).count
            return (committed, revealed)
        }
    }

    private static func commitSeed(
        _ seed: [UInt8], _ connection: PostgresConnection, _ lottery: LotteryID, _ period: CivilDate, at now: Timestamp,
        _ logger: Logger
    ) async throws -> Bool {
        return try await !connection.rows(
            """
            INSERT INTO lottery_seeds (lottery_id, period, seed, commitment, committed_at_ms, draws)
            VALUES (\(lottery.rawValue), \(period.description), \(Data(seed)), \(Data(LotterySeal.commitment(seed))),
                \(now.milliseconds), 0)
            ON CONFLICT (lottery_id, period) DO NOTHING RETURNING period
            """, logger
        ).isEmpty
    }

    private static func drawEntries(_ connection: PostgresConnection, _ condition: PostgresQuery, _ logger: Logger)
        async throws -> [LotteryDrawEntry]
    {
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT d.draw_id, d.lottery_id, d.period, d.number, d.channel, d.request_id, d.member_id,
                    d.transaction_id, d.ticket, d.prize_id, d.prize_points, d.drawn_at_ms, v.voucher_id, v.code,
                    v.valid_until_ms, v.status
                FROM lottery_draws d LEFT JOIN vouchers v ON v.voucher_id = d.voucher_id WHERE
                """)
        query.sql += " " + condition.sql
        query.binds = condition.binds
        return try await connection.rows(query, logger).map { row in
            let voucherID = try row.textOrNil("voucher_id")
            return LotteryDrawEntry(
                drawID: try row.text("draw_id"), lottery: try row.text("lottery_id"),
                period: CivilDate(parsing: try row.text("period")) ?? CivilDate(parsing: "1970-01-01")!,
                number: try row.int("number"), channel: try row.text("channel"), requestID: try row.text("request_id"),
                member: try row.text("member_id"), transactionID: try row.text("transaction_id"),
                ticket: try row.int("ticket"), prize: try row.textOrNil("prize_id"),
                prizePoints: try row.int("prize_points"),
                voucher: try voucherID.map { id in
                    IssuedVoucher(
                        voucherID: id, code: try row.text("code"),
                        validUntil: Timestamp(milliseconds: try row.int("valid_until_ms")),
                        status: VoucherStatus(rawValue: try row.text("status")) ?? .issued)
                },
                drawnAt: Timestamp(milliseconds: try row.int("drawn_at_ms")))
        }
    }
}
