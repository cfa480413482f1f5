import Core
import Foundation
import GRDB

/// Writes of the gateway's own transactions (adjustments, expiry) and the reads around them, inside
/// one database transaction. Pushed transactions are posted by `PostingEngine` and `SQLitePosting`.
struct LedgerWriter {
    let db: Database

    /// The next global position (transactions and pull changes share one sequence).
    func nextPosition() throws -> Int64 {
        guard
            let value = try Int64.fetchOne(
                db.cachedStatement(sql: "UPDATE counters SET value = value + 1 WHERE name = 'position' RETURNING value")
            )
        else {
            preconditionFailure("the position counter is missing")
        }
        return value
    }

    struct Entry {
        var transactionID: String
        var kind: TransactionKind
        var site: SiteID?
        var siteSequence: Int64?
        var merchant: MerchantID?
        var member: MemberID?
        var requestID: String?
        var original: String?
        /// The member's points change (for history and statements).
        var points: Points
        var amount: Money
        var occurredAt: Timestamp
        var postedAt: Timestamp
        var programVersion: Int64
        var detail: String = ""
        var postings: Postings
        /// The receipt it claims (an operator's request id).
        var receipt: ReceiptKey?
    }

    /// Writes one of the gateway's own transactions (an adjustment, an expiry) and its postings;
    /// returns its position. The postings sum to zero (`Postings` guarantees it) and no member
    /// account may go below zero (checked here). Every member of it is republished.
    func post(_ entry: Entry) throws -> Int64 {
        let position = try nextPosition()
        try db.cachedStatement(
            sql: """
                INSERT INTO transactions (position, transaction_id, kind, site_id, site_sequence, merchant_id, member_id, request_id,
                    original_transaction_id, points, amount_minor, occurred_at_ms, posted_at_ms, program_version, detail, receipt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            position, entry.transactionID, entry.kind.rawValue, entry.site?.rawValue, entry.siteSequence,
            entry.merchant?.rawValue,
            entry.member?.description, entry.requestID, entry.original, entry.points.value, entry.amount.minorUnits,
            entry.occurredAt.milliseconds, entry.postedAt.milliseconds, entry.programVersion, entry.detail,
            entry.receipt?.description,
        ])
        var members: Set<MemberID> = entry.member.map { [$0] } ?? []
        for (line, posting) in entry.postings.lines.enumerated() {
            try db.cachedStatement(sql: "INSERT INTO postings (position, line, account, points) VALUES (?, ?, ?, ?)")
                .execute(arguments: [position, line, posting.account.key, posting.points.value])
            if case .member(let member) = posting.account {
                let balance =
                    try Int64.fetchOne(
                        db.cachedStatement(
                            sql:
                                "UPDATE members SET balance_points = balance_points + ? WHERE member_id = ? RETURNING balance_points"
                        ),
                        arguments: [posting.points.value, member.description]) ?? -1
                precondition(balance >= 0, "member \(member) would go to \(balance)")
                members.insert(member)
            } else {
                try db.cachedStatement(
                    sql:
                        "INSERT INTO balances (account, points) VALUES (?, ?) ON CONFLICT (account) DO UPDATE SET points = points + excluded.points"
                ).execute(arguments: [posting.account.key, posting.points.value])
            }
        }
        for member in members { try touch(member, position: position) }
        return position
    }

    /// An account's balance (a member's is on its row).
    func balance(_ account: Account) throws -> Points {
        if case .member(let member) = account {
            return Points(
                try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT balance_points FROM members WHERE member_id = ?"),
                    arguments: [member.description]) ?? 0)
        }
        return Points(
            try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT points FROM balances WHERE account = ?"), arguments: [account.key]) ?? 0
        )
    }

    /// Points of a member's balance held by active, unexpired holds (other than `excluding`): the
    /// part of each hold that was taken from the balance when it was placed.
    func held(_ member: MemberID, now: Timestamp, excluding hold: String? = nil) throws -> Points {
        Points(
            try Int64.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT COALESCE(SUM(COALESCE(balance_points, points)), 0) FROM holds WHERE member_id = ? AND status = 'active' AND expires_at_ms > ? AND hold_id != ?"
                ),
                arguments: [member.description, now.milliseconds, hold ?? ""]) ?? 0)
    }

    /// What a member may spend: balance less other holds.
    func available(_ member: MemberID, now: Timestamp, excluding hold: String? = nil) throws -> Points {
        try balance(.member(member)) - held(member, now: now, excluding: hold)
    }

    /// Marks a member as changed at `position`, so edges pull its snapshot.
    func touch(_ member: MemberID, position: Int64) throws {
        try db.cachedStatement(sql: "UPDATE members SET changed_position = ? WHERE member_id = ?")
            .execute(arguments: [position, member.description])
    }

    /// Bonus points each budgeted promotion has given so far.
    func promotionsGiven() throws -> [PromotionID: Points] {
        var given: [PromotionID: Points] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT promotion_id, points_given FROM promotion_usage")) {
            if let id = PromotionID(row["promotion_id"] as String) { given[id] = Points(row["points_given"]) }
        }
        return given
    }

    /// Records that `member` holds `tier` from `position` on.
    func tierSpell(_ member: MemberID, tier: TierID, position: Int64) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO member_tiers (member_id, position, tier) VALUES (?, ?, ?) ON CONFLICT (member_id, position) DO UPDATE SET tier = excluded.tier"
        ).execute(arguments: [member.description, position, tier.rawValue])
    }

    // MARK: Lots

    func createLot(_ id: String, member: MemberID, earnedAt: Timestamp, expiresAt: Timestamp, points: Points) throws {
        guard points > .zero else { return }
        try db.cachedStatement(
            sql:
                "INSERT INTO lots (member_id, expires_at_ms, lot_id, earned_at_ms, original_points, remaining_points) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [
            member.description, expiresAt.milliseconds, id, earnedAt.milliseconds, points.value, points.value,
        ])
    }

    /// A member's lots with points left, in consumption order (soonest expiry, then lot id).
    func lots(of member: MemberID) throws -> [LotRecord] {
        try Row.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT expires_at_ms, lot_id, remaining_points FROM lots WHERE member_id = ? AND remaining_points > 0 ORDER BY expires_at_ms, lot_id"
            ),
            arguments: [member.description]
        ).map {
            LotRecord(
                key: LotKey(
                    member: member, expiresAt: Timestamp(milliseconds: $0["expires_at_ms"]), lotID: $0["lot_id"]),
                remaining: Points($0["remaining_points"]))
        }
    }

    /// Takes `points` from lots (in the order given), recording the draws at `position`.
    func draw(_ draws: [(key: LotKey, points: Points)], position: Int64) throws {
        for (key, points) in draws {
            try db.cachedStatement(
                sql:
                    "UPDATE lots SET remaining_points = remaining_points - ? WHERE member_id = ? AND expires_at_ms = ? AND lot_id = ?"
            ).execute(arguments: [points.value, key.member.description, key.expiresAt.milliseconds, key.lotID])
            try db.cachedStatement(
                sql: "INSERT INTO lot_draws (position, lot_id, member_id, expires_at_ms, points) VALUES (?, ?, ?, ?, ?)"
            ).execute(arguments: [
                position, key.lotID, key.member.description, key.expiresAt.milliseconds, points.value,
            ])
        }
    }

    /// Takes `points` from the member's lots, soonest expiry first, recording the draws at `position`.
    func consumeLots(_ member: MemberID, points: Points, position: Int64) throws {
        guard points > .zero else { return }
        let lots = try lots(of: member)
        let ranked = lots.enumerated().map { rank, lot in
            Lot(id: TransactionID(value: UInt128(rank)), remaining: lot.remaining, expiresAt: lot.key.expiresAt)
        }
        let draws: [LotDraw]
        do {
            draws = try LotConsumption.consume(ranked, points: points)
        } catch {
            preconditionFailure("lots of \(member) hold \(error.available), less than its balance needs (\(points))")
        }
        try draw(draws.map { (lots[Int($0.lot.value)].key, $0.points) }, position: position)
    }

    /// Points earned (less refunds) in the rolling qualifying window ending now.
    func qualifyingPoints(_ member: MemberID, program: Program, now: Timestamp) throws -> Points {
        let sum =
            try Int64.fetchOne(
                db.cachedStatement(
                    sql: "SELECT COALESCE(SUM(points), 0) FROM qualifying_points WHERE member_id = ? AND bucket_ms >= ?"
                ),
                arguments: [member.description, PostingEngine.windowStart(program, now: now)]) ?? 0
        return Points(max(0, sum))
    }

    /// The member a member id stands for now (following merges).
    func resolve(_ member: MemberID) throws -> MemberID? {
        var current = member
        for _ in 0..<8 {
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT merged_into FROM members WHERE member_id = ?"),
                    arguments: [current.description])
            else { return nil }
            let merged: String? = row["merged_into"]
            guard let merged, let next = MemberID(merged) else { return current }
            current = next
        }
        return current
    }
}
