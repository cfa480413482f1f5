import Core
import Foundation
import GRDB
import SwiftProtobuf
import Wire

/// The programs the gateway has published, newest last.
package struct ProgramCatalogue: Sendable {
    package struct Version: Sendable {
        package var version: Int64
        package var effectiveAt: Timestamp
        package var program: Program
    }

    package var versions: [Version]

    package init(versions: [Version]) {
        self.versions = versions.sorted { $0.version < $1.version }
    }

    /// The version in force at an instant (the first one for instants before it).
    package func active(at instant: Timestamp) -> Version? {
        versions.last { $0.effectiveAt <= instant } ?? versions.first
    }

    package var latest: Version? { versions.last }
}

/// What happened to one pushed transaction.
package struct PostingResult: Sendable, Equatable {
    package enum Outcome: String, Sendable {
        case posted, postedWithConflict = "posted_with_conflict", rejected
    }

    package var outcome: Outcome
    package var reason: String
    /// The member's points change as posted.
    package var points: Points
}

/// Applies a site's local transactions to the ledger by the written rules of DESIGN §6. Runs inside
/// the push's database transaction; deterministic for a given ledger state, program catalogue,
/// transaction and posting time.
struct Poster {
    let writer: LedgerWriter
    let catalogue: ProgramCatalogue
    let site: SiteID
    let now: Timestamp
    /// How long after a newer version is effective an edge may still use the previous one.
    let programGraceMilliseconds: Int64
    /// How far an edge's clock may be from the gateway's (the tolerance on stated earn times).
    var clockSkewMaxMilliseconds: Int64 = GatewayLimits().clockSkewMaxMilliseconds

    var db: Database { writer.db }

    func apply(_ local: Coalition_Sync_V1_LocalTransaction, sequence: Int64) throws -> PostingResult {
        guard let merchant = MerchantID(local.merchantID), TransactionID(local.transactionID) != nil,
            RequestID(local.requestID) != nil, local.body != nil
        else {
            return try reject(
                .malformed, member: nil, local: local, detail: "missing or malformed merchant, ids or body")
        }
        // The version in force when it happened; the edge's own version must be known and current.
        let occurredAt = Timestamp(milliseconds: min(local.occurredAtMs, now.milliseconds))
        guard let active = catalogue.active(at: occurredAt) else {
            preconditionFailure("the gateway runs without a program")
        }
        var conflicts: [ConflictKind] = []
        if local.programVersion != active.version {
            let stated = catalogue.versions.first { $0.version == local.programVersion }
            let next = catalogue.versions.first { $0.version > local.programVersion }
            let withinGrace =
                stated != nil
                && (next.map { occurredAt.milliseconds < $0.effectiveAt.milliseconds + programGraceMilliseconds }
                    ?? true)
            if !withinGrace {
                try writer.conflict(
                    .programVersion, site: site, transaction: local.transactionID, member: nil,
                    resolution: "posted with version \(active.version), active at occurred_at", at: now,
                    detail: "edge used version \(local.programVersion)")
                try writer.flag(site, .programVersion)
                conflicts.append(.programVersion)
            }
        }
        let program = active.program
        guard let (_, merchantSite) = program.merchant(merchant), merchantSite.id == site else {
            return try reject(
                .merchantNotAtSite, member: nil, local: local,
                detail: "merchant '\(merchant)' is not at site '\(site)'")
        }
        let operation: ReceiptOperation
        switch local.body {
        case .enrollment: operation = .enroll
        case .earn: operation = .earn
        case .redeem: operation = .redeem
        case .reverse: operation = .reverse
        case .parking: operation = .parkingPay
        case nil: preconditionFailure("checked above")
        }
        // One statement in the common case: the receipt is new and the insert takes.
        try db.cachedStatement(
            sql:
                "INSERT INTO receipts (merchant_id, operation, request_id, transaction_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
        ).execute(arguments: [merchant.rawValue, operation.rawValue, local.requestID, local.transactionID])
        if db.changesCount == 0,
            let first = try String.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT transaction_id FROM receipts WHERE merchant_id = ? AND operation = ? AND request_id = ?"
                ),
                arguments: [merchant.rawValue, operation.rawValue, local.requestID]), first != local.transactionID
        {
            return try reject(
                .duplicateReceipt, member: nil, local: local,
                detail: "receipt '\(local.requestID)' was first posted as \(first)")
        }

        var context = Context(
            local: local, sequence: sequence, merchant: merchant, program: program, version: active.version,
            occurredAt: occurredAt,
            conflicts: conflicts)
        let points: Points
        switch local.body {
        case .enrollment(let record): points = try enroll(record, &context)
        case .earn(let record): points = try earn(record, &context)
        case .redeem(let record): points = try redeem(record, &context)
        case .reverse(let record): points = try reverse(record, &context)
        case .parking(let record): points = try parking(record, &context)
        case nil: preconditionFailure("checked above")
        }
        if let rejection = context.rejection { return rejection }
        return PostingResult(
            outcome: context.conflicts.isEmpty ? .posted : .postedWithConflict,
            reason: context.conflicts.map(\.rawValue).joined(separator: ","),
            points: points)
    }

    struct Context {
        var local: Coalition_Sync_V1_LocalTransaction
        var sequence: Int64
        var merchant: MerchantID
        var program: Program
        var version: Int64
        var occurredAt: Timestamp
        var conflicts: [ConflictKind]
        var rejection: PostingResult?
    }

    private func reject(
        _ reason: RejectionReason, member: MemberID?, local: Coalition_Sync_V1_LocalTransaction, detail: String
    )
        throws -> PostingResult
    {
        try writer.conflict(
            reason == .duplicateReceipt ? .duplicateReceipt : .rejected, site: site,
            transaction: local.transactionID,
            member: member, resolution: "rejected: \(reason)", at: now, detail: detail)
        return PostingResult(outcome: .rejected, reason: reason.rawValue, points: .zero)
    }

    private func entry(
        _ context: Context, kind: TransactionKind, member: MemberID, points: Points, amount: Money,
        original: String? = nil,
        postings: Postings, detail: String = ""
    )
        -> LedgerWriter.Entry
    {
        LedgerWriter.Entry(
            transactionID: context.local.transactionID, kind: kind, site: site, siteSequence: context.sequence,
            merchant: context.merchant,
            member: member, requestID: context.local.requestID, original: original, points: points, amount: amount,
            occurredAt: context.occurredAt, postedAt: now, programVersion: context.version, detail: detail,
            postings: postings)
    }

    // MARK: Kinds

    private func enroll(_ record: Coalition_Sync_V1_Enrollment, _ context: inout Context) throws -> Points {
        guard let member = MemberID(record.memberID) else {
            context.rejection = try reject(.malformed, member: nil, local: context.local, detail: "bad member id")
            return .zero
        }
        if try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT 1 FROM members WHERE member_id = ?"), arguments: [member.description])
            == true
        {
            context.rejection = try reject(
                .duplicateMember, member: member, local: context.local, detail: "member id already enrolled")
            return .zero
        }
        let program = context.program
        let survivor: MemberID? =
            record.phoneHash.isEmpty
            ? nil
            : try String.fetchOne(
                db.cachedStatement(sql: "SELECT member_id FROM members WHERE phone_hash = ? AND merged_into IS NULL"),
                arguments: [record.phoneHash]
            ).flatMap(MemberID.init)
        let status = TierCalculator.initial(program.tiers, enrolledOn: program.timeZone.date(of: context.occurredAt))
        let position = try writer.nextPosition()
        try db.cachedStatement(
            sql: """
                INSERT INTO members (member_id, phone_hash, sealed_phone, card_number, tier, tier_review_date, birth_month, enrolled_at_ms,
                    enrolled_site, merged_into, changed_position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            member.description, record.phoneHash.isEmpty ? nil : record.phoneHash,
            record.sealedPhone.isEmpty ? nil : record.sealedPhone,
            record.cardNumber.isEmpty ? nil : record.cardNumber, status.tier.rawValue, status.reviewDate.description,
            record.birthMonth == 0 ? nil : Int(record.birthMonth), context.occurredAt.milliseconds, site.rawValue,
            survivor?.description, position,
        ])
        try writer.tierSpell(member, tier: status.tier, position: position)
        // Same phone enrolled elsewhere first: this record merges into the earlier one.
        let owner = survivor ?? member
        if let survivor {
            try db.cachedStatement(
                sql: "INSERT INTO merges (from_member, into_member, changed_position) VALUES (?, ?, ?)"
            ).execute(arguments: [member.description, survivor.description, position])
            try writer.conflict(
                .memberMerge, site: site, transaction: context.local.transactionID, member: survivor,
                resolution: "member \(member) merged into \(survivor), who enrolled first", at: now)
            context.conflicts.append(.memberMerge)
        }
        let bonus = EarnCalculator.enrollment(program: program, hasReferrer: !record.referrerMemberID.isEmpty)
        var lines = PostingRules.issue(member: owner, merchant: context.merchant, points: bonus.signup.total).lines
        var referrer: MemberID?
        if let stated = MemberID(record.referrerMemberID), let resolved = try writer.resolve(stated), resolved != owner
        {
            referrer = resolved
            lines += PostingRules.issue(member: resolved, merchant: context.merchant, points: bonus.referral).lines
        }
        if Points(record.signupPoints) != bonus.signup.total
            || (referrer != nil && Points(record.referralPoints) != bonus.referral)
        {
            try mismatch(
                &context, member: owner, detail: "edge signup \(record.signupPoints)/referral \(record.referralPoints)")
        }
        let posted = try writer.post(
            entry(
                context, kind: .enroll, member: owner, points: bonus.signup.total, amount: .zero,
                postings: Postings(lines)))
        let expires = ExpiryCalculator.expiresAt(
            earnedAt: context.occurredAt, rules: program.expiry, timeZone: program.timeZone)
        try writer.createLot(
            context.local.transactionID, member: owner, earnedAt: context.occurredAt, expiresAt: expires,
            points: bonus.signup.total)
        if let referrer, bonus.referral > .zero {
            try writer.createLot(
                context.local.transactionID + "-referral", member: referrer, earnedAt: context.occurredAt,
                expiresAt: expires, points: bonus.referral)
        }
        try writer.touch(member, position: posted)
        return bonus.signup.total
    }

    private func earn(_ record: Coalition_Sync_V1_EarnRecord, _ context: inout Context) throws -> Points {
        guard let stated = MemberID(record.memberID), let member = try writer.resolve(stated) else {
            context.rejection = try reject(
                .unknownMember, member: nil, local: context.local, detail: "member '\(record.memberID)' is unknown")
            return .zero
        }
        let program = context.program
        // Recompute with the member state the edge says it used (DESIGN §6: same version and inputs).
        // A points_mismatch is a difference of arithmetic; whether the stated state was the member's
        // is checked next.
        var lastEarn: [Format: Timestamp] = [:]
        for (format, ms) in record.lastEarnAtMsByFormat {
            if let format = Format(format) { lastEarn[format] = Timestamp(milliseconds: ms) }
        }
        let streak = CivilDate(parsing: record.streakLastDay).map {
            Streak(lastDay: $0, days: max(1, Int(record.streakDays)))
        }
        let tier = TierID(record.tier).flatMap { program.tier($0) != nil ? $0 : nil } ?? program.tiers.tiers[0].id
        // The receipt's points for each budgeted promotion cap it, so the recomputation repeats the
        // edge's arithmetic whatever budget figure the edge had.
        var receiptPromotions: [PromotionID: Points] = [:]
        for component in record.breakdown.components where component.kind == .promotion {
            if let id = PromotionID(component.ruleID) {
                receiptPromotions[id, default: .zero] += Points(max(0, min(component.points, 1_000_000_000_000)))
            }
        }
        let caps = PromotionBudgets.caps(program, receipt: receiptPromotions)
        var input = EarnInput(
            merchant: context.merchant, amount: Money(minorUnits: record.amountMinor),
            lines: record.lines.compactMap { line in
                SaleLine(
                    sku: line.sku, category: line.category.isEmpty ? nil : Category(line.category),
                    amount: Money(minorUnits: line.amountMinor))
            },
            occurredAt: context.occurredAt,
            member: MemberEarnState(
                tier: tier, birthMonth: record.birthMonth == 0 ? nil : Int(record.birthMonth),
                lastEarnByFormat: lastEarn, streak: streak),
            promotionBudgetsLeft: caps)
        let statedResult: EarnResult
        do {
            statedResult = try EarnCalculator.earn(program: program, input: input)
        } catch {
            context.rejection = try reject(.malformed, member: member, local: context.local, detail: "\(error)")
            return .zero
        }
        if statedResult.total.value != record.breakdown.totalPoints {
            try mismatch(
                &context, member: member,
                detail: "edge computed \(record.breakdown.totalPoints), Core \(statedResult.total)")
        }
        // DESIGN §8: the member state the edge states is checked against the gateway's record,
        // within the staleness an honest replica can have; what is not the member's is replaced.
        let checked = MemberStateCheck.check(
            stated: input.member, replicaPosition: Int64(clamping: record.replicaPosition),
            record: try recordedState(named: stated, member: member, statedTier: tier, program: program),
            toleranceMilliseconds: clockSkewMaxMilliseconds)
        var result = statedResult
        if !checked.replaced.isEmpty {
            input.member = checked.state
            do {
                result = try EarnCalculator.earn(program: program, input: input)
            } catch {
                context.rejection = try reject(.malformed, member: member, local: context.local, detail: "\(error)")
                return .zero
            }
            let atStake = statedResult.total - result.total
            try writer.conflict(
                .memberStateMismatch, site: site, transaction: context.local.transactionID, member: member,
                resolution:
                    "posted with the gateway's member state (\(result.total) points, not \(statedResult.total))",
                points: atStake, at: now,
                detail:
                    "stated \(checked.replaced.joined(separator: ", ")) not the member's since position \(record.replicaPosition)"
            )
            try writer.flag(site, .memberStateMismatch)
            context.conflicts.append(.memberStateMismatch)
        }
        // The gateway's count of each promotion budget is authoritative: a bonus the edge gave
        // from a budget that has run out is posted with what is left, and recorded.
        if caps.values.contains(where: { $0 > .zero }) {
            let left = PromotionBudgets.left(program, given: try writer.promotionsGiven())
            let budgeted = PromotionBudgets.smaller(caps, left)
            if budgeted != caps {
                let uncut = result
                input.promotionBudgetsLeft = budgeted
                do {
                    result = try EarnCalculator.earn(program: program, input: input)
                } catch {
                    context.rejection = try reject(
                        .malformed, member: member, local: context.local, detail: "\(error)")
                    return .zero
                }
                if result.total < uncut.total {
                    try writer.conflict(
                        .promotionBudget, site: site, transaction: context.local.transactionID, member: member,
                        resolution: "posted with the budget left (\(result.total) points, not \(uncut.total))",
                        points: uncut.total - result.total, at: now,
                        detail: "budget left: "
                            + left.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key) \($0.value)" }
                            .joined(separator: ", "))
                    context.conflicts.append(.promotionBudget)
                }
            }
        }
        try writer.recordPromotions(PromotionBudgets.given(by: result), of: program)
        let position = try writer.post(
            entry(
                context, kind: .earn, member: member, points: result.total, amount: input.amount,
                postings: PostingRules.issue(member: member, merchant: context.merchant, points: result.total)))
        let expires = ExpiryCalculator.expiresAt(
            earnedAt: context.occurredAt, rules: program.expiry, timeZone: program.timeZone)
        try writer.createLot(
            context.local.transactionID, member: member, earnedAt: context.occurredAt, expiresAt: expires,
            points: result.total)
        try updateEarnState(
            member: member, format: result.format, base: result.points(of: .base), program: program,
            at: context.occurredAt, position: position)
        return result.total
    }

    /// The gateway's record of a member, for checking the state an edge stated: the surviving
    /// record's current earn state and tier spells, and the birth months of the record the edge
    /// named and of the survivor.
    /// Tier spells are read only when the stated tier is not the member's current one (the current
    /// tier is always accepted): the common earn costs one read here.
    private func recordedState(named: MemberID, member: MemberID, statedTier: TierID, program: Program) throws
        -> RecordedMemberState
    {
        let statement = try db.cachedStatement(
            sql:
                "SELECT tier, birth_month, last_earn, streak_last_day, streak_days FROM members WHERE member_id = ?")
        guard let row = try Row.fetchOne(statement, arguments: [member.description]) else {
            preconditionFailure("a resolved member has no row")
        }
        var birthMonths: [Int?] = [row["birth_month"] as Int?]
        if named != member, let own = try Row.fetchOne(statement, arguments: [named.description]) {
            birthMonths.append(own["birth_month"] as Int?)
        }
        let current = MemberEarnState(
            tier: TierID(row["tier"] as String) ?? program.tiers.tiers[0].id, birthMonth: row["birth_month"],
            lastEarnByFormat: LastEarnEncoding.decode(row["last_earn"]), streak: Self.streak(row))
        var spells: [TierSpell] = []
        for id in statedTier == current.tier ? [] : Set([named, member]) {
            spells += try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT position, tier FROM member_tiers WHERE member_id = ? ORDER BY position"),
                arguments: [id.description]
            ).compactMap { row in TierID(row["tier"] as String).map { TierSpell(position: row["position"], tier: $0) } }
        }
        return RecordedMemberState(current: current, tiers: spells, birthMonths: birthMonths)
    }

    /// The streak a member row records (`streak_last_day`, `streak_days`), if any.
    private static func streak(_ row: Row) -> Streak? {
        (row["streak_last_day"] as String?).flatMap(CivilDate.init(parsing:)).map {
            Streak(lastDay: $0, days: max(1, row["streak_days"]))
        }
    }

    private func mismatch(_ context: inout Context, member: MemberID, detail: String) throws {
        try writer.conflict(
            .pointsMismatch, site: site, transaction: context.local.transactionID, member: member,
            resolution: "posted with Core's result", at: now, detail: detail)
        try writer.flag(site, .pointsMismatch)
        context.conflicts.append(.pointsMismatch)
    }

    /// The gateway's own view of the member after an earn: last earn per format, streak, tier upgrade.
    private func updateEarnState(
        member: MemberID, format: Format, base: Points, program: Program, at occurredAt: Timestamp, position: Int64
    ) throws {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT last_earn, streak_last_day, streak_days, tier, tier_review_date FROM members WHERE member_id = ?"
                ),
                arguments: [member.description])
        else { return }
        var lastEarn = LastEarnEncoding.decode(row["last_earn"])
        if base > .zero { lastEarn[format] = max(lastEarn[format] ?? occurredAt, occurredAt) }
        var streak = Self.streak(row)
        if base > .zero { streak = EarnCalculator.advance(streak, to: program.timeZone.date(of: occurredAt)).0 }
        let today = program.timeZone.date(of: now)
        let qualifying = try qualifyingPoints(member, program: program)
        let current = TierStatus(
            tier: TierID(row["tier"] as String) ?? program.tiers.tiers[0].id,
            reviewDate: CivilDate(parsing: row["tier_review_date"]) ?? today)
        let status = TierCalculator.afterPosting(program.tiers, status: current, qualifying: qualifying, on: today)
        if status.tier != current.tier { try writer.tierSpell(member, tier: status.tier, position: position) }
        try db.cachedStatement(
            sql:
                "UPDATE members SET last_earn = ?, streak_last_day = ?, streak_days = ?, tier = ?, tier_review_date = ?, changed_position = ? WHERE member_id = ?"
        ).execute(arguments: [
            LastEarnEncoding.encode(lastEarn), streak?.lastDay.description, streak?.days ?? 0, status.tier.rawValue,
            status.reviewDate.description, position, member.description,
        ])
    }

    /// Points earned (less refunds) in the rolling qualifying window ending now.
    func qualifyingPoints(_ member: MemberID, program: Program) throws -> Points {
        let start = TierCalculator.windowStart(
            program.tiers, timeZone: program.timeZone, endingOn: program.timeZone.date(of: now))
        // Window starts are local midnights, which fall on bucket boundaries.
        let sum =
            try Int64.fetchOne(
                db.cachedStatement(
                    sql: "SELECT COALESCE(SUM(points), 0) FROM qualifying_points WHERE member_id = ? AND bucket_ms >= ?"
                ),
                arguments: [
                    member.description,
                    start.milliseconds / LedgerWriter.bucketMilliseconds * LedgerWriter.bucketMilliseconds,
                ]) ?? 0
        return Points(max(0, sum))
    }

    private func redeem(_ record: Coalition_Sync_V1_RedeemRecord, _ context: inout Context) throws -> Points {
        try spend(
            memberID: record.memberID, points: Points(record.points), amount: Money(minorUnits: record.billAmountMinor),
            kind: .redeem, &context)
    }

    private func parking(_ record: Coalition_Sync_V1_ParkingRecord, _ context: inout Context) throws -> Points {
        try spend(
            memberID: record.memberID, points: Points(record.points), amount: Money(minorUnits: record.feeMinor),
            kind: .parking, &context)
    }

    /// A redemption or parking payment: consumes the hold placed for its transaction, if any, and
    /// takes what the member has (less other holds); the rest goes to offline_risk(site).
    private func spend(
        memberID: String, points: Points, amount: Money, kind: TransactionKind,
        _ context: inout Context
    ) throws -> Points {
        guard let stated = MemberID(memberID), let member = try writer.resolve(stated) else {
            context.rejection = try reject(
                .unknownMember, member: nil, local: context.local, detail: "member '\(memberID)' is unknown")
            return .zero
        }
        guard points >= .zero, points.value <= context.program.limits.pointsPerTransactionMax.value else {
            context.rejection = try reject(
                .malformed, member: member, local: context.local, detail: "points \(points) out of range")
            return .zero
        }
        // The hold placed for this very transaction pays for it, whether or not the edge heard the
        // answer: an authorisation answer lost past the edge's deadline leaves the hold at the
        // gateway and sends the same transaction down the offline path. Those points were kept for
        // this transaction; counting them as someone else's would book the member's own points to
        // the site's offline_risk.
        let holdID = try String.fetchOne(
            db.cachedStatement(sql: "SELECT hold_id FROM holds WHERE transaction_id = ? AND status = 'active'"),
            arguments: [context.local.transactionID])
        if let holdID {
            try db.cachedStatement(sql: "UPDATE holds SET status = 'consumed' WHERE hold_id = ?").execute(arguments: [
                holdID
            ])
        }
        let available = try writer.available(member, now: now, excluding: holdID)
        let (postings, shortfall) = PostingRules.redemption(
            member: member, merchant: context.merchant, site: site, points: points, available: available)
        let position = try writer.post(
            entry(
                context, kind: kind, member: member, points: postings.change(of: .member(member)), amount: amount,
                postings: postings))
        try writer.consumeLots(member, points: -postings.change(of: .member(member)), position: position)
        if shortfall > .zero {
            try writer.conflict(
                .offlineOverdraw, site: site, transaction: context.local.transactionID, member: member,
                resolution:
                    "member taken to \(available - (points - shortfall)) points; \(shortfall) booked to offline_risk(\(site))",
                points: shortfall, at: now)
            try writer.flag(site, .offlineOverdraw)
            context.conflicts.append(.offlineOverdraw)
        }
        return postings.change(of: .member(member))
    }

    private func reverse(_ record: Coalition_Sync_V1_ReverseRecord, _ context: inout Context) throws -> Points {
        guard let stated = MemberID(record.memberID), let member = try writer.resolve(stated),
            let original = try Row.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT position, kind, site_id, merchant_id, points, amount_minor FROM transactions WHERE transaction_id = ?"
                ),
                arguments: [record.originalTransactionID]),
            (original["site_id"] as String?) == site.rawValue
        else {
            context.rejection = try reject(
                .unknownOriginal, member: nil, local: context.local,
                detail: "original '\(record.originalTransactionID)' is unknown at this site")
            return .zero
        }
        let originalPosition: Int64 = original["position"]
        guard let kind = TransactionKind(rawValue: original["kind"]) else {
            preconditionFailure("a stored transaction has an unknown kind")
        }
        let previous = try Row.fetchOne(
            db.cachedStatement(
                sql:
                    "SELECT COALESCE(SUM(amount_minor), 0) AS amount, COALESCE(SUM(points), 0) AS points, COUNT(*) AS count FROM transactions WHERE kind = 'reverse' AND original_transaction_id = ?"
            ),
            arguments: [record.originalTransactionID])
        let count: Int = previous?["count"] ?? 0
        switch kind {
        case .earn:
            let state = EarnRefundState(
                originalAmount: Money(minorUnits: original["amount_minor"]), originalPoints: Points(original["points"]),
                refundedAmount: Money(minorUnits: previous?["amount"] ?? 0),
                reversedPoints: -Points(previous?["points"] ?? 0))
            guard state.refundedAmount < state.originalAmount else {
                context.rejection = try reject(
                    .alreadyReversed, member: member, local: context.local, detail: "refunded in full already")
                return .zero
            }
            let refund: (points: Points, amount: Money)
            do {
                refund = try EarnReversal.refund(state, amount: Money(minorUnits: record.amountMinor))
            } catch {
                context.rejection = try reject(.malformed, member: member, local: context.local, detail: "\(error)")
                return .zero
            }
            if -refund.points != Points(record.points),
                try receiptRefund(
                    of: record.originalTransactionID, state: state, amount: record.amountMinor,
                    program: context.program
                ).map({ -$0 }) != Points(record.points)
            {
                try mismatch(&context, member: member, detail: "edge reversed \(record.points), Core \(-refund.points)")
            }
            let available = try writer.available(member, now: now)
            let (postings, shortfall) = PostingRules.refund(
                member: member, merchant: context.merchant, site: site, points: refund.points, available: available)
            let position = try writer.post(
                entry(
                    context, kind: .reverse, member: member, points: -refund.points, amount: refund.amount,
                    original: record.originalTransactionID, postings: postings, detail: "refund"))
            try writer.consumeLots(member, points: -postings.change(of: .member(member)), position: position)
            if shortfall > .zero {
                try writer.conflict(
                    .refundAfterSpend, site: site, transaction: context.local.transactionID, member: member,
                    resolution: "member debited to zero; \(shortfall) booked to offline_risk(\(site))",
                    points: shortfall, at: now)
                try writer.flag(site, .refundAfterSpend)
                context.conflicts.append(.refundAfterSpend)
            }
            return postings.change(of: .member(member))
        case .redeem, .parking:
            guard count == 0 else {
                context.rejection = try reject(
                    .alreadyReversed, member: member, local: context.local, detail: "cancelled already")
                return .zero
            }
            let lines = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT account, points FROM postings WHERE position = ?"),
                arguments: [originalPosition])
            let postings = PostingRules.negation(
                of: Postings(lines.map { row in Posting(Self.account(row["account"]), Points(row["points"])) }))
            let position = try writer.post(
                entry(
                    context, kind: .reverse, member: member, points: postings.change(of: .member(member)),
                    amount: .zero,
                    original: record.originalTransactionID, postings: postings, detail: "cancel"))
            try writer.restoreLots(drawnAt: originalPosition, position: position)
            return postings.change(of: .member(member))
        default:
            context.rejection = try reject(
                .notReversible, member: member, local: context.local, detail: "a \(kind) cannot be reversed")
            return .zero
        }
    }

    /// The refund an edge computes from its own receipts: in proportion to the points the original
    /// receipt gave, less the refunds it stated before. These differ from the posted figures when
    /// the gateway posted the earn with fewer points (a promotion budget spent, a member state
    /// replaced) before the edge heard of it; such a refund is honest, and is posted in proportion to
    /// the posted figures. Nil when the receipts cannot be read.
    private func receiptRefund(
        of original: String, state: EarnRefundState, amount: Int64, program: Program
    ) throws -> Points? {
        // The receipts are the site's words: figures outside the program's bounds are not an
        // honest edge's, and must not reach the arithmetic (an extreme integer would trap).
        let bound = program.limits.pointsPerTransactionMax.value
        let payloads = try db.cachedStatement(
            sql: """
                SELECT s.payload FROM site_transactions s WHERE s.transaction_id = ?
                UNION ALL
                SELECT s.payload FROM transactions t JOIN site_transactions s ON s.transaction_id = t.transaction_id
                WHERE t.kind = 'reverse' AND t.original_transaction_id = ?
                """)
        var receipt: Points?
        var stated = Points.zero
        for payload in try Data.fetchAll(payloads, arguments: [original, original]) {
            guard let local = try? Coalition_Sync_V1_LocalTransaction(serializedBytes: payload) else { return nil }
            switch local.body {
            case .earn(let earn):
                guard (0...bound).contains(earn.breakdown.totalPoints) else { return nil }
                receipt = Points(earn.breakdown.totalPoints)
            case .reverse(let reverse):
                guard (-bound...bound).contains(reverse.points) else { return nil }
                stated += Points(reverse.points)
            default: return nil
            }
        }
        guard let receipt else { return nil }
        var edgeState = state
        edgeState.originalPoints = receipt
        edgeState.reversedPoints = -stated
        return try? EarnReversal.refund(edgeState, amount: Money(minorUnits: amount)).points
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
}
