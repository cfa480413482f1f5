import Core
import Foundation
import Logging
import PostgresNIO
import Wire

/// Loads a batch's `PostingView` on the PostgreSQL ledger: the same reads as `SQLitePosting.load`,
/// by key sets (`= ANY($1)` over an array of keys), inside the posting transaction. No rule of
/// posting is here; the engine decides and `PostgresPosting.apply` writes what it decided.
enum PostgresPosting {
    static let memberColumns = SQLitePosting.memberColumns

    static func load(
        _ connection: PostgresConnection, keys: PostingKeys, catalogue: ProgramCatalogue, logger: Logger
    ) async throws -> PostingView {
        var view = PostingView()
        if let site = keys.site {
            view.siteLastOccurredAt = try await connection.value(
                """
                SELECT occurred_at_ms FROM transactions WHERE site_id = \(site.rawValue) AND site_sequence IS NOT NULL
                ORDER BY site_sequence DESC LIMIT 1
                """, as: Int64.self, logger
            ).map(Timestamp.init(milliseconds:))
        }
        view.originalIDs = keys.originals
        if !keys.originals.isEmpty { try await loadOriginals(connection, ids: keys.originals, into: &view, logger) }
        let owners = Set(view.drawnLots.values.map(\.member))
        let onlyStart = keys.windowStarts.count == 1 ? keys.windowStarts.first : nil
        var wanted = keys.members.union(owners).union(view.originals.values.compactMap(\.member))
        for _ in 0..<8 where !wanted.isEmpty {
            for record in try await members(connection, ids: wanted, qualifyingFrom: onlyStart, into: &view, logger) {
                view.members[record.id] = record
            }
            wanted = Set(view.members.values.flatMap { [$0.mergedInto, $0.pendingReferrer].compactMap { $0 } })
                .subtracting(view.members.keys)
        }
        if !keys.phoneHashes.isEmpty {
            let hashes = keys.phoneHashes.map { ByteBuffer(bytes: $0) }
            for row in try await connection.rows(
                """
                SELECT \(unescaped: memberColumns), (SELECT COALESCE(SUM(q.points), 0)::bigint FROM qualifying_points q
                    WHERE q.member_id = m.member_id AND q.bucket_ms >= \(onlyStart ?? .max)) AS qualifying
                FROM members m WHERE phone_hash = ANY(\(hashes)) AND merged_into IS NULL
                """, logger)
            {
                let record = try member(row)
                view.members[record.id] = record
                if let hash = record.phoneHash { view.phoneOwners[hash] = record.id }
                if let onlyStart {
                    view.qualifying[QualifyingWindow(member: record.id, start: onlyStart)] = Points(
                        try row.int("qualifying"))
                }
            }
        }
        func resolved(_ ids: Set<MemberID>) -> Set<MemberID> { Set(ids.compactMap(view.resolve)) }
        let debited = resolved(keys.debitedMembers).union(owners).union(
            keys.debitedMembers.compactMap { keys.enrolledPhones[$0].flatMap { view.phoneOwners[$0] } })
        if !debited.isEmpty { try await loadLotChains(connection, members: debited, into: &view, logger) }
        var holds: [String: HoldRecord] = [:]
        if !debited.isEmpty {
            for row in try await connection.rows(
                "\(unescaped: activeHolds) AND member_id = ANY(\(debited.map(\.description)))", logger)
            {
                if let hold = try hold(row) { holds[hold.holdID] = hold }
            }
        }
        if !keys.holdTransactions.isEmpty {
            for row in try await connection.rows(
                "\(unescaped: activeHolds) AND transaction_id = ANY(\(Array(keys.holdTransactions)))", logger)
            {
                if let hold = try hold(row) { holds[hold.holdID] = hold }
            }
        }
        view.holds = holds.values.sorted { $0.holdID < $1.holdID }
        if keys.claimedReceipts, !keys.receipts.isEmpty {
            let byText = Dictionary(keys.receipts.map { ($0.description, $0) }, uniquingKeysWith: { first, _ in first })
            for row in try await connection.rows(
                "SELECT receipt, transaction_id FROM transactions WHERE receipt = ANY(\(Array(byText.keys)))", logger)
            {
                if let key = byText[try row.text("receipt")] { view.receipts[key] = try row.text("transaction_id") }
            }
        }
        let earning = resolved(keys.earningMembers).union(
            keys.earningMembers.compactMap { keys.enrolledPhones[$0].flatMap { view.phoneOwners[$0] } })
        if !earning.isEmpty, onlyStart == nil {
            for start in keys.windowStarts {
                for row in try await connection.rows(
                    """
                    SELECT member_id, SUM(points)::bigint AS points FROM qualifying_points
                    WHERE member_id = ANY(\(earning.map(\.description))) AND bucket_ms >= \(start) GROUP BY member_id
                    """, logger)
                {
                    if let id = MemberID(try row.text("member_id")) {
                        view.qualifying[QualifyingWindow(member: id, start: start)] = Points(try row.int("points"))
                    }
                }
            }
        }
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
            for row in try await connection.rows(
                """
                SELECT member_id, position, tier FROM member_tiers WHERE member_id = ANY(\(named.map(\.description)))
                ORDER BY member_id, position
                """, logger)
            {
                if let id = MemberID(try row.text("member_id")), let tier = TierID(try row.text("tier")) {
                    view.tierSpells[id, default: []].append(TierSpell(position: try row.int("position"), tier: tier))
                }
            }
        }
        try await loadVouchers(connection, ids: keys.vouchers, into: &view, logger)
        try await loadAllowances(connection, ids: keys.allowances, into: &view, logger)
        if !keys.allowanceMembers.isEmpty {
            for record in try await allowances(
                connection,
                """
                SELECT \(unescaped: SQLitePosting.allowanceColumns) FROM allowances
                WHERE member_id = ANY(\(keys.allowanceMembers.map(\.description).sorted())) AND status = 'active'
                """, logger)
            {
                view.allowances[record.allowanceID] = record
            }
        }
        view.promotionsGiven = try await promotionsGiven(connection, logger)
        try await loadQuotas(connection, site: keys.site, into: &view, logger)
        return view
    }

    /// Bonus points each budgeted promotion has given so far (`forUpdate`: locking the rows of
    /// `only`, so the figures stay true until the transaction ends).
    static func promotionsGiven(
        _ connection: PostgresConnection, _ logger: Logger, locking only: [PromotionID]? = nil
    ) async throws -> [PromotionID: Points] {
        var given: [PromotionID: Points] = [:]
        let query: PostgresQuery =
            if let only {
                """
                SELECT promotion_id, points_given FROM promotion_usage
                WHERE promotion_id = ANY(\(only.map(\.rawValue).sorted())) ORDER BY promotion_id FOR UPDATE
                """
            } else {
                "SELECT promotion_id, points_given FROM promotion_usage"
            }
        for row in try await connection.rows(query, logger) {
            if let id = PromotionID(try row.text("promotion_id")) { given[id] = Points(try row.int("points_given")) }
        }
        return given
    }

    /// Posted transactions a batch's reversals name, with their postings, lot draws and reversals.
    private static func loadOriginals(
        _ connection: PostgresConnection, ids: Set<String>, into view: inout PostingView, _ logger: Logger
    ) async throws {
        let list = Array(ids)
        var byPosition: [Int64: String] = [:]
        for row in try await connection.rows(
            """
            SELECT position, transaction_id, kind, site_id, member_id, merchant_id, points, amount_minor, stated_points
            FROM transactions WHERE transaction_id = ANY(\(list)) AND kind IS NOT NULL
            """, logger)
        {
            guard let kind = TransactionKind(rawValue: try row.text("kind")) else {
                preconditionFailure("a stored transaction has an unknown kind")
            }
            let id = try row.text("transaction_id")
            let position = try row.int("position")
            byPosition[position] = id
            view.originals[id] = OriginalRecord(
                transactionID: id, position: position, kind: kind,
                site: try row.textOrNil("site_id").map(SiteID.init(unchecked:)),
                member: try row.textOrNil("member_id").flatMap(MemberID.init),
                merchant: try row.textOrNil("merchant_id").flatMap(MerchantID.init),
                points: Points(try row.int("points")),
                amount: Money(minorUnits: try row.int("amount_minor")), statedPoints: try row.intOrNil("stated_points"),
                postings: [])
        }
        guard !byPosition.isEmpty else { return }
        let positions = Array(byPosition.keys)
        for row in try await connection.rows(
            "SELECT position, account, points FROM postings WHERE position = ANY(\(positions)) ORDER BY position, line",
            logger)
        {
            guard let id = byPosition[try row.int("position")] else { continue }
            view.originals[id]?.postings.append(
                Posting(SQLitePosting.account(try row.text("account")), Points(try row.int("points"))))
        }
        for row in try await connection.rows(
            """
            SELECT d.position, d.points AS drawn, \(unescaped: SQLitePosting.lotColumns) FROM lot_draws d
            JOIN lots l ON l.lot_number = d.lot_number
            WHERE d.position = ANY(\(positions)) ORDER BY d.position, d.lot_number
            """, logger)
        {
            guard let id = byPosition[try row.int("position")] else { continue }
            let lot = try lotRecord(row)
            view.originals[id]?.draws.append((lot.number, Points(try row.int("drawn"))))
            view.drawnLots[lot.number] = lot
        }
        for row in try await connection.rows(
            """
            SELECT original_transaction_id, amount_minor, points, stated_points FROM transactions
            WHERE original_transaction_id = ANY(\(list)) AND kind = 'reverse' ORDER BY position
            """, logger)
        {
            let id = try row.text("original_transaction_id")
            guard var original = view.originals[id] else { continue }
            original.reversals += 1
            original.refundedAmount += Money(minorUnits: try row.int("amount_minor"))
            original.reversedPoints += Points(try row.int("points"))
            if let stated = try row.intOrNil("stated_points") {
                original.statedReversedPoints?.append(stated)
            } else {
                original.statedReversedPoints = nil
            }
            view.originals[id] = original
        }
        let earns = view.originals.values.filter { $0.kind == .earn }.map(\.transactionID)
        for row in try await connection.rows(
            """
            SELECT l.lot_id AS id, SUM(d.points)::bigint AS points FROM lots l
            JOIN lot_draws d ON d.lot_number = l.lot_number
            JOIN transactions t ON t.position = d.position AND t.kind = 'expire'
            WHERE l.lot_id = ANY(\(earns)) GROUP BY l.lot_id
            UNION ALL
            SELECT t.original_transaction_id, SUM(p.points)::bigint FROM transactions t
            JOIN postings p ON p.position = t.position AND p.account = 'expired'
            WHERE t.original_transaction_id = ANY(\(earns)) AND t.kind = 'reverse'
            GROUP BY t.original_transaction_id
            """, logger)
        {
            view.originals[try row.text("id")]?.expiredLeft += Points(try row.int("points"))
        }
        for row in try await connection.rows(
            """
            SELECT t.original_transaction_id AS id, p.account, SUM(p.points)::bigint AS points FROM transactions t
            JOIN postings p ON p.position = t.position
            WHERE t.original_transaction_id = ANY(\(earns)) AND t.kind = 'reverse'
                AND p.points > 0 AND (p.account LIKE 'issued:%' OR p.account LIKE 'bonus:%'
                    OR p.account = 'platform_bonus')
            GROUP BY t.original_transaction_id, p.account
            """, logger)
        {
            view.originals[try row.text("id")]?.returned[
                SQLitePosting.account(try row.text("account")), default: .zero] += Points(try row.int("points"))
        }
    }

    /// Members by id, with their qualifying points from `qualifyingFrom` when given.
    static func members(
        _ connection: PostgresConnection, ids: Set<MemberID>, qualifyingFrom start: Int64? = nil,
        into view: inout PostingView, _ logger: Logger
    ) async throws -> [MemberRecord] {
        var records: [MemberRecord] = []
        // One grouped read of the qualifying points, not a subquery per member.
        let list = ids.map(\.description)
        for row in try await connection.rows(
            """
            SELECT \(unescaped: memberColumns), COALESCE(q.points, 0)::bigint AS qualifying
            FROM members m LEFT JOIN (
                SELECT member_id, SUM(points) AS points FROM qualifying_points
                WHERE member_id = ANY(\(list)) AND bucket_ms >= \(start ?? .max) GROUP BY member_id
            ) q USING (member_id)
            WHERE member_id = ANY(\(list))
            """, logger)
        {
            let record = try member(row)
            if let start {
                view.qualifying[QualifyingWindow(member: record.id, start: start)] = Points(try row.int("qualifying"))
            }
            records.append(record)
        }
        return records
    }

    static func member(_ row: PostgresRandomAccessRow) throws -> MemberRecord {
        guard let id = MemberID(try row.text("member_id")), let tier = TierID(try row.text("tier")),
            let review = CivilDate(parsing: try row.text("tier_review_date"))
        else { preconditionFailure("a stored member row is malformed") }
        let streak = try row.textOrNil("streak_last_day").flatMap(CivilDate.init(parsing:)).map {
            Streak(lastDay: $0, days: max(1, Int(try row.int("streak_days"))))
        }
        return MemberRecord(
            id: id, tier: tier, reviewDate: review, birthMonth: try row.intOrNil("birth_month").map(Int.init),
            lastEarn: LastEarnEncoding.decode(try row.text("last_earn")), streak: streak,
            mergedInto: try row.textOrNil("merged_into").flatMap(MemberID.init),
            phoneHash: try row.bytesOrNil("phone_hash").map { Array($0) },
            balance: Points(try row.int("balance_points")),
            changedPosition: try row.int("changed_position"), lastPosition: try row.intOrNil("last_position"),
            lotsHead: try row.intOrNil("lots_head"),
            pendingReferrer: try row.textOrNil("pending_referrer").flatMap(MemberID.init))
    }

    static func lotRecord(_ row: PostgresRandomAccessRow) throws -> LotRecord {
        guard let member = MemberID(try row.text("member_id")) else {
            preconditionFailure("a stored lot is malformed")
        }
        return LotRecord(
            number: try row.int("lot_number"), lotID: try row.text("lot_id"), member: member,
            expiresAt: Timestamp(milliseconds: try row.int("expires_at_ms")),
            remaining: Points(try row.int("remaining_points")), next: try row.intOrNil("next_lot"))
    }

    /// The chains of lots with points left of `members`, head first.
    static func loadLotChains(
        _ connection: PostgresConnection, members: Set<MemberID>, into view: inout PostingView, _ logger: Logger
    ) async throws {
        var byNumber: [Int64: LotRecord] = [:]
        for row in try await connection.rows(
            """
            WITH RECURSIVE chain (number) AS (
                SELECT lots_head FROM members WHERE member_id = ANY(\(members.map(\.description))) AND lots_head IS NOT NULL
                UNION ALL
                SELECT l.next_lot FROM lots l JOIN chain c ON l.lot_number = c.number WHERE l.next_lot IS NOT NULL
            )
            SELECT \(unescaped: SQLitePosting.lotColumns) FROM chain c JOIN lots l ON l.lot_number = c.number
            """, logger)
        {
            let lot = try lotRecord(row)
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

    static let activeHolds = SQLitePosting.activeHolds

    static func hold(_ row: PostgresRandomAccessRow) throws -> HoldRecord? {
        try MemberID(try row.text("member_id")).map {
            HoldRecord(
                holdID: try row.text("hold_id"), member: $0, transactionID: try row.text("transaction_id"),
                balancePoints: Points(try row.int("points")),
                expiresAt: Timestamp(milliseconds: try row.int("expires_at_ms")))
        }
    }
}
