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
        if let site = keys.site {
            view.siteLastOccurredAt = try Int64.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT occurred_at_ms FROM transactions WHERE site_id = ? AND site_sequence IS NOT NULL
                        ORDER BY site_sequence DESC LIMIT 1
                        """),
                arguments: [site.rawValue]
            ).map(Timestamp.init(milliseconds:))
        }
        // Originals first: a cancellation gives points back to the lots of the original's member.
        view.originalIDs = keys.originals
        if !keys.originals.isEmpty { try loadOriginals(db, ids: keys.originals, into: &view) }
        let owners = Set(view.drawnLots.values.map(\.member))
        // Members named, then the members they were merged into, and phone owners; with each its
        // qualifying points when the batch's programs share one window (the usual case).
        let onlyStart = keys.windowStarts.count == 1 ? keys.windowStarts.first : nil
        view.members.reserveCapacity(keys.members.count + keys.phoneHashes.count + owners.count)
        // And each original's member, whom a reversal must state (as merged since).
        var wanted = keys.members.union(owners).union(view.originals.values.compactMap(\.member))
        for _ in 0..<8 where !wanted.isEmpty {
            for record in try members(db, ids: wanted, qualifyingFrom: onlyStart, into: &view) {
                view.members[record.id] = record
            }
            // And the referrer a member's first purchase may pay (`referral_paid_at: first_purchase`).
            wanted = Set(view.members.values.flatMap { [$0.mergedInto, $0.pendingReferrer].compactMap { $0 } })
                .subtracting(view.members.keys)
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
                if let onlyStart {
                    view.qualifying[QualifyingWindow(member: record.id, start: onlyStart)] = Points(columns.int64(14))
                }
            }
        }
        func resolved(_ ids: Set<MemberID>) -> Set<MemberID> { Set(ids.compactMap(view.resolve)) }
        // Lots and holds of every member a spend or a reversal may debit.
        // A member the batch enrols and then debits may merge into the member with its phone.
        let debited = resolved(keys.debitedMembers).union(owners).union(
            keys.debitedMembers.compactMap { keys.enrolledPhones[$0].flatMap { view.phoneOwners[$0] } })
        if !debited.isEmpty { try loadLotChains(db, members: debited, into: &view) }
        var holds: [String: HoldRecord] = [:]
        let holdSQL = activeHolds + " AND "
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
        // Qualifying points and tier spells of earning members (a member the batch enrols and then
        // credits may merge into the member with its phone).
        let earning = resolved(keys.earningMembers).union(
            keys.earningMembers.compactMap { keys.enrolledPhones[$0].flatMap { view.phoneOwners[$0] } })
        if !earning.isEmpty, onlyStart == nil {
            let members = earning
            let sums = try FastStatement(
                db,
                sql: """
                    SELECT member_id, SUM(points) FROM qualifying_points
                    WHERE member_id IN (SELECT value FROM json_each(?)) AND bucket_ms >= ? GROUP BY member_id
                    """)
            for start in keys.windowStarts {
                try sums.forEach({
                    $0.add(jsonArray: members)
                    $0.add(start)
                }) { row in
                    if let id = MemberID(row.string(0)) {
                        view.qualifying[QualifyingWindow(member: id, start: start)] = Points(row.int64(1))
                    }
                }
            }
        }
        // Spells only of members an earn states another tier for (the current tier is always
        // accepted), and of those a first pass found missing (whether or not they have rows: a
        // member enrolled in this batch has none, and is then loaded).
        var named = keys.spellMembers
        for (id, tiers) in keys.statedTiers {
            guard let survivor = view.resolve(id), let current = view.members[survivor] else { continue }
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
            ).forEach({ $0.add(jsonArray: named) }) { row in
                if let id = MemberID(row.string(0)), let tier = TierID(row.string(2)) {
                    view.tierSpells[id, default: []].append(TierSpell(position: row.int64(1), tier: tier))
                }
            }
        }
        try loadVouchers(db, ids: keys.vouchers, into: &view)
        try loadAllowances(db, ids: keys.allowances, into: &view)
        if !keys.allowanceMembers.isEmpty {
            for record in try allowances(
                db, where: "member_id IN (SELECT value FROM json_each(?)) AND status = 'active'",
                arguments: [json(keys.allowanceMembers.map(\.description))])
            {
                view.allowances[record.allowanceID] = record
            }
        }
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT promotion_id, points_given FROM promotion_usage")) {
            if let id = PromotionID(row["promotion_id"] as String) {
                view.promotionsGiven[id] = Points(row["points_given"])
            }
        }
        try loadQuotas(db, site: keys.site, into: &view)
        return view
    }

    /// Posted transactions a batch's reversals name, with their postings, lot draws and reversals.
    private static func loadOriginals(_ db: Database, ids: Set<String>, into view: inout PostingView) throws {
        let list = json(Array(ids))
        var byPosition: [Int64: String] = [:]
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT position, transaction_id, kind, site_id, member_id, merchant_id, points, amount_minor,
                        stated_points
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
                member: (row["member_id"] as String?).flatMap(MemberID.init),
                merchant: (row["merchant_id"] as String?).flatMap(MerchantID.init), points: Points(row["points"]),
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
        // What of each refunded earn's lot expired, less what refunds took back from `expired`.
        let earns = json(view.originals.values.filter { $0.kind == .earn }.map(\.transactionID))
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT l.lot_id AS id, SUM(d.points) AS points FROM lots l
                    JOIN lot_draws d ON d.lot_number = l.lot_number
                    JOIN transactions t ON t.position = d.position AND t.kind = 'expire'
                    WHERE l.lot_id IN (SELECT value FROM json_each(?)) GROUP BY l.lot_id
                    UNION ALL
                    SELECT t.original_transaction_id, SUM(p.points) FROM transactions t
                    JOIN postings p ON p.position = t.position AND p.account = 'expired'
                    WHERE t.original_transaction_id IN (SELECT value FROM json_each(?)) AND t.kind = 'reverse'
                    GROUP BY t.original_transaction_id
                    """),
            arguments: [earns, earns])
        {
            view.originals[row["id"] as String]?.expiredLeft += Points(row["points"])
        }
        // What earlier refunds of each earn gave back to its funders.
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT t.original_transaction_id AS id, p.account, SUM(p.points) AS points FROM transactions t
                    JOIN postings p ON p.position = t.position
                    WHERE t.original_transaction_id IN (SELECT value FROM json_each(?)) AND t.kind = 'reverse'
                        AND p.points > 0 AND (p.account LIKE 'issued:%' OR p.account LIKE 'bonus:%'
                            OR p.account = 'platform_bonus')
                    GROUP BY t.original_transaction_id, p.account
                    """),
            arguments: [earns])
        {
            view.originals[row["id"] as String]?.returned[account(row["account"]), default: .zero] += Points(
                row["points"])
        }
    }

    static let memberColumns =
        "member_id, tier, tier_review_date, birth_month, last_earn, streak_last_day, streak_days, merged_into, phone_hash, balance_points, changed_position, last_position, lots_head, pending_referrer"

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
            $0.add(jsonArray: ids)
        }) { columns in
            let record = member(columns)
            if let start {
                view.qualifying[QualifyingWindow(member: record.id, start: start)] = Points(columns.int64(14))
            }
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
            lastEarn: row.utf8(4) { LastEarnEncoding.decode(utf8: $0) } ?? [:], streak: streak,
            mergedInto: row.utf8(7, MemberID.init(utf8:)), phoneHash: row.bytesOrNil(8),
            balance: Points(row.int64(9)), changedPosition: row.int64(10), lastPosition: row.int64OrNil(11),
            lotsHead: row.int64OrNil(12), pendingReferrer: row.utf8(13, MemberID.init(utf8:)))
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

    /// Active holds as `hold(_:)` reads them (each with the part it took from the balance).
    static let activeHolds =
        "SELECT hold_id, member_id, transaction_id, COALESCE(balance_points, points) AS points, expires_at_ms FROM holds WHERE status = 'active'"

    static func hold(_ row: Row) -> HoldRecord? {
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
        case ("bonus", let id): return .bonus(MerchantID(unchecked: id))
        case ("platform_bonus", _): return .platformBonus
        case ("platform_redeemed", _): return .platformRedeemed
        case ("redeemed", let id): return .redeemed(MerchantID(unchecked: id))
        case ("offline_risk", let id): return .offlineRisk(SiteID(unchecked: id))
        case ("escrow", let id): return .escrow(SiteID(unchecked: id))
        case ("expired", _): return .expired
        default: return .adjustments
        }
    }
}
