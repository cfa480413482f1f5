import Core
import Foundation
import GRDB
import NodeSupport
import Wire

/// Loads a batch's `PostingView` and applies its `PostingEffects` on the SQLite ledger. No rule of
/// DESIGN §6 is here: it reads rows by key sets (SQLite's `json_each` over a JSON array of keys, one
/// statement per table) and writes what the engine decided, one write per touched row.
enum SQLitePosting {
    // MARK: Load

    static func load(_ db: Database, keys: PostingKeys, catalogue: ProgramCatalogue) throws -> PostingView {
        var view = PostingView()
        view.position =
            try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT value FROM counters WHERE name = 'position'")) ?? 0
        view.lotNumber =
            try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT lot_number FROM lots ORDER BY lot_number DESC LIMIT 1")) ?? 0
        // Originals first: a cancellation gives points back to the lots of the original's member.
        view.originalIDs = keys.originals
        if !keys.originals.isEmpty { try loadOriginals(db, ids: keys.originals, into: &view) }
        let owners = Set(view.drawnLots.values.map(\.member))
        // Members named, then the members they were merged into, and phone owners; with each its
        // qualifying points when the batch's programs share one window (the usual case).
        let onlyStart = keys.windowStarts.count == 1 ? keys.windowStarts.first : nil
        var wanted = keys.members.union(owners)
        for _ in 0..<8 where !wanted.isEmpty {
            for record in try members(db, ids: wanted, qualifyingFrom: onlyStart, into: &view) {
                view.members[record.id] = record
            }
            wanted = Set(view.members.values.compactMap(\.mergedInto)).subtracting(view.members.keys)
        }
        let byPhone = try FastStatement(
            db,
            sql:
                "SELECT \(memberColumns), \(qualifyingColumn) FROM members m WHERE phone_hash = ? AND merged_into IS NULL"
        )
        for hash in keys.phoneHashes {
            try byPhone.forEach({
                $0.add(onlyStart ?? .max)
                $0.add(Data(hash))
            }) { columns in
                let record = member(columns)
                view.members[record.id] = record
                view.phoneOwners[hash] = record.id
                if let onlyStart { view.qualifying[record.id] = [onlyStart: Points(columns.int64(13))] }
            }
        }
        func resolved(_ ids: Set<MemberID>) -> Set<MemberID> {
            Set(
                ids.compactMap { id -> MemberID? in
                    var current = id
                    for _ in 0..<8 {
                        guard let next = view.members[current]?.mergedInto else { break }
                        current = next
                    }
                    return view.members[current] == nil ? nil : current
                })
        }
        // Lots and holds of every member a spend or a reversal may debit.
        // A member the batch enrols and then debits may merge into the member with its phone.
        let debited = resolved(keys.debitedMembers).union(owners).union(
            keys.debitedMembers.compactMap { keys.enrolledPhones[$0].flatMap { view.phoneOwners[$0] } })
        if !debited.isEmpty { try loadLotChains(db, members: debited, into: &view) }
        var holds: [String: HoldRecord] = [:]
        let holdSQL =
            "SELECT hold_id, member_id, transaction_id, COALESCE(balance_points, points) AS points, expires_at_ms FROM holds WHERE status = 'active' AND "
        if !debited.isEmpty {
            for row in try Row.fetchAll(
                db.cachedStatement(sql: holdSQL + "member_id IN (SELECT value FROM json_each(?))"),
                arguments: [json(debited.map(\.description))])
            {
                if let hold = hold(row) { holds[hold.holdID] = hold }
            }
        }
        if !keys.holdTransactions.isEmpty {
            for row in try Row.fetchAll(
                db.cachedStatement(sql: holdSQL + "transaction_id IN (SELECT value FROM json_each(?))"),
                arguments: [json(Array(keys.holdTransactions))])
            {
                if let hold = hold(row) { holds[hold.holdID] = hold }
            }
        }
        view.holds = holds.values.sorted { $0.holdID < $1.holdID }
        // Receipts already claimed.
        if keys.claimedReceipts, !keys.receipts.isEmpty {
            for row in try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT receipt, transaction_id FROM transactions WHERE receipt IN (SELECT value FROM json_each(?))"
                ),
                arguments: [json(keys.receipts.map(\.description))])
            {
                let text: String = row["receipt"]
                if let key = keys.receipts.first(where: { $0.description == text }) {
                    view.receipts[key] = row["transaction_id"]
                }
            }
        }
        // Qualifying points and tier spells of earning members.
        let earning = resolved(keys.earningMembers)
        if !earning.isEmpty, onlyStart == nil {
            let members = json(earning.map(\.description))
            let sums = try FastStatement(
                db,
                sql: """
                    SELECT member_id, SUM(points) FROM qualifying_points
                    WHERE member_id IN (SELECT value FROM json_each(?)) AND bucket_ms >= ? GROUP BY member_id
                    """)
            for start in keys.windowStarts {
                try sums.forEach({
                    $0.add(members)
                    $0.add(start)
                }) { row in
                    if let id = MemberID(row.string(0)) {
                        view.qualifying[id, default: [:]][start] = Points(row.int64(1))
                    }
                }
            }
        }
        if !earning.isEmpty {
            // Spells only of members an earn states another tier for (the current tier is always
            // accepted), and of those a first pass found missing.
            var named = keys.spellMembers
            for (id, tiers) in keys.statedTiers {
                guard var current = view.members[id] else { continue }
                for _ in 0..<8 {
                    guard let next = current.mergedInto, let record = view.members[next] else { break }
                    current = record
                }
                if tiers.contains(where: { $0 != current.tier.rawValue }) {
                    named.insert(id)
                    named.insert(current.id)
                }
            }
            view.spellsLoaded = named
            if !named.isEmpty {
                try FastStatement(
                    db,
                    sql:
                        "SELECT member_id, position, tier FROM member_tiers WHERE member_id IN (SELECT value FROM json_each(?)) ORDER BY member_id, position"
                ).forEach({ $0.add(json(named.map(\.description))) }) { row in
                    if let id = MemberID(row.string(0)), let tier = TierID(row.string(2)) {
                        view.tierSpells[id, default: []].append(TierSpell(position: row.int64(1), tier: tier))
                    }
                }
            }
        }
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT promotion_id, points_given FROM promotion_usage")) {
            if let id = PromotionID(row["promotion_id"] as String) {
                view.promotionsGiven[id] = Points(row["points_given"])
            }
        }
        return view
    }

    /// Posted transactions a batch's reversals name, with their postings, lot draws and reversals.
    private static func loadOriginals(_ db: Database, ids: Set<String>, into view: inout PostingView) throws {
        let list = json(Array(ids))
        var byPosition: [Int64: String] = [:]
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT position, transaction_id, kind, site_id, member_id, points, amount_minor, stated_points
                    FROM transactions WHERE transaction_id IN (SELECT value FROM json_each(?)) AND kind IS NOT NULL
                    """),
            arguments: [list])
        {
            guard let kind = TransactionKind(rawValue: row["kind"]) else {
                preconditionFailure("a stored transaction has an unknown kind")
            }
            let id: String = row["transaction_id"]
            let position: Int64 = row["position"]
            byPosition[position] = id
            view.originals[id] = OriginalRecord(
                transactionID: id, position: position, kind: kind,
                site: (row["site_id"] as String?).map(SiteID.init(unchecked:)),
                member: (row["member_id"] as String?).flatMap(MemberID.init), points: Points(row["points"]),
                amount: Money(minorUnits: row["amount_minor"]), statedPoints: row["stated_points"], postings: [])
        }
        guard !byPosition.isEmpty else { return }
        let positions = json(byPosition.keys.map { String($0) })
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT position, account, points FROM postings WHERE position IN (SELECT CAST(value AS INTEGER) FROM json_each(?)) ORDER BY position, line"
            ),
            arguments: [positions])
        {
            guard let id = byPosition[row["position"]] else { continue }
            view.originals[id]?.postings.append(Posting(account(row["account"]), Points(row["points"])))
        }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT d.position, d.points AS drawn, \(lotColumns) FROM lot_draws d JOIN lots l ON l.lot_number = d.lot_number
                    WHERE d.position IN (SELECT CAST(value AS INTEGER) FROM json_each(?)) ORDER BY d.position, d.lot_number
                    """),
            arguments: [positions])
        {
            guard let id = byPosition[row["position"]] else { continue }
            let lot = lotRecord(row)
            view.originals[id]?.draws.append((lot.number, Points(row["drawn"])))
            view.drawnLots[lot.number] = lot
        }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT original_transaction_id, amount_minor, points, stated_points FROM transactions
                    WHERE original_transaction_id IN (SELECT value FROM json_each(?)) AND kind = 'reverse'
                    ORDER BY position
                    """),
            arguments: [list])
        {
            let id: String = row["original_transaction_id"]
            guard var original = view.originals[id] else { continue }
            original.reversals += 1
            original.refundedAmount += Money(minorUnits: row["amount_minor"])
            original.reversedPoints += Points(row["points"])
            if let stated = row["stated_points"] as Int64? {
                original.statedReversedPoints?.append(stated)
            } else {
                original.statedReversedPoints = nil
            }
            view.originals[id] = original
        }
    }

    static let memberColumns =
        "member_id, tier, tier_review_date, birth_month, last_earn, streak_last_day, streak_days, merged_into, phone_hash, balance_points, changed_position, last_position, lots_head"

    /// Members by id, with their qualifying points from `qualifyingFrom` when given.
    static func members(
        _ db: Database, ids: Set<MemberID>, qualifyingFrom start: Int64? = nil, into view: inout PostingView
    ) throws -> [MemberRecord] {
        var records: [MemberRecord] = []
        records.reserveCapacity(ids.count)
        try FastStatement(
            db,
            sql:
                "SELECT \(memberColumns), \(qualifyingColumn) FROM members m WHERE member_id IN (SELECT value FROM json_each(?))"
        ).forEach({
            $0.add(start ?? .max)
            $0.add(json(ids.map(\.description)))
        }) { columns in
            let record = member(columns)
            if let start { view.qualifying[record.id] = [start: Points(columns.int64(13))] }
            records.append(record)
        }
        return records
    }

    /// A member's qualifying points from the bucket bound to the statement's first parameter.
    static let qualifyingColumn =
        "(SELECT COALESCE(SUM(q.points), 0) FROM qualifying_points q WHERE q.member_id = m.member_id AND q.bucket_ms >= ?)"

    /// A member row read with `memberColumns` (the hot path of loading a view).
    static func member(_ row: FastStatement.Columns) -> MemberRecord {
        guard let id = row.utf8(0, MemberID.init(utf8:)), let tier = TierID(row.string(1)),
            let review = row.utf8(2, CivilDate.init(utf8:))
        else { preconditionFailure("a stored member row is malformed") }
        let streak = row.utf8(5, CivilDate.init(utf8:)).map { Streak(lastDay: $0, days: max(1, Int(row.int64(6)))) }
        return MemberRecord(
            id: id, tier: tier, reviewDate: review, birthMonth: row.int64OrNil(3).map(Int.init),
            lastEarn: LastEarnEncoding.decode(row.string(4)), streak: streak,
            mergedInto: row.utf8(7, MemberID.init(utf8:)), phoneHash: row.bytesOrNil(8),
            balance: Points(row.int64(9)), changedPosition: row.int64(10), lastPosition: row.int64OrNil(11),
            lotsHead: row.int64OrNil(12))
    }

    static let lotColumns =
        "l.lot_number, l.lot_id, l.member_id, l.expires_at_ms, l.remaining_points, l.next_lot"

    private static func lotRecord(_ row: Row) -> LotRecord {
        guard let member = MemberID(row["member_id"] as String) else {
            preconditionFailure("a stored lot is malformed")
        }
        return LotRecord(
            number: row["lot_number"], lotID: row["lot_id"], member: member,
            expiresAt: Timestamp(milliseconds: row["expires_at_ms"]), remaining: Points(row["remaining_points"]),
            next: row["next_lot"])
    }

    /// The chains of lots with points left of `members`, head first.
    static func loadLotChains(_ db: Database, members: Set<MemberID>, into view: inout PostingView) throws {
        var byNumber: [Int64: LotRecord] = [:]
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    WITH RECURSIVE chain (number) AS (
                        SELECT lots_head FROM members
                        WHERE member_id IN (SELECT value FROM json_each(?)) AND lots_head IS NOT NULL
                        UNION ALL
                        SELECT l.next_lot FROM lots l JOIN chain c ON l.lot_number = c.number WHERE l.next_lot IS NOT NULL
                    )
                    SELECT \(lotColumns) FROM chain c JOIN lots l ON l.lot_number = c.number
                    """),
            arguments: [json(members.map(\.description))])
        {
            let lot = lotRecord(row)
            byNumber[lot.number] = lot
        }
        for member in members {
            var chain: [LotRecord] = []
            var next = view.members[member]?.lotsHead
            while let number = next, let lot = byNumber[number] {
                chain.append(lot)
                next = lot.next
            }
            view.lots[member] = chain
        }
    }

    private static func hold(_ row: Row) -> HoldRecord? {
        MemberID(row["member_id"] as String).map {
            HoldRecord(
                holdID: row["hold_id"], member: $0, transactionID: row["transaction_id"],
                balancePoints: Points(row["points"]), expiresAt: Timestamp(milliseconds: row["expires_at_ms"]))
        }
    }

    /// A JSON array of strings, for `json_each`.
    static func json(_ values: some Sequence<String>) -> String {
        var text = "["
        var first = true
        for value in values {
            if !first { text += "," }
            first = false
            text += "\""
            // Ids and keys rarely need escaping: copied whole when they do not.
            if value.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
                text += value
                text += "\""
                continue
            }
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": text += "\\\""
                case "\\": text += "\\\\"
                case _ where scalar.value < 0x20: text += String(format: "\\u%04x", scalar.value)
                default: text.unicodeScalars.append(scalar)
                }
            }
            text += "\""
        }
        return text + "]"
    }

    /// The account a stored key names.
    static func account(_ key: String) -> Account {
        let parts = key.split(separator: ":", maxSplits: 1).map(String.init)
        switch (parts.first ?? "", parts.count == 2 ? parts[1] : "") {
        case ("member", let id): return .member(MemberID(id) ?? MemberID(value: 0))
        case ("issued", let id): return .issued(MerchantID(unchecked: id))
        case ("redeemed", let id): return .redeemed(MerchantID(unchecked: id))
        case ("offline_risk", let id): return .offlineRisk(SiteID(unchecked: id))
        case ("escrow", let id): return .escrow(SiteID(unchecked: id))
        case ("expired", _): return .expired
        default: return .adjustments
        }
    }

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
                values.add(entry.member?.description)
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
                    values.add(posting.account.key)
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
                values.add(bucket.member.description)
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
        let consume = try db.cachedStatement(sql: "UPDATE holds SET status = 'consumed' WHERE hold_id = ?")
        for hold in effects.consumedHolds { try consume.execute(arguments: [hold]) }
        for conflict in effects.conflicts { try insert(db, conflict, at: now) }
        try db.cachedStatement(sql: "UPDATE counters SET value = ? WHERE name = 'position' AND value < ?")
            .execute(arguments: [effects.position, effects.position])
    }

    private static func applyMembers(_ db: Database, _ effects: PostingEffects) throws {
        let enrolled = Dictionary(uniqueKeysWithValues: effects.enrollments.map { ($0.member, $0) })
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO members (member_id, phone_hash, sealed_phone, card_number, tier, tier_review_date, birth_month,
                    enrolled_at_ms, enrolled_site, last_earn, streak_last_day, streak_days, merged_into, changed_position,
                    balance_points, last_position, lots_head)
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
                    record.id.description, record.phoneHash.map { Data($0) }, enrollment.sealedPhone.map { Data($0) },
                    enrollment.cardNumber, record.tier.rawValue, record.reviewDate.description, record.birthMonth,
                    enrollment.enrolledAt.milliseconds, enrollment.site.rawValue,
                    LastEarnEncoding.encode(record.lastEarn), record.streak?.lastDay.description,
                    record.streak?.days ?? 0, record.mergedInto?.description, record.changedPosition,
                    record.balance.value, record.lastPosition, record.lotsHead,
                ])
            } else {
                try update.run { values in
                    values.add(record.tier.rawValue)
                    values.add(record.reviewDate.description)
                    values.add(LastEarnEncoding.encode(record.lastEarn))
                    values.add(record.streak?.lastDay.description)
                    values.add(record.streak?.days ?? 0)
                    values.add(record.changedPosition)
                    values.add(record.balance.value)
                    values.add(record.lastPosition)
                    values.add(record.lotsHead)
                    values.add(record.id.description)
                }
            }
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
                values.add(new.lot.member.description)
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
