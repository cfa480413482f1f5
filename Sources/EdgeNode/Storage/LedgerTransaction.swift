import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import NodeSupport
import SwiftProtobuf
import Wire

/// Identifies a state-changing request for idempotency: the same merchant, operation and request
/// id with the same content hash is the same request.
package struct RequestKey: Sendable, Hashable {
    package var merchant: MerchantID
    package var operation: ReceiptOperation
    package var requestID: RequestID
    /// SHA-256 of the request message's bytes.
    package var contentHash: Data

    /// `content` is the request message's encoded bytes (as `ServiceError.sizedBytes` returns them).
    package init(merchant: MerchantID, operation: ReceiptOperation, requestID: RequestID, content: [UInt8]) {
        self.merchant = merchant
        self.operation = operation
        self.requestID = requestID
        self.contentHash = Data(SHA256.hash(data: content))
    }
}

/// A member as the edge's replica holds it.
struct MemberRow: Sendable {
    var id: MemberID
    var phoneHash: Data?
    var cardNumber: String?
    var tier: TierID
    var birthMonth: Int?
    var snapshotBalance: Points
    var snapshotSiteSequence: Int64
    var snapshotAt: Int64
    /// The gateway log position of the snapshot this row holds (0: none yet, a local enrolment).
    var snapshotPosition: Int64
    var expiringPoints: Points
    var nextExpiryAt: Int64
    var lastEarnByFormat: [Format: Timestamp]
    var streak: Streak?
    /// The member's allowance at this site, as of `snapshotSiteSequence` (nil: none).
    var allowanceID: String?
    var allowanceLeft: Points
    var allowanceStopAt: Int64
    /// Points the member has escrowed, all sites, as of the snapshot.
    var escrowed: Points

    static let columns =
        "member_id, phone_hash, card_number, tier, birth_month, snapshot_balance, snapshot_site_sequence, snapshot_at_ms, snapshot_position, expiring_points, next_expiry_at_ms, last_earn, streak_last_day, streak_days, allowance_id, allowance_left, allowance_stop_at_ms, escrowed_points"

    /// Reads the row of `SELECT \(columns)` with SQLite's C API.
    init(_ row: FastStatement.Columns) {
        let idText = row.string(0)
        guard let id = MemberID(idText) else { preconditionFailure("a stored member id is malformed: \(idText)") }
        self.id = id
        phoneHash = row.bytesOrNil(1).map { Data($0) }
        cardNumber = row.stringOrNil(2)
        tier = TierID(unchecked: row.string(3))
        birthMonth = row.int64OrNil(4).map { Int($0) }
        snapshotBalance = Points(row.int64(5))
        snapshotSiteSequence = row.int64(6)
        snapshotAt = row.int64(7)
        snapshotPosition = row.int64(8)
        expiringPoints = Points(row.int64(9))
        nextExpiryAt = row.int64(10)
        lastEarnByFormat = row.utf8(11) { LastEarnEncoding.decode(utf8: $0) } ?? [:]
        let streakDays = Int(row.int64(13))
        streak = row.stringOrNil(12).flatMap(CivilDate.init(parsing:)).map {
            Streak(lastDay: $0, days: max(1, streakDays))
        }
        allowanceID = row.stringOrNil(14)
        allowanceLeft = Points(row.int64(15))
        allowanceStopAt = row.int64(16)
        escrowed = Points(row.int64(17))
    }

    var earnState: MemberEarnState {
        MemberEarnState(tier: tier, birthMonth: birthMonth, lastEarnByFormat: lastEarnByFormat, streak: streak)
    }
}

/// A member's allowance at this site, as the edge knows it now.
struct EdgeAllowance: Sendable, Equatable {
    var id: String
    /// What it has left.
    var left: Points
    /// This site's changes of it since the snapshot (≤ 0).
    var changed: Points
    /// When the site must stop spending it (its clock).
    var stopAt: Timestamp
    /// What may be spent now: `left` before the stop instant, nothing after.
    var usable: Points
}

/// A member's points change from this site's transactions after the acknowledged sequence.
package struct Unacknowledged: Sendable, Equatable {
    package var points: Points
    /// The acknowledged sequence the change is counted after.
    package var afterSequence: Int64

    package static let none = Unacknowledged(points: .zero, afterSequence: 0)

    package init(points: Points, afterSequence: Int64) {
        self.points = points
        self.afterSequence = afterSequence
    }
}

/// What one local transaction writes to the outbox.
struct OutboxEntry {
    var transactionID: TransactionID
    var kind: TransactionKind
    var merchant: MerchantID
    /// Nil for a voucher use (the edge does not know whose voucher it is).
    var member: MemberID?
    var requestID: RequestID
    /// The member's signed points change.
    var points: Points
    var amount: Money
    var authorization: String?
    var original: TransactionID?
    var freeMinutes: Int64 = 0
    var occurredAt: Timestamp
    var localDay: CivilDate
    var payload: Coalition_Sync_V1_LocalTransaction
    /// Every member's points change (the main member's and, for a referral, the referrer's).
    var deltas: [(MemberID, Points)]
    /// The part of a spend paid from the member's allowance here (its change: `allowanceChange`).
    var allowancePoints: Points = .zero
    /// The allowance this transaction changes, and by how much (negative: spent or given back).
    var allowanceChange: (id: String, points: Points)?
}

/// The writer's view of the database inside one group-commit savepoint.
struct LedgerTransaction {
    let db: Database
    let limits: EdgeLimits

    /// The answer stored for this request, if it was answered before. Throws ALREADY_EXISTS when
    /// the same request id was used with different content.
    func storedAnswer(_ key: RequestKey) throws -> Data? {
        var stored: (hash: [UInt8], response: [UInt8])?
        try FastStatement(
            db,
            sql:
                "SELECT request_hash, response FROM idempotency WHERE merchant_id = ? AND operation = ? AND request_id = ?"
        ).forEach {
            $0.add(key)
        } row: { row in
            stored = (row.bytesOrNil(0) ?? [], row.bytesOrNil(1) ?? [])
        }
        guard let stored else { return nil }
        guard stored.hash.elementsEqual(key.contentHash) else {
            throw ServiceError(
                .alreadyExists,
                "request_id: '\(key.requestID)' was already used for a different \(key.operation) at merchant '\(key.merchant)'",
                reason: "REQUEST_ID_REUSED")
        }
        return Data(stored.response)
    }

    /// Records the answer to a request so a retry gets it again.
    func remember(_ key: RequestKey, response: some SwiftProtobuf.Message, sequence: Int64?) throws {
        let bytes: [UInt8] = try response.serializedBytes()
        try FastStatement(
            db,
            sql:
                "INSERT INTO idempotency (merchant_id, operation, request_id, request_hash, response, sequence) VALUES (?, ?, ?, ?, ?, ?)"
        ).run {
            $0.add(key)
            $0.add(blob: key.contentHash)
            $0.add(blob: bytes)
            $0.add(sequence)
        }
    }

    /// The member's replica row; a member merged into another by the gateway resolves to the
    /// surviving record.
    func member(_ id: MemberID) throws -> MemberRow? {
        let statement = try FastStatement(
            db, sql: "SELECT \(MemberRow.columns), merged_into FROM members WHERE member_id = ?")
        var own: MemberRow?
        var survivor: String?
        try statement.forEach {
            $0.add(id)
        } row: { row in
            own = MemberRow(row)
            survivor = row.stringOrNil(18)
        }
        if let survivor {
            var merged: MemberRow?
            try statement.forEach {
                $0.add(survivor)
            } row: {
                merged = MemberRow($0)
            }
            // Merged into a member whose snapshot has not arrived yet (the merge record can come a
            // page before the survivor's latest snapshot): the member's own row.
            if let merged { return merged }
        }
        return own
    }

    /// The member's allowance at this site as the edge knows it now: what the snapshot said it had
    /// left plus this site's changes of it since (spends and returns not rejected); spendable only
    /// before its stop instant. Nil when the member has none.
    func allowance(of member: MemberRow, now: Timestamp) throws -> EdgeAllowance? {
        guard let id = member.allowanceID else { return nil }
        let changed = try allowanceChanged(id, after: member.snapshotSiteSequence)
        let left = max(.zero, member.allowanceLeft + changed)
        return EdgeAllowance(
            id: id, left: left, changed: changed, stopAt: Timestamp(milliseconds: member.allowanceStopAt),
            usable: now.milliseconds < member.allowanceStopAt ? left : .zero)
    }

    /// The balance a member is shown: what they may spend anywhere plus what they have reserved
    /// for sites (their allowances are still theirs), as this edge knows it.
    func shownBalance(of member: MemberRow, now: Timestamp) throws -> Points {
        try balance(of: member).balance + member.escrowed + (allowance(of: member, now: now)?.changed ?? .zero)
    }

    /// Writes a transaction's change of an allowance (negative: spent or given back).
    func changeAllowance(_ id: String, sequence: Int64, points: Points) throws {
        try db.cachedStatement(sql: "INSERT INTO allowance_delta (allowance_id, sequence, points) VALUES (?, ?, ?)")
            .execute(arguments: [id, sequence, points.value])
    }

    /// The member's balance as this edge knows it: the gateway's snapshot plus this site's
    /// transactions after the sequence the snapshot includes.
    func balance(of member: MemberRow) throws -> (balance: Points, pending: Points) {
        var pending: Int64 = 0
        // The member's own deltas and those of the records merged into it, by the members' two
        // indexes and the deltas' key (no temporary table).
        try FastStatement(
            db,
            sql: """
                SELECT COALESCE(SUM(d.points), 0) FROM members m JOIN member_delta d ON d.member_id = m.member_id
                WHERE (m.member_id = ?1 OR m.merged_into = ?1) AND d.sequence > ?2
                  AND NOT EXISTS (SELECT 1 FROM rejected r WHERE r.sequence = d.sequence)
                """
        ).forEach {
            $0.add(member.id)
            $0.add(member.snapshotSiteSequence)
        } row: {
            pending = $0.int64(0)
        }
        // `member_delta` is the member's whole change (what the gateway posts as the transaction's
        // points); what the site's transactions took from or gave back to the allowance here is
        // not the balance's (spendable anywhere).
        let escrowChange = try member.allowanceID.map { try allowanceChanged($0, after: member.snapshotSiteSequence) }
        return (member.snapshotBalance + Points(pending) - (escrowChange ?? .zero), Points(pending))
    }

    /// This site's changes of an allowance after `sequence` (not rejected).
    func allowanceChanged(_ id: String, after sequence: Int64) throws -> Points {
        Points(
            try Int64.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT COALESCE(SUM(points), 0) FROM allowance_delta
                        WHERE allowance_id = ? AND sequence > ? AND sequence NOT IN (SELECT sequence FROM rejected)
                        """),
                arguments: [id, sequence]) ?? 0)
    }

    /// The member's points change from this site's transactions the gateway has not acknowledged,
    /// and the acknowledged sequence it counts from.
    func unacknowledged(_ member: MemberID) throws -> Unacknowledged {
        let acknowledged =
            try Int64.fetchOne(db.cachedStatement(sql: "SELECT acknowledged_sequence FROM sync_state WHERE id = 1"))
            ?? 0
        let points =
            try Int64.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT COALESCE(SUM(points), 0) FROM member_delta
                        WHERE member_id = ? AND sequence > ? AND sequence NOT IN (SELECT sequence FROM rejected)
                        """),
                arguments: [member.description, acknowledged]) ?? 0
        return Unacknowledged(points: Points(points), afterSequence: acknowledged)
    }

    /// What each budgeted promotion of `program` may still give here: this site's quota last
    /// pulled less its own bonuses after the quota's sequence (docs/protocol.md, "Promotion
    /// quotas"). None for a promotion without a quota (before the first pull, or one that does not
    /// reach the site).
    func promotionBudgetsLeft(_ program: Program) throws -> [PromotionID: Points] {
        var left: [PromotionID: Points] = [:]
        for promotion in program.earn.promotions where promotion.budget != nil { left[promotion.id] = .zero }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT b.promotion_id, b.points_left - COALESCE((
                        SELECT SUM(o.points) FROM outbox_promotions o
                        WHERE o.promotion_id = b.promotion_id AND o.sequence > b.as_of_sequence
                          AND o.sequence NOT IN (SELECT sequence FROM rejected)), 0) AS points_left
                    FROM promotion_budgets b
                    """))
        {
            if let id = PromotionID(row["promotion_id"] as String) {
                left[id] = max(.zero, Points(row["points_left"] as Int64))
            }
        }
        return left
    }

    /// Records the promotion points of the local earn at `sequence`.
    func recordPromotions(_ given: [PromotionID: Points], sequence: Int64) throws {
        for (promotion, points) in given where points > .zero {
            try FastStatement(
                db, sql: "INSERT INTO outbox_promotions (promotion_id, sequence, points) VALUES (?, ?, ?)"
            )
            .run {
                $0.add(promotion.rawValue)
                $0.add(sequence)
                $0.add(points.value)
            }
        }
    }

    /// Points the member redeemed offline (floor limit) at this site on a local day.
    func offlineRedeemed(member: MemberID, on day: CivilDate) throws -> Points {
        let sum =
            try Int64.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT COALESCE(-SUM(points + allowance_points), 0) FROM outbox WHERE authorization = 'floor_limit' AND member_id = ? AND local_day = ?"
                ),
                arguments: [member.description, day.description]) ?? 0
        return Points(sum)
    }

    /// Points redeemed offline at this site that the gateway has not acknowledged.
    func siteExposure() throws -> Points {
        let sum =
            try Int64.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT COALESCE(-SUM(points + allowance_points), 0) FROM outbox
                        WHERE authorization = 'floor_limit' AND sequence > (SELECT acknowledged_sequence FROM sync_state WHERE id = 1)
                        """)) ?? 0
        return Points(sum)
    }

    /// Milliseconds since the gateway was last reached (or since the node was created).
    func offlineMilliseconds(now: Timestamp) throws -> Int64 {
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT last_gateway_contact_ms, created_at_ms FROM sync_state WHERE id = 1"))
        let since: Int64 = row?["last_gateway_contact_ms"] ?? row?["created_at_ms"] ?? now.milliseconds
        return max(0, now.milliseconds - since)
    }

    /// Tier free parking minutes the member used at this site on a local day.
    func freeMinutesUsed(member: MemberID, on day: CivilDate) throws -> Int {
        Int(
            try Int64.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT COALESCE(SUM(free_minutes), 0) FROM outbox WHERE kind = 'parking' AND member_id = ? AND local_day = ?"
                ),
                arguments: [member.description, day.description]) ?? 0)
    }

    /// Appends a transaction to the outbox with the next sequence and the hash chain, and its
    /// member deltas. Returns the sequence. Throws RESOURCE_EXHAUSTED when too many transactions
    /// wait for the gateway.
    func append(_ entry: OutboxEntry) throws -> Int64 {
        var (last, acknowledged): (Int64, Int64) = (0, 0)
        var previousHash = [UInt8](repeating: 0, count: 32)
        try FastStatement(
            db,
            sql: """
                SELECT (SELECT acknowledged_sequence FROM sync_state WHERE id = 1), sequence, payload_hash
                FROM outbox ORDER BY sequence DESC LIMIT 1
                """
        ).forEach { _ in
        } row: { row in
            acknowledged = row.int64(0)
            last = row.int64(1)
            previousHash = row.bytesOrNil(2) ?? previousHash
        }
        let sequence = last + 1
        guard sequence - acknowledged <= Int64(limits.unacknowledgedTransactionsMax) else {
            throw ServiceError(
                .resourceExhausted,
                "\(limits.unacknowledgedTransactionsMax) transactions are waiting for the centre; new ones are refused until it is reachable",
                reason: Refusal.storageFull.rawValue)
        }
        let payload: [UInt8] = try entry.payload.serializedBytes()
        try FastStatement(
            db,
            sql: """
                INSERT INTO outbox (sequence, transaction_id, kind, merchant_id, member_id, request_id, points, amount_minor,
                    authorization, original_transaction_id, free_minutes, occurred_at_ms, local_day, previous_hash, payload_hash, payload,
                    allowance_points)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).run {
            $0.add(sequence)
            $0.add(entry.transactionID)
            $0.add(entry.kind.rawValue)
            $0.add(entry.merchant.rawValue)
            if let member = entry.member { $0.add(member) } else { $0.add("") }
            $0.add(entry.requestID.rawValue)
            $0.add(entry.points.value)
            $0.add(entry.amount.minorUnits)
            $0.add(entry.authorization)
            $0.add(entry.original)
            $0.add(entry.freeMinutes)
            $0.add(entry.occurredAt.milliseconds)
            $0.add(entry.localDay.description)
            $0.add(blob: previousHash)
            $0.add(blob: SHA256.hash(data: payload))
            $0.add(blob: payload)
            $0.add(entry.allowancePoints.value)
        }
        if let change = entry.allowanceChange, change.points != .zero {
            try changeAllowance(change.id, sequence: sequence, points: change.points)
        }
        var merged: [MemberID: Points] = [:]
        for (member, points) in entry.deltas { merged[member, default: .zero] += points }
        let delta = try FastStatement(
            db, sql: "INSERT INTO member_delta (member_id, sequence, points) VALUES (?, ?, ?)")
        for (member, points) in merged.sorted(by: { $0.key < $1.key }) {
            try delta.run {
                $0.add(member)
                $0.add(sequence)
                $0.add(points.value)
            }
        }
        return sequence
    }
}

extension FastStatement.Binder {
    /// Binds a request's key as the idempotency table's: merchant, operation, request id.
    mutating func add(_ key: RequestKey) {
        add(key.merchant.rawValue)
        add(key.operation.rawValue)
        add(key.requestID.rawValue)
    }
}
