import Core
import Foundation
import GRDB

/// Low-level writes of the gateway ledger inside one database transaction: positions, postings
/// with their balance cache, lots, members, conflicts, site flags.
struct LedgerWriter {
    let db: Database

    /// The width of a qualifying-points bucket (table `qualifying_points`).
    static let bucketMilliseconds: Int64 = 900_000

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
    }

    /// Writes a transaction and its postings; returns its position. The postings sum to zero
    /// (`Postings` guarantees it) and no member account may go below zero (checked here).
    func post(_ entry: Entry) throws -> Int64 {
        let position = try nextPosition()
        try db.cachedStatement(
            sql: """
                INSERT INTO transactions (position, transaction_id, kind, site_id, site_sequence, merchant_id, member_id, request_id,
                    original_transaction_id, points, amount_minor, occurred_at_ms, posted_at_ms, program_version, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            position, entry.transactionID, entry.kind.rawValue, entry.site?.rawValue, entry.siteSequence,
            entry.merchant?.rawValue,
            entry.member?.description, entry.requestID, entry.original, entry.points.value, entry.amount.minorUnits,
            entry.occurredAt.milliseconds, entry.postedAt.milliseconds, entry.programVersion, entry.detail,
        ])
        if let member = entry.member,
            entry.kind == .earn || (entry.kind == .reverse && entry.points < .zero && entry.detail == "refund")
        {
            try db.cachedStatement(
                sql: """
                    INSERT INTO qualifying_points (member_id, bucket_ms, points) VALUES (?, ?, ?)
                    ON CONFLICT (member_id, bucket_ms) DO UPDATE SET points = points + excluded.points
                    """
            ).execute(arguments: [
                member.description, entry.postedAt.milliseconds / Self.bucketMilliseconds * Self.bucketMilliseconds,
                entry.points.value,
            ])
        }
        var members: Set<MemberID> = entry.member.map { [$0] } ?? []
        for line in entry.postings.lines {
            try db.cachedStatement(sql: "INSERT INTO postings (position, account, points) VALUES (?, ?, ?)")
                .execute(arguments: [position, line.account.key, line.points.value])
            // The balance after the posting comes back from the same statement.
            let balance =
                try Int64.fetchOne(
                    db.cachedStatement(
                        sql:
                            "INSERT INTO balances (account, points) VALUES (?, ?) ON CONFLICT (account) DO UPDATE SET points = points + excluded.points RETURNING points"
                    ),
                    arguments: [line.account.key, line.points.value]) ?? 0
            if case .member(let member) = line.account {
                precondition(balance >= 0, "member \(member) would go to \(balance)")
                members.insert(member)
            }
        }
        // Every member of the transaction is republished, even when none of their points move (an
        // offline redemption of a member already at zero books everything to the site's risk): the
        // snapshot's `includes_site_sequence` tells edges this transaction is counted. An earn
        // rewrites its member's row (earn state, tier) with this position anyway.
        if entry.kind != .earn {
            for member in members { try touch(member, position: position) }
        }
        return position
    }

    /// An account's balance.
    func balance(_ account: Account) throws -> Points {
        Points(
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

    /// Adds the bonus points an earn gave to the count of each budgeted promotion of `program`.
    func recordPromotions(_ given: [PromotionID: Points], of program: Program) throws {
        for promotion in program.earn.promotions where promotion.budget != nil {
            guard let points = given[promotion.id], points > .zero else { continue }
            try db.cachedStatement(
                sql: """
                    INSERT INTO promotion_usage (promotion_id, points_given) VALUES (?, ?)
                    ON CONFLICT (promotion_id) DO UPDATE SET points_given = points_given + excluded.points_given
                    """
            ).execute(arguments: [promotion.id.rawValue, points.value])
        }
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
                "INSERT INTO lots (lot_id, member_id, earned_at_ms, expires_at_ms, original_points, remaining_points) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [
            id, member.description, earnedAt.milliseconds, expiresAt.milliseconds, points.value, points.value,
        ])
    }

    /// Takes `points` from the member's lots, soonest expiry first, recording the draws at `position`.
    ///
    /// Lot ids are strings (an earn's lot is its transaction id, a referral bonus's is not), so the
    /// calculator sees each lot by its rank in (expiry, lot id) order and the draws are mapped back.
    func consumeLots(_ member: MemberID, points: Points, position: Int64) throws {
        guard points > .zero else { return }
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT lot_id, remaining_points, expires_at_ms FROM lots WHERE member_id = ? AND remaining_points > 0 ORDER BY expires_at_ms, lot_id"
            ),
            arguments: [member.description]
        )
        let ids: [String] = rows.map { $0["lot_id"] }
        let lots = rows.enumerated().map { rank, row in
            Lot(
                id: TransactionID(value: UInt128(rank)), remaining: Points(row["remaining_points"]),
                expiresAt: Timestamp(milliseconds: row["expires_at_ms"]))
        }
        let draws: [LotDraw]
        do {
            draws = try LotConsumption.consume(lots, points: points)
        } catch {
            preconditionFailure("lots of \(member) hold \(error.available), less than its balance needs (\(points))")
        }
        for draw in draws {
            let id = ids[Int(draw.lot.value)]
            try db.cachedStatement(sql: "UPDATE lots SET remaining_points = remaining_points - ? WHERE lot_id = ?")
                .execute(arguments: [draw.points.value, id])
            try db.cachedStatement(sql: "INSERT INTO lot_draws (position, lot_id, points) VALUES (?, ?, ?)")
                .execute(arguments: [position, id, draw.points.value])
        }
    }

    /// Gives back the lot draws of the transaction at `original` (a cancelled redemption).
    func restoreLots(drawnAt original: Int64, position: Int64) throws {
        let draws = try Row.fetchAll(
            db.cachedStatement(sql: "SELECT lot_id, points FROM lot_draws WHERE position = ?"), arguments: [original])
        for draw in draws {
            let lot: String = draw["lot_id"]
            let points: Int64 = draw["points"]
            try db.cachedStatement(sql: "UPDATE lots SET remaining_points = remaining_points + ? WHERE lot_id = ?")
                .execute(arguments: [points, lot])
            try db.cachedStatement(sql: "INSERT INTO lot_draws (position, lot_id, points) VALUES (?, ?, ?)").execute(
                arguments: [position, lot, -points])
        }
    }

    // MARK: Conflicts and flags

    func conflict(
        _ kind: ConflictKind, site: SiteID?, transaction: String?, member: MemberID?, resolution: String,
        points: Points = .zero,
        at now: Timestamp, detail: String = ""
    ) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO conflicts (kind, site_id, transaction_id, member_id, resolution, points, detected_at_ms, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [
            kind.rawValue, site?.rawValue, transaction, member?.description, resolution, points.value, now.milliseconds,
            detail,
        ])
    }

    /// Adds a flag to a site (a set of names an operator clears).
    func flag(_ site: SiteID, _ flag: SiteFlag) throws {
        let current =
            try String.fetchOne(
                db.cachedStatement(sql: "SELECT flags FROM sites WHERE site_id = ?"), arguments: [site.rawValue]) ?? ""
        var flags = Set(current.split(separator: ",").map(String.init))
        guard flags.insert(flag.rawValue).inserted else { return }
        try db.cachedStatement(sql: "UPDATE sites SET flags = ? WHERE site_id = ?").execute(arguments: [
            flags.sorted().joined(separator: ","), site.rawValue,
        ])
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
