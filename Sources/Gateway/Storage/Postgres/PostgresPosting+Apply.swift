import Core
import Foundation
import Logging
import PostgresNIO
import Wire

extension PostgresPosting {
    /// Writes a batch's effects, as `SQLitePosting.apply` does, with one statement per table (and
    /// per chunk of rows) rather than one per row: ledger rows (with the outbox rows of pushed ones),
    /// postings, account balances in key order, members, lots and the rest.
    static func apply(
        _ connection: PostgresConnection, _ effects: PostingEffects, outbox: [Int64: SQLitePosting.Outbox],
        now: Timestamp, logger: Logger
    ) async throws {
        var transactions = PostgresRowsWriter(
            """
            INSERT INTO transactions (position, transaction_id, kind, site_id, site_sequence, merchant_id, member_id,
                request_id, original_transaction_id, points, amount_minor, occurred_at_ms, posted_at_ms, program_version,
                detail, receipt, stated_points, previous_hash, payload, outbox_occurred_at_ms, outcome, reason, posted_points,
                member_previous)
            """,
            types: [
                .bigint, .text, .text, .text, .bigint, .text, .text, .text, .text, .bigint, .bigint,
                .bigint,
                .bigint, .bigint, .text, .text, .bigint, .bytea, .bytea, .bigint, .text, .text, .bigint,
                .bigint,
            ])
        var postings = PostgresRowsWriter(
            "INSERT INTO postings (position, line, account, points)",
            types: [.bigint, .bigint, .text, .bigint])
        for entry in effects.entries {
            let row = entry.siteSequence.flatMap { outbox[$0] }
            transactions.add { values in
                values.append(entry.position)
                values.append(entry.transactionID)
                values.append(entry.kind?.rawValue)
                values.append(entry.site?.rawValue)
                values.append(entry.siteSequence)
                values.append(entry.merchant)
                values.append(entry.member?.description)
                values.append(entry.requestID)
                values.append(entry.original)
                values.append(entry.points.value)
                values.append(entry.amount.minorUnits)
                values.append(entry.occurredAt.milliseconds)
                values.append(entry.postedAt.milliseconds)
                values.append(entry.programVersion)
                values.append(entry.detail)
                values.append(entry.receipt?.description)
                values.append(entry.statedPoints)
                values.append(row?.previousHash)
                values.append(row?.payload)
                values.append(row?.occurredAtMilliseconds)
                values.append(entry.result?.outcome.rawValue)
                values.append(entry.result?.reason)
                values.append(entry.result?.points.value)
                values.append(entry.memberPrevious)
            }
            for (line, posting) in entry.postings.enumerated() {
                postings.add { values in
                    values.append(entry.position)
                    values.append(Int64(line))
                    values.append(posting.account.key)
                    values.append(posting.points.value)
                }
            }
        }
        try await transactions.write(connection, logger)
        try await postings.write(connection, logger)
        // Balances in key order: every transaction takes these rows' locks in one order.
        var balances = PostgresRowsWriter(
            "INSERT INTO balances (account, points)", types: [.text, .bigint],
            tail: "ON CONFLICT (account) DO UPDATE SET points = balances.points + excluded.points")
        for (account, points) in effects.accountDeltas.map({ ($0.key.key, $0.value) }).sorted(by: { $0.0 < $1.0 }) {
            balances.add { values in
                values.append(account)
                values.append(points.value)
            }
        }
        try await balances.write(connection, logger)
        try await applyMembers(connection, effects, logger)
        try await applyLots(connection, effects, logger)
        var qualifying = PostgresRowsWriter(
            "INSERT INTO qualifying_points (member_id, bucket_ms, points)", types: [.text, .bigint, .bigint],
            tail:
                "ON CONFLICT (member_id, bucket_ms) DO UPDATE SET points = qualifying_points.points + excluded.points")
        // Each id's text made once (a sort by `description` would encode it at every comparison).
        for (member, bucket, points) in effects.qualifying.map({ ($0.key.member.description, $0.key, $0.value) })
            .sorted(by: { ($0.0, $0.1.start) < ($1.0, $1.1.start) })
        {
            qualifying.add { values in
                values.append(member)
                values.append(bucket.start)
                values.append(points.value)
            }
        }
        try await qualifying.write(connection, logger)
        var promotions = PostgresRowsWriter(
            "INSERT INTO promotion_usage (promotion_id, points_given)", types: [.text, .bigint],
            tail:
                "ON CONFLICT (promotion_id) DO UPDATE SET points_given = promotion_usage.points_given + excluded.points_given"
        )
        for (id, points) in effects.promotionsGiven.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            promotions.add { values in
                values.append(id.rawValue)
                values.append(points.value)
            }
        }
        try await promotions.write(connection, logger)
        try await applyPromotionUse(connection, effects.promotionUse, logger)
        if !effects.consumedHolds.isEmpty {
            try await connection.run(
                "UPDATE holds SET status = 'consumed' WHERE hold_id = ANY(\(effects.consumedHolds))", logger)
        }
        if !effects.releasedHolds.isEmpty {
            try await connection.run(
                "UPDATE holds SET status = 'released' WHERE hold_id = ANY(\(effects.releasedHolds))", logger)
        }
        try await applyVoucherUses(connection, effects.voucherUses, logger)
        try await applyAllowances(connection, effects.allowances, logger)
        for conflict in effects.conflicts { try await insert(connection, conflict, at: now, logger) }
    }

    private static func applyMembers(_ connection: PostgresConnection, _ effects: PostingEffects, _ logger: Logger)
        async throws
    {
        let enrolled = Dictionary(uniqueKeysWithValues: effects.enrollments.map { ($0.member, $0) })
        var inserts = PostgresRowsWriter(
            """
            INSERT INTO members (member_id, phone_hash, card_number, tier, tier_review_date, birth_month,
                enrolled_at_ms, enrolled_site, last_earn, streak_last_day, streak_days, merged_into, changed_position,
                balance_points, last_position, lots_head, pending_referrer)
            """,
            types: [
                .text, .bytea, .text, .text, .text, .bigint, .bigint, .text, .text, .text, .bigint, .text,
                .bigint, .bigint, .bigint, .bigint, .text,
            ])
        var updates = PostgresRowsWriter(
            """
            UPDATE members m SET tier = v.tier, tier_review_date = v.review, last_earn = v.last_earn,
                streak_last_day = v.streak_last_day, streak_days = v.streak_days, changed_position = v.changed_position,
                balance_points = v.balance_points, last_position = v.last_position, lots_head = v.lots_head
            FROM (
            """,
            types: [.text, .text, .text, .text, .text, .bigint, .bigint, .bigint, .bigint, .bigint],
            tail: """
                ) AS v (member_id, tier, review, last_earn, streak_last_day, streak_days, changed_position,
                    balance_points, last_position, lots_head)
                WHERE m.member_id = v.member_id
                """)
        for (_, record) in effects.members.values.map({ ($0.id.description, $0) }).sorted(by: { $0.0 < $1.0 }) {
            if let enrollment = enrolled[record.id] {
                inserts.add { values in
                    values.append(record.id.description)
                    values.append(record.phoneHash.map { Data($0) })
                    values.append(enrollment.cardNumber)
                    values.append(record.tier.rawValue)
                    values.append(record.reviewDate.description)
                    values.append(record.birthMonth.map(Int64.init))
                    values.append(enrollment.enrolledAt.milliseconds)
                    values.append(enrollment.site.rawValue)
                    values.append(LastEarnEncoding.encode(record.lastEarn))
                    values.append(record.streak?.lastDay.description)
                    values.append(Int64(record.streak?.days ?? 0))
                    values.append(record.mergedInto?.description)
                    values.append(record.changedPosition)
                    values.append(record.balance.value)
                    values.append(record.lastPosition)
                    values.append(record.lotsHead)
                    values.append(record.pendingReferrer?.description)
                }
            } else {
                updates.add { values in
                    values.append(record.id.description)
                    values.append(record.tier.rawValue)
                    values.append(record.reviewDate.description)
                    values.append(LastEarnEncoding.encode(record.lastEarn))
                    values.append(record.streak?.lastDay.description)
                    values.append(Int64(record.streak?.days ?? 0))
                    values.append(record.changedPosition)
                    values.append(record.balance.value)
                    values.append(record.lastPosition)
                    values.append(record.lotsHead)
                }
            }
        }
        try await inserts.write(connection, logger)
        try await updates.write(connection, logger)
        if !effects.referralsSettled.isEmpty {
            try await connection.run(
                """
                UPDATE members SET pending_referrer = NULL
                WHERE member_id = ANY(\(effects.referralsSettled.map(\.description)))
                """, logger)
        }
        var merges = PostgresRowsWriter(
            "INSERT INTO merges (from_member, into_member, changed_position)", types: [.text, .text, .bigint])
        for (from, into, position) in effects.merges {
            merges.add { values in
                values.append(from.description)
                values.append(into.description)
                values.append(position)
            }
        }
        try await merges.write(connection, logger)
        // The last spell a batch states for a member at a position stands (as SQLite's upsert).
        var spells: [String: (member: String, position: Int64, tier: String)] = [:]
        var order: [String] = []
        for (member, position, tier) in effects.tierSpells {
            let key = "\(member)@\(position)"
            if spells[key] == nil { order.append(key) }
            spells[key] = (member.description, position, tier.rawValue)
        }
        var tiers = PostgresRowsWriter(
            "INSERT INTO member_tiers (member_id, position, tier)", types: [.text, .bigint, .text],
            tail: "ON CONFLICT (member_id, position) DO UPDATE SET tier = excluded.tier")
        for key in order {
            guard let spell = spells[key] else { continue }
            tiers.add { values in
                values.append(spell.member)
                values.append(spell.position)
                values.append(spell.tier)
            }
        }
        try await tiers.write(connection, logger)
    }

    private static func applyLots(_ connection: PostgresConnection, _ effects: PostingEffects, _ logger: Logger)
        async throws
    {
        var inserts = PostgresRowsWriter(
            """
            INSERT INTO lots (lot_number, lot_id, member_id, earned_at_ms, expires_at_ms, original_points,
                remaining_points, next_lot)
            """,
            types: [.bigint, .text, .text, .bigint, .bigint, .bigint, .bigint, .bigint])
        for new in effects.newLots.values.sorted(by: { $0.lot.number < $1.lot.number }) {
            inserts.add { values in
                values.append(new.lot.number)
                values.append(new.lot.lotID)
                values.append(new.lot.member.description)
                values.append(new.earnedAt.milliseconds)
                values.append(new.lot.expiresAt.milliseconds)
                values.append(new.original.value)
                values.append(new.lot.remaining.value)
                values.append(new.lot.next)
            }
        }
        try await inserts.write(connection, logger)
        var remaining = PostgresRowsWriter(
            "UPDATE lots l SET remaining_points = l.remaining_points + v.delta FROM (",
            types: [.bigint, .bigint], tail: ") AS v (lot_number, delta) WHERE l.lot_number = v.lot_number")
        for (number, delta) in effects.lotRemaining.sorted(by: { $0.key < $1.key }) where delta != .zero {
            remaining.add { values in
                values.append(number)
                values.append(delta.value)
            }
        }
        try await remaining.write(connection, logger)
        var relinks = PostgresRowsWriter(
            "UPDATE lots l SET next_lot = v.next_lot FROM (", types: [.bigint, .bigint],
            tail: ") AS v (lot_number, next_lot) WHERE l.lot_number = v.lot_number")
        for (number, next) in effects.lotNext.sorted(by: { $0.key < $1.key }) {
            relinks.add { values in
                values.append(number)
                values.append(next)
            }
        }
        try await relinks.write(connection, logger)
        // Draws of one lot at one position add up (as SQLite's upsert).
        var drawn: [Int64: [Int64: Points]] = [:]
        for (position, lot, points) in effects.lotDraws { drawn[position, default: [:]][lot, default: .zero] += points }
        var draws = PostgresRowsWriter(
            "INSERT INTO lot_draws (position, lot_number, points)", types: [.bigint, .bigint, .bigint])
        for (position, lots) in drawn.sorted(by: { $0.key < $1.key }) {
            for (lot, points) in lots.sorted(by: { $0.key < $1.key }) {
                draws.add { values in
                    values.append(position)
                    values.append(lot)
                    values.append(points.value)
                }
            }
        }
        try await draws.write(connection, logger)
    }

    static func insert(_ connection: PostgresConnection, _ conflict: ConflictEntry, at now: Timestamp, _ logger: Logger)
        async throws
    {
        try await connection.run(
            """
            INSERT INTO conflicts (kind, site_id, transaction_id, member_id, resolution, points, detected_at_ms, detail)
            VALUES (\(conflict.kind.rawValue), \(conflict.site?.rawValue), \(conflict.transactionID),
                \(conflict.member?.description), \(conflict.resolution), \(conflict.points.value), \(now.milliseconds),
                \(conflict.detail))
            """, logger)
    }

    /// Adds flags to a site (a set of names an operator clears).
    static func flag(_ connection: PostgresConnection, site: SiteID, _ flags: Set<SiteFlag>, _ logger: Logger)
        async throws
    {
        guard !flags.isEmpty else { return }
        let current =
            try await connection.value(
                "SELECT flags FROM sites WHERE site_id = \(site.rawValue)", as: String.self, logger) ?? ""
        var all = Set(current.split(separator: ",").map(String.init))
        let before = all.count
        all.formUnion(flags.map(\.rawValue))
        guard all.count != before else { return }
        try await connection.run(
            "UPDATE sites SET flags = \(all.sorted().joined(separator: ",")) WHERE site_id = \(site.rawValue)", logger)
    }
}
