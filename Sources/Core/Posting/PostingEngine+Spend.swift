/// Redemptions and parking payments: the points the edge took, from the allowance it names, the
/// member, and (beyond what the member has) the site's offline risk.
extension PostingEngine {
    /// A redemption or parking payment: consumes the hold placed for its transaction, if any, pays
    /// the part the spend names of an allowance from it (`allowanceShare`), and takes the rest
    /// from what the member has (less other holds); what is still missing goes to
    /// offline_risk(site).
    mutating func spend(_ record: PushedTransaction.Spend, kind: TransactionKind, _ context: inout Context) -> Result<
        Points, Rejection
    > {
        let points = Points(record.points)
        let amount = Money(minorUnits: record.amountMinor)
        guard let stated = context.pushed.member, let member = resolve(stated) else {
            return .failure(
                Rejection(reason: .unknownMember, member: nil, detail: "member '\(record.memberID)' is unknown"))
        }
        guard points >= .zero, points.value <= context.program.limits.pointsPerTransactionMax.value else {
            return .failure(Rejection(reason: .malformed, member: member, detail: "points \(points) out of range"))
        }
        guard (0...points.value).contains(record.allowancePoints),
            record.allowanceID.isEmpty == (record.allowancePoints == 0)
        else {
            return .failure(
                Rejection(
                    reason: .malformed, member: member,
                    detail:
                        "allowance_points \(record.allowancePoints) with allowance_id '\(record.allowanceID)' (0 to points, and both or neither)"
                ))
        }
        // The hold placed for this very transaction pays for it, whether or not the edge heard the
        // answer: an authorisation answer lost past the edge's deadline leaves the hold at the
        // gateway and sends the same transaction down the offline path. Those points were kept for
        // this transaction; counting them as someone else's would book the member's own points to
        // the site's offline_risk.
        if let index = view.holds.firstIndex(where: { $0.transactionID == context.pushed.transactionID }) {
            effects.consumedHolds.append(view.holds[index].holdID)
            view.holds.remove(at: index)
        }
        // The allowance's part is paid from escrow(site); the rest as the authorisation said.
        let fromEscrow = allowanceShare(record, member: member, &context)
        let available = available(member)
        let (postings, shortfall) = PostingRules.redemption(
            member: member, merchant: context.merchant, site: site, points: points, available: available,
            fromEscrow: fromEscrow)
        let change = postings.change(of: .member(member))
        // The member's points went down by both parts (escrowed points are still the member's).
        let position = post(
            context, kind: kind, member: member, points: change - fromEscrow, amount: amount, postings: postings)
        consumeLots(member, points: fromEscrow - change, position: position)
        if shortfall > .zero {
            conflict(
                .offlineOverdraw, transaction: context.pushed.transactionID, member: member,
                resolution:
                    "member taken to \(available - (points - shortfall)) points; \(shortfall) booked to offline_risk(\(site))",
                points: shortfall)
            effects.flags.insert(.offlineOverdraw)
            context.conflicts.append(.offlineOverdraw)
        }
        return .success(change - fromEscrow)
    }

    /// The part of a pushed spend its allowance pays: what the spend names, at most what the
    /// allowance has left, when it is an active allowance of this site for this member; the
    /// allowance is charged with it. What it cannot pay is left to the spend's authorisation (the
    /// floor limit) with a conflict: `allowance_reclaimed` when it was returned or reclaimed
    /// already, `allowance_overspent` otherwise.
    mutating func allowanceShare(_ spend: PushedTransaction.Spend, member: MemberID, _ context: inout Context)
        -> Points
    {
        let stated = Points(spend.allowancePoints)
        guard stated > .zero else { return .zero }
        var record = view.allowances[spend.allowanceID]
        if let found = record, found.site != site || resolve(found.member) != member { record = nil }
        var paid = Points.zero
        if var active = record, active.status == .active {
            paid = min(stated, active.left)
            active.spent += paid
            keep(active)
        }
        if paid < stated {
            let kind: ConflictKind =
                if let record, record.status != .active { .allowanceReclaimed } else { .allowanceOverspent }
            conflict(
                kind, transaction: context.pushed.transactionID, member: member,
                resolution:
                    "\((stated - paid).value) of the \(stated.value) points named on allowance '\(spend.allowanceID)' posted as a floor-limit redemption",
                points: stated - paid)
            context.conflicts.append(kind)
            // An allowance ended by the gateway or an operator is not the site's doing; spending
            // more than it had, or another's, is.
            if kind == .allowanceOverspent { effects.flags.insert(.allowanceOverspent) }
        }
        return paid
    }
}
