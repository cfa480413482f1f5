/// The rules of each kind of pushed transaction (DESIGN §6; docs/rules.md).
extension PostingEngine {
    mutating func enroll(_ record: PushedTransaction.Enrollment, _ context: inout Context) -> Result<Points, Rejection>
    {
        guard let member = context.pushed.member else {
            return .failure(Rejection(reason: .malformed, member: nil, detail: "bad member id"))
        }
        if view.members[member] != nil {
            return .failure(
                Rejection(reason: .duplicateMember, member: member, detail: "member id already enrolled"))
        }
        let program = context.program
        // Same phone enrolled elsewhere first: this record merges into the earlier one.
        let survivor: MemberID? = record.phoneHash.isEmpty ? nil : view.phoneOwners[record.phoneHash]
        let status = TierCalculator.initial(program.tiers, enrolledOn: program.timeZone.date(of: context.occurredAt))
        // The member's row and first tier spell take a position of their own, before the posting.
        let created = nextPosition()
        store(
            MemberRecord(
                id: member, tier: status.tier, reviewDate: status.reviewDate,
                birthMonth: record.birthMonth == 0 ? nil : record.birthMonth, mergedInto: survivor,
                phoneHash: record.phoneHash.isEmpty ? nil : record.phoneHash, changedPosition: created))
        effects.enrollments.append(
            MemberEnrollment(
                member: member,
                cardNumber: record.cardNumber.isEmpty ? nil : record.cardNumber, enrolledAt: context.occurredAt,
                site: site))
        view.lots[member] = []
        view.tierSpells[member] = [TierSpell(position: created, tier: status.tier)]
        view.spellsLoaded.insert(member)
        effects.tierSpells.append((member, created, status.tier))
        if survivor == nil, !record.phoneHash.isEmpty { view.phoneOwners[record.phoneHash] = member }
        let owner = survivor ?? member
        if let survivor {
            effects.merges.append((member, survivor, created))
            conflict(
                .memberMerge, transaction: context.pushed.transactionID, member: survivor,
                resolution: "member \(member) merged into \(survivor), who enrolled first")
            context.conflicts.append(.memberMerge)
        }
        // A record merged into an earlier one is the same person enrolled again (two offline
        // sites): the programme pays its sign-up and referral bonuses once, to the first record.
        // What the second till showed the member is taken back; what they spent of it meanwhile is
        // that site's offline risk, as for any offline redemption.
        let paid = survivor == nil
        let bonus = EarnCalculator.enrollment(program: program, hasReferrer: !record.referrerMemberID.isEmpty)
        let signup = paid ? bonus.signup.total : .zero
        // Each bonus is paid by its funder (docs/rules.md, "Who funds each point").
        var lines =
            paid
            ? PostingRules.issue(
                member: owner, merchant: context.merchant, components: bonus.signup.components, program: program
            ).lines : []
        var referrer: MemberID?
        if paid, let stated = MemberID(record.referrerMemberID), let resolved = resolve(stated), resolved != owner {
            referrer = resolved
            lines += referralPostings(referrer: resolved, points: bonus.referral, context).lines
        }
        if paid,
            Points(record.signupPoints) != bonus.signup.total
                || (referrer != nil && Points(record.referralPoints) != bonus.referral)
        {
            mismatch(
                &context, member: owner, detail: "edge signup \(record.signupPoints)/referral \(record.referralPoints)")
        }
        let position = post(
            context, kind: .enroll, member: owner, points: signup, amount: .zero, postings: Postings(lines))
        let expires = ExpiryCalculator.expiresAt(
            earnedAt: context.occurredAt, rules: program.expiry, timeZone: program.timeZone)
        if signup > .zero {
            createLot(
                context.pushed.transactionID, member: owner, earnedAt: context.occurredAt, expiresAt: expires,
                points: signup)
        }
        if let referrer, bonus.referral > .zero {
            createLot(
                context.pushed.transactionID + "-referral", member: referrer, earnedAt: context.occurredAt,
                expiresAt: expires, points: bonus.referral)
        }
        touch(member, position: position)
        // With `referral_paid_at: first_purchase` the referrer waits for this member's first
        // purchase (`earn`), which pays the bonus.
        if paid, let referrer, program.earn.referralPaidAt == .firstPurchase, program.earn.referralPoints > .zero {
            modify(member) { $0.pendingReferrer = referrer }
        }
        // The referrer an unpaid referral named is published again, so that the edge which
        // counted the referral bonus locally drops it (its snapshot now includes this enrolment).
        if !paid, let stated = MemberID(record.referrerMemberID), let named = resolve(stated) {
            touch(named, position: position)
        }
        return .success(signup)
    }

    mutating func earn(_ record: PushedTransaction.Earn, _ context: inout Context) -> Result<Points, Rejection> {
        guard let stated = context.pushed.member, let member = resolve(stated) else {
            return .failure(
                Rejection(reason: .unknownMember, member: nil, detail: "member '\(record.memberID)' is unknown"))
        }
        let program = context.program
        // Recompute with the member state the edge says it used (DESIGN §6: same version and inputs).
        // A points_mismatch is a difference of arithmetic; whether the stated state was the member's
        // is checked next.
        var lastEarn: [Format: Timestamp] = [:]
        for (format, ms) in record.lastEarnByFormat {
            guard Timestamp.wireRange.contains(ms) else {
                return .failure(
                    Rejection(
                        reason: .malformed, member: member,
                        detail: "last earn at '\(format.prefix(32))' \(ms) is outside \(Timestamp.wireRange)"))
            }
            if let format = Format(format) { lastEarn[format] = Timestamp(milliseconds: ms) }
        }
        let streak = CivilDate(parsing: record.streakLastDay).map {
            Streak(lastDay: $0, days: max(1, record.streakDays))
        }
        let tier = TierID(record.tier).flatMap { program.tier($0) != nil ? $0 : nil } ?? program.tiers.tiers[0].id
        // The receipt's points for each budgeted promotion cap it, so the recomputation repeats the
        // edge's arithmetic whatever budget figure the edge had.
        var receiptPromotions: [PromotionID: Points] = [:]
        for component in record.promotionPoints {
            if let id = PromotionID(component.ruleID) {
                receiptPromotions[id, default: .zero] += Points(max(0, min(component.points, 1_000_000_000_000)))
            }
        }
        let caps = PromotionBudgets.caps(program, receipt: receiptPromotions)
        var input = EarnInput(
            merchant: context.merchant, amount: Money(minorUnits: record.amountMinor),
            lines: record.lines.map { line in
                SaleLine(
                    sku: line.sku, category: line.category.isEmpty ? nil : Category(line.category),
                    amount: Money(minorUnits: line.amountMinor))
            },
            occurredAt: context.occurredAt,
            member: MemberEarnState(
                tier: tier, birthMonth: record.birthMonth == 0 ? nil : record.birthMonth, lastEarnByFormat: lastEarn,
                streak: streak),
            promotionBudgetsLeft: caps, paidWithPoints: Money(minorUnits: record.paidWithPointsMinor))
        let statedResult: EarnResult
        do {
            statedResult = try EarnCalculator.earn(program: program, input: input)
        } catch {
            return .failure(Rejection(reason: .malformed, member: member, detail: "\(error)"))
        }
        if statedResult.total.value != record.totalPoints {
            mismatch(
                &context, member: member, detail: "edge computed \(record.totalPoints), Core \(statedResult.total)")
        }
        // DESIGN §8: the member state the edge states is checked against the gateway's record,
        // within the staleness an honest replica can have; what is not the member's is replaced.
        let checked = MemberStateCheck.check(
            stated: input.member, replicaPosition: record.replicaPosition,
            record: recordedState(named: stated, member: member, statedTier: tier, program: program),
            toleranceMilliseconds: clockSkewMaxMilliseconds)
        var result = statedResult
        if !checked.replaced.isEmpty {
            input.member = checked.state
            do {
                result = try EarnCalculator.earn(program: program, input: input)
            } catch {
                return .failure(Rejection(reason: .malformed, member: member, detail: "\(error)"))
            }
            conflict(
                .memberStateMismatch, transaction: context.pushed.transactionID, member: member,
                resolution:
                    "posted with the gateway's member state (\(result.total) points, not \(statedResult.total))",
                points: statedResult.total - result.total,
                detail:
                    "stated \(checked.replaced.joined(separator: ", ")) not the member's since position \(record.replicaPosition)"
            )
            effects.flags.insert(.memberStateMismatch)
            context.conflicts.append(.memberStateMismatch)
        }
        // The gateway's count of each promotion budget is authoritative: a bonus the edge gave
        // from a budget that has run out is posted with what is left, and recorded.
        if caps.values.contains(where: { $0 > .zero }) {
            // The budget left, and this site's quota: what it was given to give and has not.
            let budgetLeft = PromotionBudgets.left(program, given: view.promotionsGiven)
            let quotaLeft = budgetLeft.mapValues { _ in Points.zero }.merging(
                view.promotionQuotas.mapValues(\.outstanding)
            ) { $1 }
            let left = PromotionBudgets.smaller(budgetLeft, quotaLeft)
            let budgeted = PromotionBudgets.smaller(caps, left)
            if budgeted != caps {
                let uncut = result
                input.promotionBudgetsLeft = budgeted
                do {
                    result = try EarnCalculator.earn(program: program, input: input)
                } catch {
                    return .failure(Rejection(reason: .malformed, member: member, detail: "\(error)"))
                }
                if result.total < uncut.total {
                    conflict(
                        .promotionBudget, transaction: context.pushed.transactionID, member: member,
                        resolution: "posted with the budget left (\(result.total) points, not \(uncut.total))",
                        points: uncut.total - result.total,
                        detail:
                            "budget left: \(Self.figures(budgetLeft)); this site's quota left: \(Self.figures(quotaLeft))"
                    )
                    context.conflicts.append(.promotionBudget)
                }
            }
        }
        let given = PromotionBudgets.given(by: result)
        for promotion in program.earn.promotions where promotion.budget != nil {
            guard let points = given[promotion.id], points > .zero else { continue }
            view.promotionsGiven[promotion.id, default: .zero] += points
            effects.promotionsGiven[promotion.id, default: .zero] += points
            view.promotionQuotas[promotion.id, default: QuotaHolding()].given += points
            effects.promotionUse[PromotionUse(promotion: promotion.id, site: site, at: now), default: .zero] += points
        }
        // A referral waiting for the member's first purchase is paid with it, by the same merchant
        // (docs/rules.md, "Referral"): a purchase that earns base points.
        var postings = PostingRules.issue(
            member: member, merchant: context.merchant, components: result.components, program: program)
        var referralPaid: MemberID?
        if let pending = self.member(member).pendingReferrer, result.points(of: .base) > .zero {
            modify(member) { $0.pendingReferrer = nil }
            effects.referralsSettled.append(member)
            if let referrer = resolve(pending), referrer != member, program.earn.referralPoints > .zero {
                postings = Postings(
                    postings.lines
                        + referralPostings(referrer: referrer, points: program.earn.referralPoints, context).lines)
                referralPaid = referrer
            }
        }
        let position = post(
            context, kind: .earn, member: member, points: result.total, amount: input.amount, postings: postings)
        let expires = ExpiryCalculator.expiresAt(
            earnedAt: context.occurredAt, rules: program.expiry, timeZone: program.timeZone)
        if let referralPaid {
            createLot(
                context.pushed.transactionID + "-referral", member: referralPaid, earnedAt: context.occurredAt,
                expiresAt: expires, points: program.earn.referralPoints)
            touch(referralPaid, position: position)
        }
        createLot(
            context.pushed.transactionID, member: member, earnedAt: context.occurredAt, expiresAt: expires,
            points: result.total)
        updateEarnState(
            member: member, format: result.format, base: result.points(of: .base), program: program,
            version: context.version, at: context.occurredAt, position: position)
        return .success(result.total)
    }

    /// A referrer's bonus, paid by the referral's funder for a transaction of `context`'s merchant.
    func referralPostings(referrer: MemberID, points: Points, _ context: Context) -> Postings {
        PostingRules.issue(
            member: referrer, merchant: context.merchant,
            components: [EarnComponent(kind: .referral, points: points, description: "referral bonus")],
            program: context.program)
    }

    /// The gateway's record of a member, for checking the state an edge stated: the surviving
    /// record's current earn state and tier spells, and the birth months of the record the edge
    /// named and of the survivor. Spells matter only when the stated tier is not the current one.
    mutating func recordedState(named: MemberID, member: MemberID, statedTier: TierID, program: Program)
        -> RecordedMemberState
    {
        let record = self.member(member)
        var birthMonths: [Int?] = [record.birthMonth]
        if named != member, let own = view.members[named] { birthMonths.append(own.birthMonth) }
        let current = MemberEarnState(
            tier: record.tier, birthMonth: record.birthMonth, lastEarnByFormat: record.lastEarn, streak: record.streak)
        var spells: [TierSpell] = []
        if statedTier != current.tier {
            for id in named == member ? [member] : [named, member] {
                if !view.spellsLoaded.contains(id) { missingSpells.insert(id) }
                spells += view.tierSpells[id] ?? []
            }
        }
        return RecordedMemberState(current: current, tiers: spells, birthMonths: birthMonths)
    }

    /// The member's qualifying points in the rolling window ending today.
    mutating func qualifyingPoints(_ member: MemberID, program: Program, version: Int64) -> Points {
        let start: Int64
        if let known = windowStarts[version] {
            start = known
        } else {
            start = Self.windowStart(program, now: now)
            windowStarts[version] = start
        }
        let stored = view.qualifying[QualifyingWindow(member: member, start: start)] ?? .zero
        return max(.zero, stored + (qualifiedInBatch[member] ?? .zero))
    }

    /// The gateway's own view of the member after an earn: last earn per format, streak, tier upgrade.
    mutating func updateEarnState(
        member: MemberID, format: Format, base: Points, program: Program, version: Int64, at occurredAt: Timestamp,
        position: Int64
    ) {
        var record = self.member(member)
        if base > .zero {
            record.lastEarn[format] = max(record.lastEarn[format] ?? occurredAt, occurredAt)
            record.streak = EarnCalculator.advance(record.streak, to: program.timeZone.date(of: occurredAt)).0
        }
        let today: CivilDate
        if let known = todays[version] {
            today = known
        } else {
            today = program.timeZone.date(of: now)
            todays[version] = today
        }
        let current = TierStatus(tier: record.tier, reviewDate: record.reviewDate)
        let status = TierCalculator.afterPosting(
            program.tiers, status: current, qualifying: qualifyingPoints(member, program: program, version: version),
            on: today)
        if status.tier != current.tier {
            view.tierSpells[member, default: []].append(TierSpell(position: position, tier: status.tier))
            effects.tierSpells.append((member, position, status.tier))
        }
        record.tier = status.tier
        record.reviewDate = status.reviewDate
        record.changedPosition = position
        store(record)
    }

    /// After a refund took back qualifying points, a tier the member reached with them is not kept
    /// until the next review (`TierCalculator.afterReversal`). Needs the member's tier spells: when
    /// the view lacks them, the batch is decided again with them.
    mutating func recheckTier(_ member: MemberID, before originalPosition: Int64, context: Context, position: Int64) {
        guard view.spellsLoaded.contains(member) else {
            missingSpells.insert(member)
            return
        }
        let rules = context.program.tiers
        var record = self.member(member)
        let before = view.tierSpells[member]?.last(where: { $0.position < originalPosition })?.tier ?? rules.tiers[0].id
        let tier = TierCalculator.afterReversal(
            rules, current: record.tier,
            qualifying: qualifyingPoints(member, program: context.program, version: context.version), before: before)
        guard tier != record.tier else { return }
        view.tierSpells[member, default: []].append(TierSpell(position: position, tier: tier))
        effects.tierSpells.append((member, position, tier))
        record.tier = tier
        record.changedPosition = position
        store(record)
    }

    mutating func reverse(_ record: PushedTransaction.Reverse, _ context: inout Context) -> Result<Points, Rejection> {
        guard let stated = context.pushed.member, let member = resolve(stated),
            var original = view.originals[record.originalTransactionID], original.site == site
        else {
            return .failure(
                Rejection(
                    reason: .unknownOriginal, member: nil,
                    detail: "original '\(record.originalTransactionID)' is unknown at this site"))
        }
        // A reversal belongs to its original: its member (as merged since) and the merchant whose
        // till made it. Another member or merchant would move value between parties that never
        // dealt with each other; such a push is refused, and the refusal is a conflict to review.
        let owner = original.member.map { resolve($0) ?? $0 }
        guard owner == nil || owner == member, original.merchant == nil || original.merchant == context.merchant else {
            return .failure(
                Rejection(
                    reason: .unknownOriginal, member: member,
                    detail:
                        "original '\(record.originalTransactionID)' belongs to member \(owner.map { "\($0)" } ?? "?") "
                        + "and merchant \(original.merchant?.rawValue ?? "?"), not member \(member) and merchant "
                        + "\(context.merchant.rawValue)"))
        }
        let points: Points
        switch original.kind {
        case .earn:
            let state = EarnRefundState(
                originalAmount: original.amount, originalPoints: original.points,
                refundedAmount: original.refundedAmount, reversedPoints: -original.reversedPoints)
            guard state.refundedAmount < state.originalAmount else {
                return .failure(
                    Rejection(reason: .alreadyReversed, member: member, detail: "refunded in full already"))
            }
            let refund: (points: Points, amount: Money)
            do {
                refund = try EarnReversal.refund(state, amount: Money(minorUnits: record.amountMinor))
            } catch {
                return .failure(Rejection(reason: .malformed, member: member, detail: "\(error)"))
            }
            // The points the till withheld cash for (the member had spent them, as the edge knew)
            // are not taken back: the member paid for them in money.
            let withheld = min(max(.zero, Points(record.withheldPoints)), refund.points)
            if -(refund.points - withheld) != Points(record.points),
                receiptRefund(of: original, state: state, amount: record.amountMinor, program: context.program)
                    .map({ -($0 - withheld) }) != Points(record.points)
            {
                mismatch(
                    &context, member: member,
                    detail: "edge reversed \(record.points), Core \(-(refund.points - withheld))")
            }
            let taking = RefundSources.split(
                refund.points - withheld,
                ownLot: view.lots[member]?.first { $0.lotID == original.transactionID }?
                    .remaining ?? .zero,
                expired: original.expiredLeft, available: available(member))
            // What is taken back goes back to the earn's funders, in proportion to what each paid.
            let givenBack = PostingRules.giveBack(
                taking.fromOwnLot + taking.fromOtherLots + taking.fromExpired,
                funding: PostingRules.funding(of: original.postings, member: original.member ?? member),
                returned: original.returned, fallback: .issued(context.merchant))
            let position = post(
                context, kind: .reverse, member: member, points: -refund.points, amount: refund.amount,
                original: original.transactionID, postings: taking.postings(member: member, funders: givenBack),
                detail: "refund")
            for line in givenBack { original.returned[line.account, default: .zero] += line.points }
            consumeLots(
                member, points: taking.fromOwnLot + taking.fromOtherLots, position: position,
                first: original.transactionID)
            recheckTier(member, before: original.position, context: context, position: position)
            if taking.unrecovered > .zero {
                conflict(
                    .refundAfterSpend, transaction: context.pushed.transactionID, member: member,
                    resolution:
                        "\(taking.unrecovered) points the member had spent were refunded in cash, not withheld; "
                        + "not taken back: \(context.merchant) keeps paying for them",
                    points: taking.unrecovered)
                effects.flags.insert(.refundAfterSpend)
                context.conflicts.append(.refundAfterSpend)
            }
            original.expiredLeft -= taking.fromExpired
            original.refundedAmount += refund.amount
            original.reversedPoints += -refund.points
            original.statedReversedPoints?.append(record.points)
            points = -(taking.fromOwnLot + taking.fromOtherLots)
        case .redeem, .parking:
            guard original.reversals == 0 else {
                return .failure(Rejection(reason: .alreadyReversed, member: member, detail: "cancelled already"))
            }
            let postings = PostingRules.negation(of: Postings(original.postings))
            let position = post(
                context, kind: .reverse, member: member, points: postings.change(of: .member(member)), amount: .zero,
                original: original.transactionID, postings: postings, detail: "cancel")
            giveBackDraws(of: original, position: position)
            points = postings.change(of: .member(member))
        default:
            return .failure(
                Rejection(reason: .notReversible, member: member, detail: "a \(original.kind) cannot be reversed"))
        }
        original.reversals += 1
        view.originals[original.transactionID] = original
        return .success(points)
    }

    /// The refund an edge computes from its own receipts: in proportion to the points the original
    /// receipt gave, less the refunds it stated before. These differ from the posted figures when
    /// the gateway posted the earn with fewer points (a promotion budget spent, a member state
    /// replaced) before the edge heard of it; such a refund is honest, and is posted in proportion to
    /// the posted figures. Nil when the receipts are unknown.
    func receiptRefund(of original: OriginalRecord, state: EarnRefundState, amount: Int64, program: Program)
        -> Points?
    {
        // The receipts are the site's words: figures outside the program's bounds are not an
        // honest edge's, and must not reach the arithmetic (an extreme integer would trap).
        let bound = program.limits.pointsPerTransactionMax.value
        guard let receipt = original.statedPoints, (0...bound).contains(receipt),
            let stated = original.statedReversedPoints, stated.allSatisfy({ (-bound...bound).contains($0) })
        else { return nil }
        var edgeState = state
        edgeState.originalPoints = Points(receipt)
        edgeState.reversedPoints = -Points(stated.reduce(0, +))
        return try? EarnReversal.refund(edgeState, amount: Money(minorUnits: amount)).points
    }

    /// Figures per promotion as a conflict's detail shows them: `quay-dinner 150, …`.
    static func figures(_ points: [PromotionID: Points]) -> String {
        points.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}
