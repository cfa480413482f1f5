import Core
import Foundation
import GRDB
import Wire

/// Lottery draws on SQLite: each draw is a job of the orders' writer (the one writer, so the
/// period's draw number, the prizes' units and the member's points are read and changed in one
/// step).
extension SQLiteLedgerStore {
    package func draw(_ command: DrawCommand, vouchers issuer: VoucherIssuer?) async throws -> (
        draw: LotteryDrawEntry, balance: Points
    ) {
        let now = clock.now()
        let catalogue = programs
        return try await write { db in
            let writer = LedgerWriter(db: db)
            if let first = try Self.drawEntries(
                db, "WHERE d.channel = ? AND d.request_id = ?", [command.channel, command.requestID.rawValue]
            ).first {
                let requested = try String.fetchOne(
                    db, sql: "SELECT requested_member_id FROM lottery_draws WHERE draw_id = ?",
                    arguments: [first.drawID])
                guard requested == command.member.description, first.lottery == command.lottery.rawValue else {
                    throw MallRequestConflict(requestID: command.requestID.rawValue, orderID: first.drawID)
                }
                return (first, try writer.balance(.member(MemberID(first.member) ?? command.member)))
            }
            let instant = try writer.postingInstant(now)
            guard let active = catalogue.active(at: instant),
                let lottery = active.program.lotteries.lottery(command.lottery)
            else { throw DrawRefusal.unknownLottery(command.lottery.rawValue) }
            guard lottery.open(at: instant) else { throw DrawRefusal.notOpen(start: lottery.start, end: lottery.end) }
            let period = LotteryDrawing.period(instant, active.program)
            var keys = PostingKeys()
            keys.members = [command.member]
            keys.debitedMembers = keys.members
            var engine = PostingEngine(
                view: try SQLitePosting.load(db, keys: keys, catalogue: catalogue), catalogue: catalogue,
                site: SiteID(unchecked: "gateway"), now: instant, programGraceMilliseconds: 0,
                clockSkewMaxMilliseconds: 0)
            guard let (member, _, available) = engine.orderingMember(command.member) else {
                throw DrawRefusal.unknownMember
            }
            let today =
                try Int64.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM lottery_draws WHERE member_id = ? AND lottery_id = ? AND period = ?",
                    arguments: [member.description, lottery.id.rawValue, period.description]) ?? 0
            guard today < lottery.perMemberDailyMax else {
                throw DrawRefusal.dailyLimit(max: lottery.perMemberDailyMax)
            }
            guard available >= lottery.cost else {
                throw DrawRefusal.insufficientPoints(available: available, cost: lottery.cost)
            }
            try Self.commitSeed(self.lotterySeeds(), db, lottery.id, period, at: instant)
            guard
                let seedRow = try Row.fetchOne(
                    db, sql: "SELECT seed, draws FROM lottery_seeds WHERE lottery_id = ? AND period = ?",
                    arguments: [lottery.id.rawValue, period.description])
            else { preconditionFailure("a seed committed in this transaction is missing") }
            let number = (seedRow["draws"] as Int64) + 1
            let drawID = LotteryDraw.drawID(lottery.id, period: period, number: number)
            let ticket = LotterySeal.ticket(seed: Array(seedRow["seed"] as Data), drawID: drawID)
            var given: [PrizeID: Int64] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT prize_id, given FROM lottery_given WHERE lottery_id = ?",
                arguments: [lottery.id.rawValue])
            {
                given[PrizeID(unchecked: row["prize_id"])] = row["given"]
            }
            let prize = LotteryDraw.outcome(lottery, ticket: ticket, given: given)
            var prizeItem: CatalogItem?
            if case .item(let id)? = prize?.kind {
                prizeItem = active.program.catalog.item(id)
                if issuer == nil { throw MallVouchersDisabled() }
            }
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: instant, using: &generator).description
            let booked = try engine.draw(
                member: member, lottery: lottery, prize: prize, transactionID: transaction,
                requestID: command.requestID.rawValue, detail: "draw \(drawID) by \(command.channel)"
            ).get()
            try SQLitePosting.apply(db, engine.finish(), outbox: [:], now: instant)
            var voucher: IssuedVoucher?
            if let item = prizeItem, let issuer {
                let ids = [TransactionID(time: instant, using: &generator)]
                for claim in VoucherRules.issue(item, at: instant, keyID: issuer.keyID, ids: ids) {
                    let issued = IssuedVoucher(
                        voucherID: claim.voucherID.description, code: try issuer.sign(claim).text,
                        validUntil: claim.validUntil, status: .issued)
                    try db.execute(
                        sql: """
                            INSERT INTO vouchers (voucher_id, order_id, item_id, member_id, key_id, code, valid_until_ms,
                                status, changed_position, sponsor)
                            VALUES (?, ?, ?, ?, ?, ?, ?, 'issued', ?, 'platform')
                            """,
                        arguments: [
                            issued.voucherID, transaction, item.id.rawValue, booked.member.description,
                            Int64(claim.keyID), issued.code, issued.validUntil.milliseconds, booked.position,
                        ])
                    voucher = issued
                }
            }
            try db.execute(
                sql: "UPDATE lottery_seeds SET draws = draws + 1 WHERE lottery_id = ? AND period = ?",
                arguments: [lottery.id.rawValue, period.description])
            if let prize {
                try db.execute(
                    sql: """
                        INSERT INTO lottery_given (lottery_id, prize_id, given) VALUES (?, ?, 1)
                        ON CONFLICT (lottery_id, prize_id) DO UPDATE SET given = given + 1
                        """,
                    arguments: [lottery.id.rawValue, prize.id.rawValue])
            }
            var points: Int64 = 0
            if case .points(let won)? = prize?.kind { points = won.value }
            let entry = LotteryDrawEntry(
                drawID: drawID, lottery: lottery.id.rawValue, period: period, number: number,
                channel: command.channel, requestID: command.requestID.rawValue, member: booked.member.description,
                transactionID: transaction, ticket: ticket, prize: prize?.id.rawValue, prizePoints: points,
                voucher: voucher, drawnAt: instant)
            try db.execute(
                sql: """
                    INSERT INTO lottery_draws (draw_id, lottery_id, period, number, channel, request_id,
                        requested_member_id, member_id, transaction_id, ticket, prize_id, prize_points, voucher_id,
                        drawn_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    drawID, entry.lottery, period.description, number, entry.channel, entry.requestID,
                    command.member.description, entry.member, transaction, ticket, entry.prize, points,
                    voucher?.voucherID, instant.milliseconds,
                ])
            return (entry, try writer.balance(.member(booked.member)))
        }
    }

    package func lotteryPeriods(_ lottery: LotteryID) async throws -> [LotteryPeriod] {
        try await database.pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT period, commitment, CASE WHEN revealed_at_ms IS NULL THEN NULL ELSE seed END AS seed,
                        committed_at_ms, draws
                    FROM lottery_seeds WHERE lottery_id = ? ORDER BY period
                    """, arguments: [lottery.rawValue]
            ).compactMap { row in
                guard let period = CivilDate(parsing: row["period"]) else { return nil }
                return LotteryPeriod(
                    period: period, commitment: Array(row["commitment"] as Data),
                    seed: (row["seed"] as Data?).map(Array.init),
                    committedAt: Timestamp(milliseconds: row["committed_at_ms"]), draws: row["draws"])
            }
        }
    }

    package func lotteryGiven(_ lottery: LotteryID) async throws -> [PrizeID: Int64] {
        try await database.pool.read { db in
            var given: [PrizeID: Int64] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT prize_id, given FROM lottery_given WHERE lottery_id = ?", arguments: [lottery.rawValue]
            ) {
                given[PrizeID(unchecked: row["prize_id"])] = row["given"]
            }
            return given
        }
    }

    package func lotteryDraws(_ lottery: LotteryID, period: CivilDate, after number: Int64, limit: Int) async throws
        -> [LotteryDrawEntry]
    {
        try await database.pool.read { db in
            try Self.drawEntries(
                db, "WHERE d.lottery_id = ? AND d.period = ? AND d.number > ? ORDER BY d.number LIMIT ?",
                [lottery.rawValue, period.description, number, limit])
        }
    }

    @discardableResult
    package func keepLotterySeeds() async throws -> (committed: Int, revealed: Int) {
        let now = clock.now()
        guard let latest = programs.latest?.program else { return (0, 0) }
        return try await write { db in
            var committed = 0
            for lottery in latest.lotteries.items {
                for period in LotteryDrawing.periodsToCommit(lottery, program: latest, now: now) {
                    committed += try Self.commitSeed(self.lotterySeeds(), db, lottery.id, period, at: now) ? 1 : 0
                }
            }
            let today = LotteryDrawing.period(now, latest)
            try db.execute(
                sql: "UPDATE lottery_seeds SET revealed_at_ms = ? WHERE revealed_at_ms IS NULL AND period < ?",
                arguments: [now.milliseconds, today.description])
            return (committed, db.changesCount)
        }
    }

    /// Commits a new seed for the period unless it has one; returns whether it made one.
    @discardableResult
    private static func commitSeed(
        _ seed: [UInt8], _ db: Database, _ lottery: LotteryID, _ period: CivilDate, at now: Timestamp
    ) throws
        -> Bool
    {
        try db.execute(
            sql: """
                INSERT INTO lottery_seeds (lottery_id, period, seed, commitment, committed_at_ms, draws)
                VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (lottery_id, period) DO NOTHING
                """,
            arguments: [
                lottery.rawValue, period.description, Data(seed), Data(LotterySeal.commitment(seed)), now.milliseconds,
            ])
        return db.changesCount > 0
    }

    private static func drawEntries(_ db: Database, _ condition: String, _ arguments: StatementArguments) throws
        -> [LotteryDrawEntry]
    {
        let sql = """
            SELECT d.draw_id, d.lottery_id, d.period, d.number, d.channel, d.request_id, d.member_id, d.transaction_id,
                d.ticket, d.prize_id, d.prize_points, d.drawn_at_ms, v.voucher_id, v.code, v.valid_until_ms, v.status
            FROM lottery_draws d LEFT JOIN vouchers v ON v.voucher_id = d.voucher_id
            """
        return try Row.fetchAll(db, sql: sql + " " + condition, arguments: arguments).map { row in
            let voucherID: String? = row["voucher_id"]
            return LotteryDrawEntry(
                drawID: row["draw_id"], lottery: row["lottery_id"],
                period: CivilDate(parsing: row["period"]) ?? CivilDate(parsing: "1970-01-01")!, number: row["number"],
                channel: row["channel"], requestID: row["request_id"], member: row["member_id"],
                transactionID: row["transaction_id"], ticket: row["ticket"], prize: row["prize_id"],
                prizePoints: row["prize_points"],
                voucher: voucherID.map { id in
                    IssuedVoucher(
                        voucherID: id, code: row["code"], validUntil: Timestamp(milliseconds: row["valid_until_ms"]),
                        status: VoucherStatus(rawValue: row["status"]) ?? .issued)
                },
                drawnAt: Timestamp(milliseconds: row["drawn_at_ms"]))
        }
    }
}
