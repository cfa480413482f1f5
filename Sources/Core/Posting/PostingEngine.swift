/// Posts a site's pushed transactions by the written rules of DESIGN §6, in pure code: it reads a
/// `PostingView` loaded for the batch and comes to `PostingEffects`, which the store applies in
/// one database transaction. Transactions are folded in sequence order, each seeing the effects of
/// those before it; the result is deterministic for a given view, catalogue, batch and instant.
package struct PostingEngine: Sendable {
    package let catalogue: ProgramCatalogue
    package let site: SiteID
    package let now: Timestamp
    /// How long after a newer version is effective an edge may still use the previous one.
    package let programGraceMilliseconds: Int64
    /// How far an edge's clock may be from the gateway's (the tolerance on stated earn times).
    package let clockSkewMaxMilliseconds: Int64

    var view: PostingView
    var effects = PostingEffects()
    /// Qualifying points each member gained in this batch (all in the bucket of `now`).
    var qualifiedInBatch: [MemberID: Points] = [:]
    /// Members whose tier spells an earn needed but the view did not have: the store reads them and
    /// posts the batch again (what was decided without them is not applied).
    package internal(set) var missingSpells: Set<MemberID> = []
    /// The first qualifying bucket of each program version's window (computed once per batch).
    var windowStarts: [Int64: Int64] = [:]
    /// Today in each program version's time zone.
    var todays: [Int64: CivilDate] = [:]
    /// The transaction posted at each position of the batch a reversal may name.
    var drawingTransaction: [Int64: String] = [:]

    package init(
        view: PostingView, catalogue: ProgramCatalogue, site: SiteID, now: Timestamp,
        programGraceMilliseconds: Int64, clockSkewMaxMilliseconds: Int64
    ) {
        self.view = view
        self.catalogue = catalogue
        self.site = site
        self.now = now
        self.programGraceMilliseconds = programGraceMilliseconds
        self.clockSkewMaxMilliseconds = clockSkewMaxMilliseconds
        effects.position = view.position
        effects.lotNumber = view.lotNumber
    }

    /// The keys of what posting `batch` reads.
    package static func keys(for batch: [PushedTransaction], catalogue: ProgramCatalogue, now: Timestamp)
        -> PostingKeys
    {
        var keys = PostingKeys()
        var versions: Set<Int64> = []
        // The qualifying window of the version in force when `transaction` happened (once per
        // version): an earn moves the member's qualifying points, and a refund takes them back.
        func noteQualifyingWindow(of transaction: PushedTransaction) {
            let occurredAt = Timestamp(milliseconds: min(transaction.occurredAtMilliseconds, now.milliseconds))
            if let active = catalogue.active(at: occurredAt), versions.insert(active.version).inserted {
                keys.windowStarts.insert(windowStart(active.program, now: now))
            }
        }
        for transaction in batch {
            if let operation = transaction.operation {
                keys.receipts.insert(
                    ReceiptKey(merchant: transaction.merchantID, operation: operation, requestID: transaction.requestID)
                )
            }
            switch transaction.body {
            case .enrollment(let record):
                guard let member = transaction.member else { break }
                keys.members.insert(member)
                if let referrer = MemberID(record.referrerMemberID) { keys.members.insert(referrer) }
                if !record.phoneHash.isEmpty {
                    keys.phoneHashes.insert(record.phoneHash)
                    keys.enrolledPhones[member] = record.phoneHash
                }
            case .earn(let record):
                guard let member = transaction.member else { break }
                keys.members.insert(member)
                keys.earningMembers.insert(member)
                keys.statedTiers[member, default: []].insert(record.tier)
                noteQualifyingWindow(of: transaction)
            case .redeem(let spend), .parking(let spend):
                if !spend.allowanceID.isEmpty { keys.allowances.insert(spend.allowanceID) }
                guard let member = transaction.member else { break }
                keys.members.insert(member)
                keys.debitedMembers.insert(member)
                keys.holdTransactions.insert(transaction.transactionID)
            case .reverse(let record):
                keys.originals.insert(record.originalTransactionID)
                guard let member = transaction.member else { break }
                keys.members.insert(member)
                keys.debitedMembers.insert(member)
                // A refund re-checks the tier: the member's qualifying points and tier spells are
                // needed (loaded up front rather than by a second pass).
                keys.earningMembers.insert(member)
                keys.spellMembers.insert(member)
                noteQualifyingWindow(of: transaction)
            case .voucherUse(let record): keys.vouchers.insert(record.voucherID)
            case .allowanceReturn(let record):
                keys.allowances.insert(record.allowanceID)
                if let member = transaction.member { keys.members.insert(member) }
            case nil: break
            }
        }
        return keys
    }

    /// The first bucket of the rolling qualifying window ending today.
    package static func windowStart(_ program: Program, now: Timestamp) -> Int64 {
        let start = TierCalculator.windowStart(
            program.tiers, timeZone: program.timeZone, endingOn: program.timeZone.date(of: now))
        // Window starts are local midnights, which fall on bucket boundaries.
        return start.milliseconds / QualifyingBucket.milliseconds * QualifyingBucket.milliseconds
    }

    // MARK: One transaction

    struct Context {
        var pushed: PushedTransaction
        var merchant: MerchantID
        var program: Program
        var version: Int64
        var occurredAt: Timestamp
        var receipt: ReceiptKey?
        var conflicts: [ConflictKind]
    }

    /// Posts one pushed transaction (the next of the site's sequence).
    package mutating func post(_ pushed: PushedTransaction) -> PostingResult {
        if pushed.undecodable {
            return reject(
                .malformed, member: nil, pushed: pushed, receipt: nil,
                detail: "the payload does not decode or names another transaction")
        }
        guard let merchant = MerchantID(pushed.merchantID), TransactionID(pushed.transactionID) != nil,
            RequestID(pushed.requestID) != nil, let body = pushed.body, let operation = pushed.operation
        else {
            return reject(
                .malformed, member: nil, pushed: pushed, receipt: nil,
                detail: "missing or malformed merchant, ids or body")
        }
        // An instant outside the wire range would overflow the date arithmetic below.
        guard Timestamp.wireRange.contains(pushed.occurredAtMilliseconds) else {
            return reject(
                .malformed, member: nil, pushed: pushed, receipt: nil,
                detail: "occurred_at_ms \(pushed.occurredAtMilliseconds) is outside \(Timestamp.wireRange)")
        }
        // A time after the gateway's clock is taken as now; one before the site's previous
        // transaction by more than the clock tolerance is raised to that bound and flagged: a site
        // may not date a transaction into a past promotion, or make its points expire later.
        var occurredAt = Timestamp(milliseconds: min(pushed.occurredAtMilliseconds, now.milliseconds))
        var conflicts: [ConflictKind] = []
        if let last = view.siteLastOccurredAt {
            let floor = Timestamp(milliseconds: last.milliseconds - clockSkewMaxMilliseconds)
            if occurredAt < floor {
                conflict(
                    .clockSkew, transaction: pushed.transactionID, member: nil,
                    resolution: "posted as happening at \(floor.milliseconds) ms",
                    detail:
                        "occurred_at_ms \(pushed.occurredAtMilliseconds) is before the site's previous transaction "
                        + "(\(last.milliseconds) ms) by more than clock_skew_max_ms")
                effects.flags.insert(.clockSkew)
                conflicts.append(.clockSkew)
                occurredAt = floor
            }
        }
        view.siteLastOccurredAt = max(view.siteLastOccurredAt ?? occurredAt, occurredAt)
        // The version in force when it happened; the edge's own version must be known and current.
        guard let active = catalogue.active(at: occurredAt) else {
            preconditionFailure("the gateway runs without a program")
        }
        if pushed.programVersion != active.version {
            let stated = catalogue.versions.first { $0.version == pushed.programVersion }
            let next = catalogue.versions.first { $0.version > pushed.programVersion }
            let withinGrace =
                stated != nil
                && (next.map { occurredAt.milliseconds < $0.effectiveAt.milliseconds + programGraceMilliseconds }
                    ?? true)
            if !withinGrace {
                conflict(
                    .programVersion, transaction: pushed.transactionID, member: nil,
                    resolution: "posted with version \(active.version), active at occurred_at",
                    detail: "edge used version \(pushed.programVersion)")
                effects.flags.insert(.programVersion)
                conflicts.append(.programVersion)
            }
        }
        let program = active.program
        guard let (_, merchantSite) = program.merchant(merchant), merchantSite.id == site else {
            return reject(
                .merchantNotAtSite, member: nil, pushed: pushed, receipt: nil,
                detail: "merchant '\(merchant)' is not at site '\(site)'")
        }
        // First posted wins: the receipt is claimed here, before the kind's own checks.
        let receipt = ReceiptKey(merchant: merchant.rawValue, operation: operation, requestID: pushed.requestID)
        if let first = view.receipts[receipt], first != pushed.transactionID {
            return reject(
                .duplicateReceipt, member: nil, pushed: pushed, receipt: nil,
                detail: "receipt '\(pushed.requestID)' was first posted as \(first)")
        }
        view.receipts[receipt] = pushed.transactionID
        var context = Context(
            pushed: pushed, merchant: merchant, program: program, version: active.version, occurredAt: occurredAt,
            receipt: receipt, conflicts: conflicts)
        let outcome: Result<Points, Rejection>
        switch body {
        case .enrollment(let record): outcome = enroll(record, &context)
        case .earn(let record): outcome = earn(record, &context)
        case .redeem(let record): outcome = spend(record, kind: .redeem, &context)
        case .parking(let record): outcome = spend(record, kind: .parking, &context)
        case .reverse(let record): outcome = reverse(record, &context)
        case .voucherUse(let record): outcome = useVoucher(record, &context)
        case .allowanceReturn(let record): outcome = returnPushed(record, &context)
        }
        switch outcome {
        case .success(let points):
            let result = PostingResult(
                outcome: context.conflicts.isEmpty ? .posted : .postedWithConflict,
                reason: context.conflicts.map(\.rawValue).joined(separator: ","), points: points)
            effects.entries[effects.entries.count - 1].result = result
            return result
        case .failure(let rejection):
            return reject(
                rejection.reason, member: rejection.member, pushed: pushed, receipt: receipt, detail: rejection.detail)
        }
    }

    /// Why a transaction that passed the common checks is not posted.
    struct Rejection: Error {
        var reason: RejectionReason
        var member: MemberID?
        var detail: String
    }

    private mutating func reject(
        _ reason: RejectionReason, member: MemberID?, pushed: PushedTransaction, receipt: ReceiptKey?, detail: String
    ) -> PostingResult {
        conflict(
            reason == .duplicateReceipt ? .duplicateReceipt : .rejected, transaction: pushed.transactionID,
            member: member, resolution: "rejected: \(reason)", detail: detail)
        // The hold placed for a rejected redemption has nothing left to pay for: released now
        // rather than keeping the member's points until it expires.
        if let index = view.holds.firstIndex(where: { $0.transactionID == pushed.transactionID }) {
            effects.releasedHolds.append(view.holds[index].holdID)
            view.holds.remove(at: index)
        }
        let result = PostingResult(outcome: .rejected, reason: reason.rawValue, points: .zero)
        effects.entries.append(
            LedgerEntry(
                position: nextPosition(), transactionID: pushed.transactionID, kind: nil, site: site,
                siteSequence: pushed.sequence, requestID: pushed.requestID,
                occurredAt: Timestamp(milliseconds: min(pushed.occurredAtMilliseconds, now.milliseconds)),
                postedAt: now, programVersion: pushed.programVersion, receipt: receipt,
                statedPoints: pushed.statedPoints, result: result))
        return result
    }

    // MARK: Ledger writes

    mutating func nextPosition() -> Int64 {
        view.position += 1
        effects.position = view.position
        return view.position
    }

    mutating func conflict(
        _ kind: ConflictKind, transaction: String?, member: MemberID?, resolution: String, points: Points = .zero,
        detail: String = ""
    ) {
        effects.conflicts.append(
            ConflictEntry(
                kind: kind, site: site, transactionID: transaction, member: member, resolution: resolution,
                points: points, detail: detail))
    }

    mutating func mismatch(_ context: inout Context, member: MemberID, detail: String) {
        conflict(
            .pointsMismatch, transaction: context.pushed.transactionID, member: member,
            resolution: "posted with Core's result", detail: detail)
        effects.flags.insert(.pointsMismatch)
        context.conflicts.append(.pointsMismatch)
    }

    /// Writes a transaction of the batch and its postings; returns its position. No member account
    /// may go below zero. Every member of a transaction other than an earn is republished (an earn
    /// rewrites its member with the earn state anyway).
    mutating func post(
        _ context: Context, kind: TransactionKind, member: MemberID, points: Points, amount: Money,
        original: String? = nil, postings: Postings, detail: String = ""
    ) -> Int64 {
        let position = write(
            LedgerEntry(
                position: 0, transactionID: context.pushed.transactionID, kind: kind, site: site,
                siteSequence: context.pushed.sequence, merchant: context.merchant.rawValue, member: member,
                requestID: context.pushed.requestID, original: original, points: points, amount: amount,
                occurredAt: context.occurredAt, postedAt: now, programVersion: context.version, detail: detail,
                postings: postings.lines, receipt: context.receipt, statedPoints: context.pushed.statedPoints))
        // A transaction a later reversal of the batch names is one it can find.
        if view.originalIDs.contains(context.pushed.transactionID) {
            drawingTransaction[position] = context.pushed.transactionID
            view.originals[context.pushed.transactionID] = OriginalRecord(
                transactionID: context.pushed.transactionID, position: position, kind: kind, site: site, member: member,
                merchant: context.merchant, points: points, amount: amount, statedPoints: context.pushed.statedPoints,
                postings: postings.lines)
        }
        if kind == .earn || (kind == .reverse && points < .zero && detail == "refund") {
            effects.qualifying[QualifyingBucket(member: member, at: now), default: .zero] += points
            qualifiedInBatch[member, default: .zero] += points
        }
        return position
    }

    /// Writes a ledger row at the next position, on its member's chain, with its postings' balance
    /// changes; returns the position. The postings sum to zero (`Postings` guarantees it) and no
    /// member account may go below zero. Every member of a transaction other than an earn is
    /// republished (an earn rewrites its member with the earn state anyway).
    mutating func write(_ draft: LedgerEntry) -> Int64 {
        var entry = draft
        let position = nextPosition()
        entry.position = position
        if let member = entry.member {
            entry.memberPrevious = modify(member) { record in
                defer { record.lastPosition = position }
                return record.lastPosition
            }
        }
        effects.entries.append(entry)
        var touched: [MemberID] = entry.member.map { [$0] } ?? []
        for line in entry.postings {
            if case .member(let id) = line.account {
                let balance = modify(id) { record in
                    record.balance += line.points
                    return record.balance
                }
                precondition(balance >= .zero, "member \(id) would go to \(balance)")
                touched.append(id)
            } else {
                effects.accountDeltas[line.account, default: .zero] += line.points
            }
        }
        if entry.kind != .earn {
            for id in touched { touch(id, position: position) }
        }
        return position
    }

    func member(_ id: MemberID) -> MemberRecord {
        guard let record = view.members[id] else { preconditionFailure("member \(id) is not in the view") }
        return record
    }

    /// Replaces a member's record; the effects carry every member changed, as the batch leaves it.
    mutating func store(_ record: MemberRecord) {
        var record = record
        record.changed = true
        view.members[record.id] = record
    }

    /// Changes a member's record in place.
    mutating func modify<T>(_ id: MemberID, _ change: (inout MemberRecord) -> T) -> T {
        guard view.members[id] != nil else { preconditionFailure("member \(id) is not in the view") }
        return change(&view.members[id]!.markedChanged)
    }

    mutating func touch(_ id: MemberID, position: Int64) {
        guard view.members[id] != nil else { return }
        modify(id) { $0.changedPosition = position }
    }

    /// The member a member id stands for now (following merges); nil when unknown.
    func resolve(_ id: MemberID) -> MemberID? { view.resolve(id) }

    /// Points of a member's balance held by active, unexpired holds other than `excluding`.
    func held(_ member: MemberID, excluding hold: String? = nil) -> Points {
        HoldRules.held(view.holds, member: member, now: now, excluding: hold)
    }

    /// What a member may spend: balance less other holds.
    func available(_ member: MemberID, excluding hold: String? = nil) -> Points {
        self.member(member).balance - held(member, excluding: hold)
    }

    // MARK: Lots

    mutating func createLot(
        _ id: String, member: MemberID, earnedAt: Timestamp, expiresAt: Timestamp, points: Points
    ) {
        guard points > .zero else { return }
        view.lotNumber += 1
        effects.lotNumber = view.lotNumber
        var owner = self.member(member)
        let lot = LotRecord(
            number: view.lotNumber, lotID: id, member: member, expiresAt: expiresAt, remaining: points,
            next: owner.lotsHead)
        owner.lotsHead = lot.number
        store(owner)
        effects.newLots[lot.number] = NewLot(lot: lot, earnedAt: earnedAt, original: points)
        view.lots[member]?.insert(lot, at: 0)
    }

    /// Sets where a lot's chain goes on.
    mutating func setNext(_ lot: Int64, _ next: Int64?) {
        if effects.newLots[lot] != nil {
            effects.newLots[lot]?.lot.next = next
        } else {
            effects.lotNext[lot] = .some(next)
        }
    }

    /// Changes a lot's remaining points by `delta`, recording the draw (−delta) at `position`. A lot
    /// left with nothing leaves its member's chain; a lot given points back joins it again.
    mutating func changeLot(_ lot: LotRecord, by delta: Points, position: Int64) {
        if effects.newLots[lot.number] != nil {
            effects.newLots[lot.number]?.lot.remaining += delta
        } else {
            effects.lotRemaining[lot.number, default: .zero] += delta
        }
        effects.lotDraws.append((position, lot.number, -delta))
        if let original = drawingTransaction[position], view.originals[original] != nil {
            view.originals[original]?.draws.append((lot.number, -delta))
        }
        var owner = member(lot.member)
        guard var chain = view.lots[lot.member] else {
            preconditionFailure("lots of \(lot.member) are not in the view")
        }
        var updated: LotRecord
        if let index = chain.firstIndex(where: { $0.number == lot.number }) {
            chain[index].remaining += delta
            updated = chain[index]
            if updated.remaining == .zero {
                if index == 0 {
                    owner.lotsHead = updated.next
                    store(owner)
                } else {
                    chain[index - 1].next = updated.next
                    setNext(chain[index - 1].number, updated.next)
                }
                updated.next = nil
                setNext(lot.number, nil)
                chain.remove(at: index)
            }
        } else {
            // Not on the chain: a lot that had nothing left, given points back by a cancellation.
            updated = lot
            updated.remaining += delta
            precondition(updated.remaining > .zero, "a lot off its member's chain was drawn from")
            updated.next = owner.lotsHead
            setNext(lot.number, owner.lotsHead)
            owner.lotsHead = lot.number
            store(owner)
            chain.insert(updated, at: 0)
        }
        view.lots[lot.member] = chain
        // A lot off the chain stays findable for a cancellation later in the batch.
        if updated.remaining == .zero || view.drawnLots[lot.number] != nil { view.drawnLots[lot.number] = updated }
    }

    /// Takes `points` from the member's lots, soonest expiry first, recording the draws at `position`.
    mutating func consumeLots(_ member: MemberID, points: Points, position: Int64, first lotID: String? = nil) {
        guard points > .zero else { return }
        guard var lots = view.lots[member] else { preconditionFailure("lots of \(member) are not in the view") }
        var points = points
        // A refund takes back the refunded earn's own lot first: otherwise buying and returning
        // before each expiry date would drain the lots about to expire and keep points for ever.
        if let lotID, let own = lots.first(where: { $0.lotID == lotID && $0.remaining > .zero }) {
            let taken = min(own.remaining, points)
            changeLot(own, by: -taken, position: position)
            points -= taken
            guard points > .zero, let rest = view.lots[member] else { return }
            lots = rest
        }
        let ordered = lots.filter { $0.remaining > .zero }.sorted(by: LotRecord.consumedBefore)
        // LotConsumption sees each lot by its rank in consumption order.
        let ranked = ordered.enumerated().map { rank, lot in
            Lot(id: TransactionID(value: UInt128(rank)), remaining: lot.remaining, expiresAt: lot.expiresAt)
        }
        let draws: [LotDraw]
        do {
            draws = try LotConsumption.consume(ranked, points: points)
        } catch {
            preconditionFailure("lots of \(member) hold \(error.available), less than its balance needs (\(points))")
        }
        for draw in draws { changeLot(ordered[Int(draw.lot.value)], by: -draw.points, position: position) }
    }

    /// Gives a cancelled transaction's lot draws back to their lots, recorded at `position`.
    mutating func giveBackDraws(of original: OriginalRecord, position: Int64) {
        for draw in original.draws {
            guard let owner = view.drawnLots[draw.lot]?.member ?? original.member,
                let lot = view.lots[owner]?.first(where: { $0.number == draw.lot }) ?? view.drawnLots[draw.lot]
            else { preconditionFailure("lot \(draw.lot) of a cancelled transaction is not in the view") }
            changeLot(lot, by: draw.points, position: position)
        }
    }

    // MARK: Finish

    /// The effects of every transaction posted so far.
    package func finish() -> PostingEffects {
        var effects = self.effects
        for (id, record) in view.members where record.changed { effects.members[id] = record }
        return effects
    }
}
