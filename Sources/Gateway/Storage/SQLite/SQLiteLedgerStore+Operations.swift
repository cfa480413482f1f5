import Core
import Foundation
import GRDB

extension SQLiteLedgerStore {
    /// Every site of the latest program with the gateway's view of it.
    package func siteStatuses() async throws -> [SiteStatusRecord] {
        guard let program = programs.latest?.program else { return [] }
        let now = clockNow
        return try await database.pool.read { db in
            try program.sites.map { site in
                var status = SiteStatusRecord(
                    site: site.id, name: site.name, format: site.format, status: "active", highWaterMark: 0,
                    lastSeenAt: nil, syncLagMilliseconds: 0, unsyncedExposure: .zero, flags: [],
                    offlineRisk: -(try LedgerWriter(db: db).balance(.offlineRisk(site.id))))
                if let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM sites WHERE site_id = ?", arguments: [site.id.rawValue])
                {
                    status.status = row["status"]
                    status.highWaterMark = row["high_water_mark"]
                    status.lastSeenAt = (row["last_seen_at_ms"] as Int64?).map(Timestamp.init(milliseconds:))
                    let newest: Int64? = row["newest_occurred_at_ms"]
                    status.syncLagMilliseconds = newest.map { max(0, now.milliseconds - $0) } ?? 0
                    status.unsyncedExposure = Points(row["unsynced_exposure_points"])
                    status.flags = (row["flags"] as String).split(separator: ",").map(String.init)
                }
                return status
            }
        }
    }

    /// A member's record, balance, holds, qualifying points and lots. Nil when unknown.
    package func memberDetail(_ id: MemberID) async throws -> MemberDetail? {
        guard let program = programs.latest?.program else { return nil }
        let now = clockNow
        return try await database.pool.read { db in
            let writer = LedgerWriter(db: db)
            guard let resolved = try writer.resolve(id),
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM members WHERE member_id = ?", arguments: [resolved.description])
            else { return nil }
            var detail = MemberDetail(
                id: resolved, cardNumber: row["card_number"] ?? "", tier: row["tier"],
                tierReviewDate: row["tier_review_date"], balance: try writer.balance(.member(resolved)),
                held: try writer.held(resolved, now: now),
                qualifyingPoints: try writer.qualifyingPoints(resolved, program: program, now: now),
                enrolledAt: Timestamp(milliseconds: row["enrolled_at_ms"]), enrolledSite: row["enrolled_site"] ?? "",
                mergedMembers: try String.fetchAll(
                    db, sql: "SELECT from_member FROM merges WHERE into_member = ? ORDER BY from_member",
                    arguments: [resolved.description]),
                lots: try writer.openLots(of: resolved).map { lot in
                    LotDetail(
                        lotID: lot["lot_id"], earnedAt: Timestamp(milliseconds: lot["earned_at_ms"]),
                        expiresAt: Timestamp(milliseconds: lot["expires_at_ms"]),
                        originalPoints: Points(lot["original_points"]),
                        remainingPoints: Points(lot["remaining_points"]))
                }, birthMonth: (row["birth_month"] as Int64?).map(Int.init))
            detail.escrowed = Points(
                try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT COALESCE(SUM(granted_points - spent_points - released_points), 0) FROM allowances
                        WHERE member_id = ? AND status = 'active'
                        """, arguments: [resolved.description]) ?? 0)
            return detail
        }
    }

    /// The member id of a phone hash or card number, if any.
    package func memberID(phoneHash: Data? = nil, card: String? = nil) async throws -> MemberID? {
        try await database.pool.read { db in
            let id: String? =
                if let phoneHash {
                    try String.fetchOne(
                        db, sql: "SELECT member_id FROM members WHERE phone_hash = ? AND merged_into IS NULL",
                        arguments: [phoneHash])
                } else {
                    try String.fetchOne(
                        db, sql: "SELECT member_id FROM members WHERE card_number = ? AND merged_into IS NULL",
                        arguments: [card])
                }
            return id.flatMap(MemberID.init)
        }
    }

    /// A member's ledger entries, newest first, before `position` (exclusive), at most `limit`.
    package func memberHistory(_ id: MemberID, before position: Int64?, limit: Int) async throws -> [HistoryEntry] {
        try await database.pool.read { db in
            try LedgerWriter(db: db).history(of: id, before: position ?? Int64.max, limit: limit).map { row in
                HistoryEntry(
                    position: row["position"], transactionID: row["transaction_id"], kind: row["kind"],
                    points: Points(row["points"]), site: row["site_id"] ?? "", merchant: row["merchant_id"] ?? "",
                    occurredAt: Timestamp(milliseconds: row["occurred_at_ms"]),
                    postedAt: Timestamp(milliseconds: row["posted_at_ms"]), detail: row["detail"])
            }
        }
    }

    /// Books an operator's adjustment (member ↔ its funder: `adjustments` for the platform,
    /// `issued(merchant)` for a merchant of the program in force). A debit the member cannot cover
    /// is refused. The same request id returns the first adjustment.
    package func adjust(
        member id: MemberID, points: Points, funder: AdjustmentFunder = .platform, reason: String,
        by operatorName: String, requestID: RequestID
    ) async throws
        -> (transaction: String, balance: Points)
    {
        let now = clockNow
        // An operator's request ids are receipts of the merchant "-ops".
        let receipt = ReceiptKey(merchant: "-ops", operation: .adjust, requestID: requestID.rawValue)
        return try await database.pool.write { db in
            let writer = LedgerWriter(db: db)
            if let first = try String.fetchOne(
                db,
                sql:
                    "SELECT transaction_id FROM transactions WHERE receipt = ?",
                arguments: [receipt.description])
            {
                let member = try String.fetchOne(
                    db, sql: "SELECT member_id FROM transactions WHERE transaction_id = ?", arguments: [first])
                return (first, try writer.balance(.member(MemberID(member ?? "") ?? id)))
            }
            if let merchant = funder.merchant, self.programs.latest?.program.merchant(merchant) == nil {
                throw AdjustmentRefusal.unknownFunder(merchant.rawValue)
            }
            var keys = PostingKeys()
            keys.members = [id]
            keys.debitedMembers = keys.members
            let catalogue = self.programs
            let view = try SQLitePosting.load(db, keys: keys, catalogue: catalogue)
            var engine = PostingEngine(
                view: view, catalogue: catalogue, site: SiteID(unchecked: "gateway"),
                now: try writer.postingInstant(now), programGraceMilliseconds: 0, clockSkewMaxMilliseconds: 0)
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator).description
            let member: MemberID
            switch engine.adjust(
                member: id, points: points, funder: funder, transactionID: transaction, requestID: requestID.rawValue,
                receipt: receipt, detail: "by \(operatorName): \(reason)")
            {
            case .success(let booked): member = booked
            case .failure(.unknownMember): throw AdjustmentRefusal.unknownMember(id)
            case .failure(.insufficient(let available)):
                throw AdjustmentRefusal.insufficient(available: available, requested: -points)
            }
            try SQLitePosting.apply(db, engine.finish(), outbox: [:], now: now)
            return (transaction, try writer.balance(.member(member)))
        }
    }

    /// Published program versions, oldest first.
    package func programSummaries() async throws -> [ProgramSummary] {
        try await database.pool.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT version, effective_at_ms, published_at_ms, published_by, sha256 FROM program_versions ORDER BY version"
            )
            .map { row in
                ProgramSummary(
                    version: row["version"], effectiveAt: Timestamp(milliseconds: row["effective_at_ms"]),
                    publishedAt: Timestamp(milliseconds: row["published_at_ms"]), publishedBy: row["published_by"],
                    documentSHA256: row["sha256"])
            }
        }
    }
}
