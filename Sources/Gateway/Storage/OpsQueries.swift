import Core
import Foundation
import GRDB
import GRPCCore
import Wire

extension SQLiteLedgerStore {
    /// Every site of the latest program with the gateway's view of it.
    package func siteStatuses() async throws -> [Coalition_Ops_V1_SiteStatus] {
        guard let program = programs.latest?.program else { return [] }
        let now = clockNow
        return try await database.pool.read { db in
            try program.sites.map { site in
                var status = Coalition_Ops_V1_SiteStatus()
                status.siteID = site.id.rawValue
                status.name = site.name
                status.format = site.format.rawValue
                status.status = "active"
                if let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM sites WHERE site_id = ?", arguments: [site.id.rawValue])
                {
                    status.status = row["status"]
                    status.highWaterMark = UInt64(row["high_water_mark"] as Int64)
                    status.lastSeenAtMs = row["last_seen_at_ms"] ?? 0
                    let newest: Int64? = row["newest_occurred_at_ms"]
                    status.syncLagMs = newest.map { max(0, now.milliseconds - $0) } ?? 0
                    status.unsyncedExposurePoints = row["unsynced_exposure_points"]
                    status.flags = (row["flags"] as String).split(separator: ",").map(String.init)
                }
                status.offlineRiskPoints = -(try LedgerWriter(db: db).balance(.offlineRisk(site.id)).value)
                return status
            }
        }
    }

    /// A member's record, balance, holds, qualifying points and lots. Nil when unknown.
    package func memberDetail(_ id: MemberID) async throws -> Coalition_Ops_V1_GetMemberResponse? {
        guard let program = programs.latest?.program else { return nil }
        let now = clockNow
        return try await database.pool.read { db in
            let writer = LedgerWriter(db: db)
            guard let resolved = try writer.resolve(id),
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM members WHERE member_id = ?", arguments: [resolved.description])
            else { return nil }
            var response = Coalition_Ops_V1_GetMemberResponse()
            response.memberID = resolved.description
            response.cardNumber = row["card_number"] ?? ""
            response.tier = row["tier"]
            response.tierReviewDate = row["tier_review_date"]
            response.balancePoints = try writer.balance(.member(resolved)).value
            response.heldPoints = try writer.held(resolved, now: now).value
            response.qualifyingPoints12M = try writer.qualifyingPoints(resolved, program: program, now: now).value
            response.enrolledAtMs = row["enrolled_at_ms"]
            response.enrolledSiteID = row["enrolled_site"] ?? ""
            response.mergedMemberIds = try String.fetchAll(
                db, sql: "SELECT from_member FROM merges WHERE into_member = ? ORDER BY from_member",
                arguments: [resolved.description])
            response.lots = try writer.openLots(of: resolved).map { lot in
                var wire = Coalition_Ops_V1_Lot()
                wire.lotID = lot["lot_id"]
                wire.earnedAtMs = lot["earned_at_ms"]
                wire.expiresAtMs = lot["expires_at_ms"]
                wire.originalPoints = lot["original_points"]
                wire.remainingPoints = lot["remaining_points"]
                return wire
            }
            return response
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
    package func memberHistory(_ id: MemberID, before position: Int64?, limit: Int) async throws -> [(
        Int64, Coalition_Ops_V1_LedgerEntry
    )] {
        try await database.pool.read { db in
            try LedgerWriter(db: db).history(of: id, before: position ?? Int64.max, limit: limit).map { row in
                var entry = Coalition_Ops_V1_LedgerEntry()
                entry.transactionID = row["transaction_id"]
                entry.kind = row["kind"]
                entry.points = row["points"]
                entry.siteID = row["site_id"] ?? ""
                entry.merchantID = row["merchant_id"] ?? ""
                entry.occurredAtMs = row["occurred_at_ms"]
                entry.postedAtMs = row["posted_at_ms"]
                entry.detail = row["detail"]
                return (row["position"] as Int64, entry)
            }
        }
    }

    /// Books an operator's adjustment (member ↔ `adjustments`). A debit the member cannot cover is
    /// refused. The same request id returns the first adjustment.
    package func adjust(
        member id: MemberID, points: Points, reason: String, by operatorName: String, requestID: RequestID
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
                member: id, points: points, transactionID: transaction, requestID: requestID.rawValue,
                receipt: receipt, detail: "by \(operatorName): \(reason)")
            {
            case .success(let booked): member = booked
            case .failure(.unknownMember): throw ServiceError.notFound("member_id", "unknown member '\(id)'")
            case .failure(.insufficient(let available)):
                throw ServiceError(.failedPrecondition, "points: the member has \(available) available, not \(-points)")
            }
            try SQLitePosting.apply(db, engine.finish(), outbox: [:], now: now)
            return (transaction, try writer.balance(.member(member)))
        }
    }

    /// Published program versions, oldest first.
    package func programSummaries() async throws -> [Coalition_Ops_V1_ProgramSummary] {
        try await database.pool.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT version, effective_at_ms, published_at_ms, published_by, sha256 FROM program_versions ORDER BY version"
            )
            .map { row in
                var summary = Coalition_Ops_V1_ProgramSummary()
                summary.version = row["version"]
                summary.effectiveAtMs = row["effective_at_ms"]
                summary.publishedAtMs = row["published_at_ms"]
                summary.publishedBy = row["published_by"]
                summary.documentSha256 = row["sha256"]
                return summary
            }
        }
    }
}
