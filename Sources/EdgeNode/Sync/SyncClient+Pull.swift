import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwiftProtobuf
import Synchronization
import Wire

// Pull (DESIGN §5): the gateway's changes page by page, each page and its cursor applied at once.
extension SyncClient {
    /// Applies the next page of changes. True when more are waiting.
    package func pullRound() async throws -> Bool {
        let (cursor, quotaIssue, quotaApplied, head) = try await database.pool.read { db in
            let state = try Row.fetchOne(
                db,
                sql: """
                    SELECT pull_cursor, promotion_quota_issue, promotion_quota_applied_sequence
                    FROM sync_state WHERE id = 1
                    """)
            let cursor: Int64 = state?["pull_cursor"] ?? 0
            let issue: Int64 = state?["promotion_quota_issue"] ?? 0
            let applied: Int64 = state?["promotion_quota_applied_sequence"] ?? 0
            return (cursor, issue, applied, try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM outbox") ?? 0)
        }
        var request = Coalition_Sync_V1_PullRequest()
        request.protocolVersion = 1
        // The quotas this edge holds, and when it applied them (docs/protocol.md, "Promotion quotas").
        request.promotionQuotaIssue = UInt64(max(0, quotaIssue))
        request.promotionQuotaAppliedSequence = UInt64(max(0, quotaApplied))
        // What the outbox held when asked: once the gateway has it all, nothing this site spent
        // before now is still on its way (the reclaim job's evidence).
        request.outboxHeadSequence = UInt64(max(0, head))
        request.sentAtMs = clock.now().milliseconds
        request.programVersion = program().version
        request.cursor = UInt64(cursor)
        request.pageSize = UInt32(link.pullPageSize)
        let response = try await sync.pull(request, options(link.callTimeoutMilliseconds))
        var programs: [(Int64, Data, Int64)] = []
        for change in response.changes {
            if case .program(let program) = change.body {
                programs.append((program.version, program.document, program.effectiveAtMs))
            }
        }
        var parsed: [Int64: Program] = [:]
        for (version, document, _) in programs {
            do {
                parsed[version] = try ProgramDocumentParser.load(Array(document))
            } catch {
                throw ServiceError(
                    .internalError, "program version \(version) from the gateway does not load: \(error)")
            }
        }
        let now = clock.now()
        try await database.pool.write { db in
            for change in response.changes {
                switch change.body {
                case .member(let snapshot): try Self.apply(snapshot, position: Int64(change.position), db, at: now)
                case .merge(let merge):
                    try db.cachedStatement(
                        sql: "UPDATE members SET merged_into = ?, phone_hash = NULL WHERE member_id = ?"
                    ).execute(arguments: [merge.intoMemberID, merge.fromMemberID])
                case .program(let program):
                    try db.cachedStatement(
                        sql:
                            "INSERT OR IGNORE INTO program_versions (version, document, effective_at_ms, received_at_ms) VALUES (?, ?, ?, ?)"
                    ).execute(arguments: [program.version, program.document, program.effectiveAtMs, now.milliseconds])
                case .voucher(let voucher):
                    // A later status never goes back (a used voucher stays used).
                    let status = voucher.status == .used ? "used" : "cancelled"
                    try db.cachedStatement(
                        sql: """
                            INSERT INTO voucher_states (voucher_id, status) VALUES (?, ?)
                            ON CONFLICT (voucher_id) DO UPDATE SET status = excluded.status
                            WHERE voucher_states.status != 'used'
                            """
                    ).execute(arguments: [voucher.voucherID, status])
                case nil: break
                }
            }
            for key in response.voucherKeys where (1...255).contains(key.keyID) && key.publicKey.count == 32 {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO voucher_keys (key_id, public_key) VALUES (?, ?)
                        ON CONFLICT (key_id) DO UPDATE SET public_key = excluded.public_key
                        """
                ).execute(arguments: [Int64(key.keyID), key.publicKey])
            }
            if response.promotionQuotaIssue > 0 {
                try Self.applyQuotas(response, db)
            }
            try db.cachedStatement(
                sql: "UPDATE sync_state SET pull_cursor = ?, last_gateway_contact_ms = ? WHERE id = 1"
            ).execute(arguments: [Int64(response.nextCursor), now.milliseconds])
        }
        if let newest = programs.filter({ $0.2 <= now.milliseconds }).max(by: { $0.0 < $1.0 }),
            let program = parsed[newest.0],
            newest.0 > self.program().version
        {
            activate(ActiveProgram(version: newest.0, program: program))
            logger.info("program activated", metadata: ["program.version": "\(newest.0)"])
        }
        return response.hasMore_p
    }

    /// Writes a member snapshot into the replica, keeping the later of the local and the
    /// gateway's earn state (local earns the snapshot does not include yet).
    static func apply(
        _ snapshot: Coalition_Sync_V1_MemberSnapshot, position: Int64, _ db: Database, at now: Timestamp
    ) throws {
        let id = snapshot.memberID
        let existing = try Row.fetchOne(
            db.cachedStatement(
                sql:
                    "SELECT last_earn, streak_last_day, streak_days, allowance_position FROM members WHERE member_id = ?"
            ),
            arguments: [id])
        // A snapshot from before an allowance this edge was granted directly does not know it (nor
        // the points it took from the balance); a later one in the feed will.
        if let existing, (existing["allowance_position"] as Int64? ?? 0) > position { return }
        var lastEarn: [Format: Timestamp] = [:]
        for (format, ms) in snapshot.lastEarnAtMsByFormat {
            if let format = Format(format) { lastEarn[format] = Timestamp(milliseconds: ms) }
        }
        var streakDay = snapshot.streakLastDay
        var streakDays = Int(snapshot.streakDays)
        if let existing {
            for (format, time) in LastEarnEncoding.decode(existing["last_earn"]) {
                lastEarn[format] = max(lastEarn[format] ?? time, time)
            }
            let localDay: String? = existing["streak_last_day"]
            if let localDay, localDay > streakDay {
                streakDay = localDay
                streakDays = existing["streak_days"]
            }
        }
        if !snapshot.phoneHash.isEmpty {
            // The gateway's record wins the phone (a merge of a local duplicate follows).
            try db.cachedStatement(sql: "UPDATE members SET phone_hash = NULL WHERE phone_hash = ? AND member_id != ?")
                .execute(arguments: [snapshot.phoneHash, id])
        }
        if !snapshot.cardNumber.isEmpty {
            try db.cachedStatement(
                sql: "UPDATE members SET card_number = NULL WHERE card_number = ? AND member_id != ?"
            ).execute(arguments: [snapshot.cardNumber, id])
        }
        try db.cachedStatement(
            sql: """
                INSERT INTO members (member_id, phone_hash, card_number, tier, birth_month, snapshot_balance, snapshot_site_sequence,
                    snapshot_at_ms, snapshot_position, expiring_points, next_expiry_at_ms, last_earn, streak_last_day, streak_days,
                    enrolled_at_ms, allowance_id, allowance_left, allowance_stop_at_ms, escrowed_points)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (member_id) DO UPDATE SET
                    phone_hash = excluded.phone_hash, card_number = excluded.card_number, tier = excluded.tier,
                    birth_month = excluded.birth_month, snapshot_balance = excluded.snapshot_balance,
                    snapshot_site_sequence = excluded.snapshot_site_sequence, snapshot_at_ms = excluded.snapshot_at_ms,
                    snapshot_position = excluded.snapshot_position,
                    expiring_points = excluded.expiring_points, next_expiry_at_ms = excluded.next_expiry_at_ms,
                    last_earn = excluded.last_earn, streak_last_day = excluded.streak_last_day, streak_days = excluded.streak_days,
                    allowance_id = excluded.allowance_id, allowance_left = excluded.allowance_left,
                    allowance_stop_at_ms = excluded.allowance_stop_at_ms, escrowed_points = excluded.escrowed_points
                """
        ).execute(arguments: [
            id, snapshot.phoneHash.isEmpty ? nil : snapshot.phoneHash,
            snapshot.cardNumber.isEmpty ? nil : snapshot.cardNumber,
            snapshot.tier, snapshot.birthMonth == 0 ? nil : Int(snapshot.birthMonth), snapshot.balancePoints,
            Int64(snapshot.includesSiteSequence), now.milliseconds, position, snapshot.expiringPoints,
            snapshot.nextExpiryAtMs, LastEarnEncoding.encode(lastEarn), streakDay.isEmpty ? nil : streakDay, streakDays,
            snapshot.enrolledAtMs, snapshot.allowanceID.isEmpty ? nil : snapshot.allowanceID,
            snapshot.allowanceLeftPoints, snapshot.allowanceStopAtMs, snapshot.escrowedPoints,
        ])
    }

    /// Replaces the promotion quotas with an issue's: each counts this site's bonuses after the
    /// issue's sequence; the outbox's newest sequence now is when the issue was applied (every
    /// bonus given under the quotas before is at or below it).
    static func applyQuotas(_ response: Coalition_Sync_V1_PullResponse, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM promotion_budgets")
        let sequence = Int64(clamping: response.promotionQuotaSequence)
        for budget in response.promotionBudgets {
            try db.cachedStatement(
                sql: """
                    INSERT INTO promotion_budgets (promotion_id, points_left, as_of_sequence) VALUES (?, ?, ?)
                    ON CONFLICT (promotion_id) DO UPDATE SET
                        points_left = excluded.points_left, as_of_sequence = excluded.as_of_sequence
                    """
            ).execute(arguments: [budget.promotionID, max(0, budget.pointsLeft), sequence])
        }
        try db.execute(
            sql: """
                UPDATE sync_state SET promotion_quota_issue = ?,
                    promotion_quota_applied_sequence = (SELECT COALESCE(MAX(sequence), 0) FROM outbox)
                WHERE id = 1
                """, arguments: [Int64(clamping: response.promotionQuotaIssue)])
    }
}
