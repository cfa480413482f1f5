/// Why an operator's adjustment was not booked.
package enum AdjustmentRefusal: Error, Equatable, Sendable {
    case unknownMember
    /// A debit larger than what the member may spend (balance less holds).
    case insufficient(available: Points)
}

/// Who pays for the points of an operator's adjustment (docs/operations.md, "Adjustments").
package enum AdjustmentFunder: Hashable, Sendable, CustomStringConvertible {
    /// The platform's expense (`adjustments`).
    case platform
    /// A merchant, charged at its issue price like points it issued (`issued(merchant)`).
    case merchant(MerchantID)

    /// "platform" or a merchant id.
    package init?(_ text: String) {
        if text == "platform" {
            self = .platform
        } else if let merchant = MerchantID(text) {
            self = .merchant(merchant)
        } else {
            return nil
        }
    }

    package var description: String {
        switch self {
        case .platform: "platform"
        case .merchant(let id): id.rawValue
        }
    }

    /// The funding merchant, nil for the platform.
    package var merchant: MerchantID? {
        if case .merchant(let id) = self { return id }
        return nil
    }

    /// The account the points come from (a credit) or go back to (a debit).
    package var account: Account {
        switch self {
        case .platform: .adjustments
        case .merchant(let id): .issued(id)
        }
    }
}

/// The gateway's own transactions (an operator's adjustment, an expiry), decided like pushed ones:
/// on the view, as effects.
extension PostingEngine {
    /// Books an operator's adjustment (member ↔ its funder's account: `adjustments` for the
    /// platform, `issued(merchant)` for a merchant): a credit is a new lot expiring as an earn made
    /// now would; a debit takes from the lots that expire soonest and may not exceed what the
    /// member may spend. Returns the member it was booked to (after merges).
    package mutating func adjust(
        member id: MemberID, points: Points, funder: AdjustmentFunder = .platform, transactionID: String,
        requestID: String, receipt: ReceiptKey, detail: String
    ) -> Result<MemberID, AdjustmentRefusal> {
        guard let member = resolve(id) else { return .failure(.unknownMember) }
        let available = available(member)
        if points < .zero, available < -points { return .failure(.insufficient(available: available)) }
        let latest = catalogue.latest
        let position = write(
            LedgerEntry(
                position: 0, transactionID: transactionID, kind: .adjust,
                merchant: funder.merchant?.rawValue, member: member,
                requestID: requestID, points: points, occurredAt: now, postedAt: now,
                programVersion: latest?.version ?? 0, detail: detail,
                postings: Postings([Posting(.member(member), points), Posting(funder.account, -points)]).lines,
                receipt: receipt))
        if points > .zero {
            let expires =
                latest.map {
                    ExpiryCalculator.expiresAt(earnedAt: now, rules: $0.program.expiry, timeZone: $0.program.timeZone)
                } ?? now
            createLot(transactionID, member: member, earnedAt: now, expiresAt: expires, points: points)
        } else {
            consumeLots(member, points: -points, position: position)
        }
        return .success(member)
    }

    /// Expires a member's lots that are due (`due`, lot numbers on its chain): one `expire`
    /// transaction (member → `expired`) for what they hold, never more than the member holds (a
    /// shortfall elsewhere already took points), drawn from the due lots in lot id order. Returns
    /// the points expired.
    package mutating func expire(member: MemberID, due: Set<Int64>, transactionID: String, detail: String) -> Points {
        let lots = (view.lots[member] ?? []).filter { due.contains($0.number) && $0.remaining > .zero }
            .sorted { $0.lotID.utf8.lexicographicallyPrecedes($1.lotID.utf8) }
        // Points an active hold keeps for a redemption are left alone until the hold ends (the
        // redemption then takes them, or a later run expires them): expiring them would post that
        // redemption as an overdraw on its site.
        let points = min(
            lots.reduce(.zero) { $0 + $1.remaining }, max(.zero, self.member(member).balance - held(member)))
        guard points > .zero else { return .zero }
        let position = write(
            LedgerEntry(
                position: 0, transactionID: transactionID, kind: .expire, member: member, points: -points,
                occurredAt: now, postedAt: now, programVersion: catalogue.latest?.version ?? 0, detail: detail,
                postings: Postings([Posting(.member(member), -points), Posting(.expired, points)]).lines))
        var left = points
        for lot in lots where left > .zero {
            let take = min(left, lot.remaining)
            // The chain may have moved since `lots` was read: draw from the lot as it is now.
            guard let current = view.lots[member]?.first(where: { $0.number == lot.number }) else { continue }
            changeLot(current, by: -take, position: position)
            left -= take
        }
        return points
    }
}
