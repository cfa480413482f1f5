import Core
import Foundation
import GRPCCore
import Logging
import PostgresNIO
import Wire

extension PostgresLedgerStore {
    /// Closes the settlement of `period`, as the SQLite store does. Several gateways: the close
    /// first raises the posting instant to the period's end (no gateway posts into it afterwards,
    /// whatever its clock) and waits for transactions posting before the end to commit; the
    /// `settlements` row's key makes a second close, at any gateway, return the first.
    package func closeSettlement(period: CivilDate, by operatorName: String) async throws -> ClosedSettlement {
        let now = clockNow
        let catalogue = try await guarded("loading the programs") {
            try await client.leased(waiting: databaseWait) { connection in try await self.currentPrograms(connection) }
        }
        guard let latest = catalogue.latest else {
            throw SettlementRefusal(description: "the gateway has no program")
        }
        let zone = latest.program.timeZone
        let start = zone.startOfDay(period)
        let end = zone.startOfDay(period.adding(days: 1))
        if let stored = try await storedSettlement(period) { return stored }
        guard end <= now else {
            throw SettlementRefusal(
                description:
                    "period \(period) is still open: it ends at midnight after \(period) (\(zone)); close it after that"
            )
        }
        let settled = try await guarded("closing a period") {
            try await PostgresPositions.closePeriod(
                client, end: end, now: now, claimMaxMilliseconds: limits.positionClaimMaxMilliseconds,
                waitMilliseconds: limits.settlementCloseWaitMilliseconds, logger: logger)
        }
        guard settled else {
            throw ServiceError(
                .unavailable,
                "transactions posted before the end of \(period) are still being written; close the period again in a moment"
            )
        }
        return try await transaction("closing a period") { [logger] connection in
            try await connection.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger)
            if let stored = try await Self.stored(connection, period, logger) { return stored }
            let (settlement, lateItems) = try await self.compute(
                connection, programs: catalogue, latest: latest, start: start, end: end)
            let (files, merchantFiles) = SettlementAssembly.files(
                settlement, lateItems: lateItems, period: period, start: start, end: end, latest: latest, closedAt: now,
                closedBy: operatorName)
            let inserted =
                try await connection.value(
                    """
                    INSERT INTO settlements (period, from_ms, to_ms, json, csv, content_hash, closed_at_ms, closed_by,
                        merchant_files)
                    VALUES (\(period.description), \(start.milliseconds), \(end.milliseconds), \(files.json), \(files.csv),
                        \(files.contentHash), \(now.milliseconds), \(operatorName), \(merchantFiles))
                    ON CONFLICT (period) DO NOTHING RETURNING TRUE
                    """, as: Bool.self, logger) ?? false
            guard inserted else {
                // Another gateway closed it meanwhile: its statement stands.
                guard let stored = try await Self.stored(connection, period, logger) else {
                    preconditionFailure("a settlement row vanished")
                }
                return stored
            }
            return ClosedSettlement(
                period: period, json: files.json, csv: files.csv, contentHash: files.contentHash, alreadyClosed: false,
                closedAt: now, closedBy: operatorName, merchantFiles: files.merchants)
        }
    }

    /// A closed period's stored result, or nil.
    package func storedSettlement(_ period: CivilDate) async throws -> ClosedSettlement? {
        try await guarded("reading a settlement") {
            try await client.leased(waiting: databaseWait) { [logger] connection in
                try await Self.stored(connection, period, logger)
            }
        }
    }

    private static func stored(_ connection: PostgresConnection, _ period: CivilDate, _ logger: Logger) async throws
        -> ClosedSettlement?
    {
        guard
            let row = try await connection.rows(
                """
                SELECT json, csv, content_hash, closed_at_ms, closed_by, merchant_files FROM settlements
                WHERE period = \(period.description)
                """, logger
            ).first
        else { return nil }
        return ClosedSettlement(
            period: period, json: try row.bytes("json"), csv: try row.bytes("csv"),
            contentHash: try row.text("content_hash"), alreadyClosed: true,
            closedAt: Timestamp(milliseconds: try row.int("closed_at_ms")), closedBy: try row.text("closed_by"),
            merchantFiles: try SettlementAssembly.merchantFiles(try row.bytesOrNil("merchant_files")))
    }

    /// Reads the rows of the transactions posted in [start, end) and settles them.
    private func compute(
        _ connection: PostgresConnection, programs: ProgramCatalogue, latest: ProgramCatalogue.Version,
        start: Timestamp, end: Timestamp
    ) async throws -> (Settlement, [LateItem]) {
        // Posting instants rise with positions (`PostgresPositions`): the period is a range of positions.
        let first = try await firstPosition(connection, postedAtOrAfter: start)
        let last = try await firstPosition(connection, postedAtOrAfter: end)
        func query(_ text: String, occurred: Bool = false) -> PostgresQuery {
            var binds = PostgresBindings()
            binds.append(first)
            binds.append(last)
            if occurred { binds.append(start.milliseconds) }
            return PostgresQuery(
                unsafeSQL: text.replacingOccurrences(of: "$START", with: "$1").replacingOccurrences(
                    of: "$END", with: "$2"
                )
                .replacingOccurrences(of: "$OCCURRED", with: "$3"), binds: binds)
        }
        let lots = try await connection.rows(query(SettlementAssembly.lotMovementsSQL), logger).map { row in
            let created = try row.int("created")
            return SettlementAssembly.LotRow(
                movement: SettlementAssembly.movement(
                    original: Points(try row.int("original_points")), created: created, start: first,
                    before: Points(try row.int("before")), redeemed: Points(try row.int("redeemed")),
                    expired: Points(try row.int("expired")), reversed: Points(try row.int("reversed")),
                    adjusted: Points(try row.int("adjusted"))),
                lotID: try row.text("lot_id"), member: MemberID(try row.text("member_id")) ?? MemberID(value: 0),
                created: created, version: try row.intOrNil("program_version"))
        }
        var funders: [Int64: [Posting]] = [:]
        for row in try await connection.rows(
            query(SettlementAssembly.lotFundingSQL), logger)
        {
            funders[try row.int("position"), default: []].append(
                Posting(SQLitePosting.account(try row.text("account")), Points(try row.int("points"))))
        }
        let reversed = try await connection.rows(query(SettlementAssembly.breakageReversedSQL), logger).map {
            (points: Points(try $0.int("points")), lot: try $0.text("lot"))
        }
        let lines = try await connection.rows(query(SettlementAssembly.linesSQL), logger).map { row in
            SettlementLine(
                position: try row.int("position"), kind: try row.text("kind"),
                merchant: try row.textOrNil("merchant_id"),
                occurredAt: Timestamp(milliseconds: try row.int("occurred_at_ms")),
                originalKind: try row.textOrNil("original_kind"), account: try row.text("account"),
                points: Points(try row.int("points")), programVersion: try row.int("program_version"))
        }
        let lateItems = try await connection.rows(query(SettlementAssembly.lateItemsSQL, occurred: true), logger).map {
            row in
            LateItem(
                transactionID: try row.text("transaction_id"), kind: try row.text("kind"),
                merchant: try row.text("merchant_id"),
                occurredAt: Timestamp(milliseconds: try row.int("occurred_at_ms")),
                postedAt: Timestamp(milliseconds: try row.int("posted_at_ms")), points: Points(try row.int("points")),
                amount: Money(minorUnits: try row.int("amount_minor")))
        }
        let vouchers = try await connection.rows(query(SettlementAssembly.voucherUsesSQL), logger).map { row in
            SettlementAssembly.VoucherUseRow(
                merchant: try row.text("merchant_id"), site: try row.text("site_id"),
                price: try row.int("amount_minor"), version: try row.intOrNil("program_version"),
                item: try row.text("item_id"), sponsor: try row.textOrNil("sponsor"))
        }
        let settlement = try SettlementAssembly.settle(
            programs: programs, latest: latest, start: start, lots: lots, funders: funders,
            breakageReversed: reversed, lines: lines, vouchers: vouchers)
        return (settlement, lateItems)
    }

    /// The first position posted at or after `instant`: a binary search over positions, as on SQLite.
    private func firstPosition(_ connection: PostgresConnection, postedAtOrAfter instant: Timestamp) async throws
        -> Int64
    {
        var low: Int64 = 0
        var high =
            (try await connection.value(
                "SELECT position FROM transactions ORDER BY position DESC LIMIT 1", as: Int64.self, logger) ?? 0) + 1
        while low < high {
            let middle = low + (high - low) / 2
            guard
                let row = try await connection.rows(
                    "SELECT position, posted_at_ms FROM transactions WHERE position >= \(middle) ORDER BY position LIMIT 1",
                    logger
                ).first, try row.int("posted_at_ms") < instant.milliseconds
            else {
                high = middle
                continue
            }
            low = try row.int("position") + 1
        }
        return low
    }
}
