import Core
import Foundation
import GRDB
import NodeSupport
import Wire

extension SQLitePosting {
    // MARK: Apply

    /// The outbox row a pushed transaction arrived in, kept with its ledger row.
    struct Outbox {
        var previousHash: Data
        var payload: Data
        var occurredAtMilliseconds: Int64
    }

    /// Writes a batch's effects: ledger rows (with the outbox rows of pushed ones, by sequence),
    /// postings, one write per touched account, member and lot, and the rest.
    static func apply(_ db: Database, _ effects: PostingEffects, outbox: [Int64: Outbox], now: Timestamp) throws {
        let insertTransaction = try FastStatement(
            db,
            sql: """
                INSERT INTO transactions (position, transaction_id, kind, site_id, site_sequence, merchant_id, member_id,
                    request_id, original_transaction_id, points, amount_minor, occurred_at_ms, posted_at_ms, program_version,
                    detail, receipt, stated_points, previous_hash, payload, outbox_occurred_at_ms, outcome, reason, posted_points,
                    member_previous)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let insertPosting = try FastStatement(
            db, sql: "INSERT INTO postings (position, line, account, points) VALUES (?, ?, ?, ?)")
        for entry in effects.entries {
            let row = entry.siteSequence.flatMap { outbox[$0] }
            try insertTransaction.run { values in
                values.add(entry.position)
                values.add(entry.transactionID)
                values.add(entry.kind?.rawValue)
                values.add(entry.site?.rawValue)
                values.add(entry.siteSequence)
                values.add(entry.merchant)
                values.add(entry.member)
                values.add(entry.requestID)
                values.add(entry.original)
                values.add(entry.points.value)
                values.add(entry.amount.minorUnits)
                values.add(entry.occurredAt.milliseconds)
                values.add(entry.postedAt.milliseconds)
                values.add(entry.programVersion)
                values.add(entry.detail)
                values.add(entry.receipt?.description)
                values.add(entry.statedPoints)
                values.add(row?.previousHash)
                values.add(row?.payload)
                values.add(row?.occurredAtMilliseconds)
                values.add(entry.result?.outcome.rawValue)
                values.add(entry.result?.reason)
                values.add(entry.result?.points.value)
                values.add(entry.memberPrevious)
            }
            for (line, posting) in entry.postings.enumerated() {
                try insertPosting.run { values in
                    values.add(entry.position)
                    values.add(line)
                    values.add(posting.account)
                    values.add(posting.points.value)
                }
            }
        }
        let balance = try db.cachedStatement(
            sql:
                "INSERT INTO balances (account, points) VALUES (?, ?) ON CONFLICT (account) DO UPDATE SET points = points + excluded.points"
        )
        for (account, points) in effects.accountDeltas.sorted(by: { $0.key.key < $1.key.key }) {
            try balance.execute(arguments: [account.key, points.value])
        }
        try applyMembers(db, effects)
        try applyLots(db, effects)
        let qualifying = try FastStatement(
            db,
            sql: """
                INSERT INTO qualifying_points (member_id, bucket_ms, points) VALUES (?, ?, ?)
                ON CONFLICT (member_id, bucket_ms) DO UPDATE SET points = points + excluded.points
                """)
        for (bucket, points) in effects.qualifying {
            try qualifying.run { values in
                values.add(bucket.member)
                values.add(bucket.start)
                values.add(points.value)
            }
        }
        let promotion = try db.cachedStatement(
            sql: """
                INSERT INTO promotion_usage (promotion_id, points_given) VALUES (?, ?)
                ON CONFLICT (promotion_id) DO UPDATE SET points_given = points_given + excluded.points_given
                """)
        for (id, points) in effects.promotionsGiven { try promotion.execute(arguments: [id.rawValue, points.value]) }
        try applyPromotionUse(db, effects.promotionUse)
        let consume = try db.cachedStatement(sql: "UPDATE holds SET status = 'consumed' WHERE hold_id = ?")
        for hold in effects.consumedHolds { try consume.execute(arguments: [hold]) }
        let release = try db.cachedStatement(sql: "UPDATE holds SET status = 'released' WHERE hold_id = ?")
        for hold in effects.releasedHolds { try release.execute(arguments: [hold]) }
        try applyVoucherUses(db, effects.voucherUses)
        try applyAllowances(db, effects.allowances)
        for conflict in effects.conflicts { try insert(db, conflict, at: now) }
        try db.cachedStatement(sql: "UPDATE counters SET value = ? WHERE name = 'position' AND value < ?")
            .execute(arguments: [effects.position, effects.position])
    }

    private static func applyMembers(_ db: Database, _ effects: PostingEffects) throws {
        let enrolled = Dictionary(uniqueKeysWithValues: effects.enrollments.map { ($0.member, $0) })
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO members (member_id, phone_hash, card_number, tier, tier_review_date, birth_month,
                    enrolled_at_ms, enrolled_site, last_earn, streak_last_day, streak_days, merged_into, changed_position,
                    balance_points, last_position, lots_head, pending_referrer)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let update = try FastStatement(
            db,
            sql: """
                UPDATE members SET tier = ?, tier_review_date = ?, last_earn = ?, streak_last_day = ?, streak_days = ?,
                    changed_position = ?, balance_points = ?, last_position = ?, lots_head = ? WHERE member_id = ?
                """)
        for record in effects.members.values {
            if let enrollment = enrolled[record.id] {
                try insert.execute(arguments: [
                    record.id.description, record.phoneHash.map { Data($0) },
                    enrollment.cardNumber, record.tier.rawValue, record.reviewDate.description, record.birthMonth,
                    enrollment.enrolledAt.milliseconds, enrollment.site.rawValue,
                    LastEarnEncoding.encode(record.lastEarn), record.streak?.lastDay.description,
                    record.streak?.days ?? 0, record.mergedInto?.description, record.changedPosition,
                    record.balance.value, record.lastPosition, record.lotsHead, record.pendingReferrer?.description,
                ])
            } else {
                try update.run { values in
                    values.add(record.tier.rawValue)
                    values.add(record.reviewDate.description)
                    values.add(lastEarn: record.lastEarn)
                    values.add(record.streak?.lastDay.description)
                    values.add(record.streak?.days ?? 0)
                    values.add(record.changedPosition)
                    values.add(record.balance.value)
                    values.add(record.lastPosition)
                    values.add(record.lotsHead)
                    values.add(record.id)
                }
            }
        }
        if !effects.referralsSettled.isEmpty {
            let settled = try db.cachedStatement(sql: "UPDATE members SET pending_referrer = NULL WHERE member_id = ?")
            for member in effects.referralsSettled { try settled.execute(arguments: [member.description]) }
        }
        let merge = try db.cachedStatement(
            sql: "INSERT INTO merges (from_member, into_member, changed_position) VALUES (?, ?, ?)")
        for (from, into, position) in effects.merges {
            try merge.execute(arguments: [from.description, into.description, position])
        }
        let spell = try db.cachedStatement(
            sql:
                "INSERT INTO member_tiers (member_id, position, tier) VALUES (?, ?, ?) ON CONFLICT (member_id, position) DO UPDATE SET tier = excluded.tier"
        )
        for (member, position, tier) in effects.tierSpells {
            try spell.execute(arguments: [member.description, position, tier.rawValue])
        }
    }

    private static func applyLots(_ db: Database, _ effects: PostingEffects) throws {
        let insert = try FastStatement(
            db,
            sql: """
                INSERT INTO lots (lot_number, lot_id, member_id, earned_at_ms, expires_at_ms, original_points, remaining_points,
                    next_lot)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
        for new in effects.newLots.values.sorted(by: { $0.lot.number < $1.lot.number }) {
            try insert.run { values in
                values.add(new.lot.number)
                values.add(new.lot.lotID)
                values.add(new.lot.member)
                values.add(new.earnedAt.milliseconds)
                values.add(new.lot.expiresAt.milliseconds)
                values.add(new.original.value)
                values.add(new.lot.remaining.value)
                values.add(new.lot.next)
            }
        }
        let change = try db.cachedStatement(
            sql: "UPDATE lots SET remaining_points = remaining_points + ? WHERE lot_number = ?")
        for (number, delta) in effects.lotRemaining where delta != .zero {
            try change.execute(arguments: [delta.value, number])
        }
        let relink = try db.cachedStatement(sql: "UPDATE lots SET next_lot = ? WHERE lot_number = ?")
        for (number, next) in effects.lotNext { try relink.execute(arguments: [next, number]) }
        let draw = try db.cachedStatement(
            sql: """
                INSERT INTO lot_draws (position, lot_number, points) VALUES (?, ?, ?)
                ON CONFLICT (position, lot_number) DO UPDATE SET points = points + excluded.points
                """)
        for (position, lot, points) in effects.lotDraws {
            try draw.execute(arguments: [position, lot, points.value])
        }
    }

    static func insert(_ db: Database, _ conflict: ConflictEntry, at now: Timestamp) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO conflicts (kind, site_id, transaction_id, member_id, resolution, points, detected_at_ms, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [
            conflict.kind.rawValue, conflict.site?.rawValue, conflict.transactionID, conflict.member?.description,
            conflict.resolution, conflict.points.value, now.milliseconds, conflict.detail,
        ])
    }

    /// Adds flags to a site (a set of names an operator clears).
    static func flag(_ db: Database, site: SiteID, _ flags: Set<SiteFlag>) throws {
        guard !flags.isEmpty else { return }
        let current =
            try String.fetchOne(
                db.cachedStatement(sql: "SELECT flags FROM sites WHERE site_id = ?"), arguments: [site.rawValue]) ?? ""
        var all = Set(current.split(separator: ",").map(String.init))
        let before = all.count
        all.formUnion(flags.map(\.rawValue))
        guard all.count != before else { return }
        try db.cachedStatement(sql: "UPDATE sites SET flags = ? WHERE site_id = ?").execute(arguments: [
            all.sorted().joined(separator: ","), site.rawValue,
        ])
    }
}

extension FastStatement.Binder {
    /// Binds a member's last earn per format as `LastEarnEncoding` writes it, with no string made.
    mutating func add(lastEarn: [Format: Timestamp]) {
        let pairs = LastEarnEncoding.sorted(lastEarn)
        addText(capacity: LastEarnEncoding.capacity(pairs)) { LastEarnEncoding.write(pairs, into: $0) }
    }
}
