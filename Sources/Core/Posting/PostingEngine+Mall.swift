/// Why a cancellation of a mall order was not booked.
package enum OrderCancelRefusal: Error, Equatable, Sendable {
    /// The order's ledger transaction is not in the view, or is not an order.
    case unknownOrder
    /// It was cancelled before.
    case alreadyCancelled
}

/// The points mall's transactions, booked by the gateway: an order takes the member's points to
/// the item's sponsor (`redeemed:M` or `platform_redeemed`), a cancellation gives them back to the
/// lots they came from.
extension PostingEngine {
    /// What an order reads of the member in the view: tier and points it may spend (balance less
    /// holds); nil when the member is unknown. Follows merges.
    package func orderingMember(_ id: MemberID) -> (member: MemberID, tier: TierID, available: Points)? {
        guard let member = resolve(id) else { return nil }
        return (member, self.member(member).tier, available(member))
    }

    /// Decides an order of `quantity` units of `item` by `OrderRules` on the store's reads
    /// (`stock`: units sold and adjusted; `memberHolds`: units the member holds) and, when it
    /// passes, books it: member → the sponsor's account, drawn from the lots that expire soonest.
    /// Returns the member it was booked to (after merges), the points taken and the ledger position.
    package mutating func order(
        member id: MemberID, item: CatalogItem, quantity: Int64, stock: (sold: Int64, adjusted: Int64),
        memberHolds: Int64, transactionID: String, requestID: String, detail: String
    ) -> Result<(member: MemberID, points: Points, position: Int64), OrderRefusal> {
        guard let (member, tier, available) = orderingMember(id) else { return .failure(.unknownMember) }
        let inputs = OrderRules.Inputs(
            sold: stock.sold, adjusted: stock.adjusted, memberHolds: memberHolds, tier: tier, available: available)
        switch OrderRules.decide(item, quantity: quantity, inputs: inputs, now: now) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let points):
            let position = write(
                LedgerEntry(
                    position: 0, transactionID: transactionID, kind: .order, merchant: item.sponsor.merchant?.rawValue,
                    member: member, requestID: requestID, points: -points, occurredAt: now, postedAt: now,
                    programVersion: catalogue.latest?.version ?? 0, detail: detail,
                    postings: Postings([Posting(.member(member), -points), Posting(item.sponsor.account, points)])
                        .lines))
            consumeLots(member, points: points, position: position)
            return .success((member, points, position))
        }
    }

    /// Cancels the order booked as `orderTransaction` (in the view's originals): its postings are
    /// reversed and its lot draws given back. Returns the member credited, the points and the
    /// cancellation's ledger position.
    package mutating func cancelOrder(
        orderTransaction: String, transactionID: String, requestID: String, detail: String
    )
        -> Result<(member: MemberID, points: Points, position: Int64), OrderCancelRefusal>
    {
        guard var original = view.originals[orderTransaction], original.kind == .order, let owner = original.member,
            let member = resolve(owner)
        else { return .failure(.unknownOrder) }
        guard original.reversals == 0 else { return .failure(.alreadyCancelled) }
        let postings = PostingRules.negation(of: Postings(original.postings))
        let position = write(
            LedgerEntry(
                position: 0, transactionID: transactionID, kind: .reverse, merchant: original.merchant?.rawValue,
                member: member, requestID: requestID, original: orderTransaction,
                points: postings.change(of: .member(owner)), occurredAt: now, postedAt: now,
                programVersion: catalogue.latest?.version ?? 0, detail: detail, postings: postings.lines))
        giveBackDraws(of: original, position: position)
        original.reversals += 1
        view.originals[orderTransaction] = original
        return .success((member, postings.change(of: .member(owner)), position))
    }
}

extension Sponsor {
    /// The sponsoring merchant, nil for the platform.
    package var merchant: MerchantID? {
        if case .merchant(let id) = self { return id }
        return nil
    }
}

/// Vouchers honoured at tills (docs/member-api.md, "Vouchers at the till").
extension PostingEngine {
    /// A voucher honoured at a till. The first use posted stands and moves no points (the member
    /// paid at the order). A use of a voucher already used, cancelled, or expired when honoured is
    /// still posted (the till handed the goods over) with a conflict: the voucher's points go from
    /// the site's `offline_risk` to the honouring merchant's `redeemed`, as an offline overdraw's
    /// shortfall does, never from the member (a voucher that was not bought, a prize or a benefit,
    /// costs its item's catalog price in points). A voucher the ledger never issued, or for another
    /// item, is rejected.
    mutating func useVoucher(_ record: PushedTransaction.VoucherUse, _ context: inout Context) -> Result<
        Points, Rejection
    > {
        guard let voucher = view.vouchers[record.voucherID], voucher.item.rawValue == record.itemID else {
            return .failure(
                Rejection(
                    reason: .unknownVoucher, member: nil,
                    detail: "no voucher '\(record.voucherID)' for item '\(record.itemID)' was issued"))
        }
        let problem: ConflictKind? =
            switch voucher.status {
            case .used: .voucherDoubleUse
            case .cancelled: .voucherCancelled
            case .issued: context.occurredAt >= voucher.validUntil ? .voucherExpired : nil
            }
        // A voucher not bought (a prize, a benefit) costs its item's catalog price in points.
        let points = voucher.points ?? context.program.catalog.item(voucher.item)?.pricePoints ?? .zero
        var postings = Postings([])
        if let problem {
            postings = Postings([Posting(.offlineRisk(site), -points), Posting(.redeemed(context.merchant), points)])
            let what =
                switch problem {
                case .voucherDoubleUse: "was used before"
                case .voucherCancelled: "was cancelled"
                default: "had expired at \(voucher.validUntil.milliseconds) ms"
                }
            conflict(
                problem, transaction: context.pushed.transactionID, member: voucher.member,
                resolution: "posted; its \(points) points booked to offline_risk:\(site), not to the member",
                points: points, detail: "voucher \(voucher.voucherID) \(what)")
            context.conflicts.append(problem)
        }
        let price = context.program.catalog.item(voucher.item)?.settlementPrice ?? .zero
        let position = write(
            LedgerEntry(
                position: 0, transactionID: context.pushed.transactionID, kind: .voucherUse, site: site,
                siteSequence: context.pushed.sequence, merchant: context.merchant.rawValue,
                requestID: context.pushed.requestID, amount: problem == nil ? price : .zero,
                occurredAt: context.occurredAt, postedAt: now, programVersion: context.version,
                detail: voucher.voucherID, postings: postings.lines, receipt: context.receipt))
        if problem == nil {
            view.vouchers[voucher.voucherID]?.status = .used
            effects.voucherUses.append(
                VoucherUseEffect(
                    voucherID: voucher.voucherID, transactionID: context.pushed.transactionID, position: position,
                    site: site, merchant: context.merchant, usedAt: context.occurredAt))
        }
        return .success(.zero)
    }
}

/// Lottery draws of the points mall (docs/member-api.md, "Lotteries"), booked by the gateway.
extension PostingEngine {
    /// Books a draw whose outcome is decided (`prize`): the member pays the cost to
    /// `platform_redeemed` (the soonest-expiring lots first), and a points prize is credited from
    /// `platform_bonus` in a lot of its own. Returns the member (after merges), the member's points
    /// change and the position.
    package mutating func draw(
        member id: MemberID, lottery: Lottery, prize: Prize?, transactionID: String, requestID: String,
        detail: String
    ) -> Result<(member: MemberID, points: Points, position: Int64), DrawRefusal> {
        guard let member = resolve(id) else { return .failure(.unknownMember) }
        let available = available(member)
        guard available >= lottery.cost else {
            return .failure(.insufficientPoints(available: available, cost: lottery.cost))
        }
        var won = Points.zero
        if case .points(let points)? = prize?.kind { won = points }
        let latest = catalogue.latest
        let position = write(
            LedgerEntry(
                position: 0, transactionID: transactionID, kind: .draw, member: member, requestID: requestID,
                points: won - lottery.cost, occurredAt: now, postedAt: now, programVersion: latest?.version ?? 0,
                detail: detail,
                postings: Postings([
                    Posting(.member(member), won - lottery.cost), Posting(.platformRedeemed, lottery.cost),
                    Posting(.platformBonus, -won),
                ]).lines))
        consumeLots(member, points: lottery.cost, position: position)
        if won > .zero {
            let expires =
                latest.map {
                    ExpiryCalculator.expiresAt(earnedAt: now, rules: $0.program.expiry, timeZone: $0.program.timeZone)
                } ?? now
            createLot(transactionID, member: member, earnedAt: now, expiresAt: expires, points: won)
        }
        return .success((member, won - lottery.cost, position))
    }
}
