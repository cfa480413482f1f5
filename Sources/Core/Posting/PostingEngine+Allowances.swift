/// An allowance as the ledger keeps it (docs/protocol.md, "Allowances and promotion quotas").
package struct AllowanceRecord: Sendable, Equatable {
    package enum Status: String, Sendable, CaseIterable {
        /// The site may spend what is left until its stop instant.
        case active
        /// The site gave back what was left.
        case returned
        /// The gateway took back what was left.
        case reclaimed
    }

    package var allowanceID: String
    package var site: SiteID
    package var member: MemberID
    package var granted: Points
    /// Spent at the site (posted from `escrow(site)`).
    package var spent: Points
    /// Given back by the site or reclaimed by the gateway.
    package var released: Points
    package var grantedAt: Timestamp
    package var leaseUntil: Timestamp
    package var status: Status

    package init(
        allowanceID: String, site: SiteID, member: MemberID, granted: Points, spent: Points = .zero,
        released: Points = .zero, grantedAt: Timestamp, leaseUntil: Timestamp, status: Status = .active
    ) {
        self.allowanceID = allowanceID
        self.site = site
        self.member = member
        self.granted = granted
        self.spent = spent
        self.released = released
        self.grantedAt = grantedAt
        self.leaseUntil = leaseUntil
        self.status = status
    }

    /// What the allowance still reserves: in `escrow(site)` for the member.
    package var left: Points { granted - spent - released }
}

/// Why the ledger did not grant, return or reclaim an allowance; nothing was written.
package enum AllowanceLedgerRefusal: Error, Equatable, Sendable {
    case unknownMember
    /// The site is not in the latest program.
    case unknownSite(SiteID)
    /// The program's rules refuse the terms (docs/rules.md, "Allowances").
    case terms(AllowanceRefusal)
    case unknownAllowance(String)
    /// The allowance is another site's.
    case otherSite(String)
    /// The allowance was returned or reclaimed already.
    case notActive(String, AllowanceRecord.Status)
    /// A return of more than the allowance has left.
    case moreThanLeft(asked: Points, left: Points)
    /// The member has an active allowance at the site already.
    case alreadyActive(String)

    /// A message for the caller, naming the problem.
    package var message: String {
        switch self {
        case .unknownMember: "unknown member"
        case .unknownSite(let site): "site '\(site)' is not in the program"
        case .terms(let refusal): refusal.message
        case .unknownAllowance(let id): "no allowance '\(id)'"
        case .otherSite(let id): "allowance '\(id)' is another site's"
        case .notActive(let id, let status): "allowance '\(id)' is \(status.rawValue) already"
        case .moreThanLeft(let asked, let left):
            "\(asked.value) points returned; the allowance has \(left.value) left"
        case .alreadyActive(let id): "the member has an active allowance '\(id)' at this site already"
        }
    }
}

/// Allowances (escrow), decided like the ledger's other transactions: on the view, as effects.
/// The member's points stay in their lots throughout: a grant or a return moves points between
/// the member's account and `escrow(site)`, not out of the member's lots, so the lots of a member
/// sum to their account plus what their active allowances have left, and the rows of a grant, a
/// return or a reclaim change the member's points by nothing (a member's history shows the spend,
/// not the reservation).
extension PostingEngine {
    /// Grants an allowance at `site` on `trigger`: the terms by the latest program's rules for what
    /// the member may spend now (balance less holds), `points` and `leaseUntil` when asked for;
    /// posts them from `member(m)` to `escrow(site)`. The view must hold the member's active
    /// allowances (`PostingKeys.allowanceMembers`): a member has at most one at a site.
    package mutating func grantAllowance(
        member id: MemberID, site: SiteID, trigger: AllowanceTrigger, points: Points? = nil,
        leaseUntil: Timestamp? = nil, allowanceID: String, transactionID: String, requestID: String? = nil,
        receipt: ReceiptKey? = nil, detail: String
    ) -> Result<AllowanceRecord, AllowanceLedgerRefusal> {
        guard let member = resolve(id) else { return .failure(.unknownMember) }
        guard let latest = catalogue.latest, let place = latest.program.site(site) else {
            return .failure(.unknownSite(site))
        }
        if let active = view.allowances.values.first(where: {
            $0.site == site && $0.status == .active && resolve($0.member) == member
        }) {
            return .failure(.alreadyActive(active.allowanceID))
        }
        let terms: AllowanceTerms
        switch latest.program.allowances.terms(
            at: place, trigger: trigger, available: available(member), points: points, leaseUntil: leaseUntil, now: now)
        {
        case .success(let granted): terms = granted
        case .failure(let refusal): return .failure(.terms(refusal))
        }
        _ = write(
            LedgerEntry(
                position: 0, transactionID: transactionID, kind: .allowanceGrant, site: site, member: member,
                requestID: requestID, points: .zero, occurredAt: now, postedAt: now,
                programVersion: latest.version, detail: detail,
                postings: Postings([Posting(.member(member), -terms.points), Posting(.escrow(site), terms.points)])
                    .lines,
                receipt: receipt))
        let record = AllowanceRecord(
            allowanceID: allowanceID, site: site, member: member, granted: terms.points, grantedAt: now,
            leaseUntil: terms.leaseUntil)
        keep(record)
        return .success(record)
    }

    /// Gives back `points` of an active allowance of `site` (`escrow(site)` → `member(m)`), at
    /// most what it has left; the allowance is returned once nothing is left.
    package mutating func returnAllowance(
        _ allowanceID: String, site: SiteID, points: Points, transactionID: String, detail: String
    ) -> Result<AllowanceRecord, AllowanceLedgerRefusal> {
        guard var record = view.allowances[allowanceID] else { return .failure(.unknownAllowance(allowanceID)) }
        guard record.site == site else { return .failure(.otherSite(allowanceID)) }
        guard record.status == .active else { return .failure(.notActive(allowanceID, record.status)) }
        guard points >= .zero, points <= record.left else {
            return .failure(.moreThanLeft(asked: points, left: record.left))
        }
        release(&record, points: points, kind: .allowanceReturn, transactionID: transactionID, detail: detail)
        if record.left == .zero { record.status = .returned }
        keep(record)
        return .success(record)
    }

    /// Takes back what an active allowance has left (`escrow(site)` → `member(m)`) when the
    /// program's rules allow it at this instant (`AllowanceRules.mayReclaim`, with the last time
    /// the site caught up); nil when they do not yet.
    package mutating func reclaimAllowance(
        _ allowanceID: String, caughtUpAt: Timestamp?, transactionID: String, detail: String
    ) -> Result<AllowanceRecord?, AllowanceLedgerRefusal> {
        guard var record = view.allowances[allowanceID] else { return .failure(.unknownAllowance(allowanceID)) }
        guard record.status == .active else { return .failure(.notActive(allowanceID, record.status)) }
        let rules = catalogue.latest?.program.allowances ?? .none
        guard rules.mayReclaim(leaseUntil: record.leaseUntil, caughtUpAt: caughtUpAt, now: now) else {
            return .success(nil)
        }
        release(&record, points: record.left, kind: .allowanceReclaim, transactionID: transactionID, detail: detail)
        record.status = .reclaimed
        keep(record)
        return .success(record)
    }

    /// A site's return of what an allowance had left, pushed in its outbox: given back like an
    /// operator's return. An allowance that has ended already (reclaimed after its lease, or ended
    /// by an operator) has nothing to give back: the return posts nothing.
    mutating func returnPushed(_ record: PushedTransaction.AllowanceReturn, _ context: inout Context) -> Result<
        Points, Rejection
    > {
        let points = Points(record.points)
        guard let member = context.pushed.member.flatMap(resolve),
            var allowance = view.allowances[record.allowanceID], allowance.site == site,
            resolve(allowance.member) == member
        else {
            return .failure(
                Rejection(
                    reason: .allowanceReturn, member: context.pushed.member,
                    detail: "no allowance '\(record.allowanceID)' of this site for member '\(record.memberID)'"))
        }
        guard points > .zero, allowance.status != .active || points <= allowance.left else {
            return .failure(
                Rejection(
                    reason: .allowanceReturn, member: member,
                    detail: "\(record.points) points given back; the allowance has \(allowance.left.value) left"))
        }
        let transaction = context.pushed.transactionID
        if allowance.status == .active {
            release(
                &allowance, points: points, kind: .allowanceReturn, transactionID: transaction, pushed: context,
                detail: "given back by the site")
            if allowance.left == .zero { allowance.status = .returned }
            keep(allowance)
        } else {
            release(
                &allowance, points: .zero, kind: .allowanceReturn, transactionID: transaction, pushed: context,
                detail: "the allowance was \(allowance.status.rawValue) already; nothing given back")
        }
        return .success(.zero)
    }

    /// Posts `points` of `record` back from `escrow(site)` to its member (the member it was
    /// merged into, if any); as the site's pushed transaction when `pushed` is given.
    private mutating func release(
        _ record: inout AllowanceRecord, points: Points, kind: TransactionKind, transactionID: String,
        pushed: Context? = nil, detail: String
    ) {
        let member = resolve(record.member) ?? record.member
        let postings =
            points == .zero
            ? [] : Postings([Posting(.escrow(record.site), -points), Posting(.member(member), points)]).lines
        _ = write(
            LedgerEntry(
                position: 0, transactionID: transactionID, kind: kind, site: record.site,
                siteSequence: pushed?.pushed.sequence, merchant: pushed?.merchant.rawValue, member: member,
                requestID: pushed?.pushed.requestID, points: .zero, occurredAt: pushed?.occurredAt ?? now,
                postedAt: now,
                programVersion: pushed?.version ?? catalogue.latest?.version ?? 0, detail: detail, postings: postings,
                receipt: pushed?.receipt))
        record.released += points
    }

    /// An allowance of the view (as the batch has left it so far).
    package func allowance(_ id: String) -> AllowanceRecord? { view.allowances[id] }

    /// Keeps an allowance's new state in the view and the effects.
    mutating func keep(_ record: AllowanceRecord) {
        view.allowances[record.allowanceID] = record
        effects.allowances[record.allowanceID] = record
    }
}
