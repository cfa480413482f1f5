/// A ledger account (DESIGN §3). Member accounts hold points owed to members and never go below
/// zero; `issued(merchant)` goes negative as a merchant hands out base points, `bonus(merchant)` and
/// `platformBonus` as their funders pay for bonus points (docs/rules.md, "Who funds each point");
/// the others collect.
package enum Account: Hashable, Sendable, CustomStringConvertible {
    case member(MemberID)
    case issued(MerchantID)
    /// Bonus points a merchant funds, wherever they were earned.
    case bonus(MerchantID)
    /// Bonus points the platform funds.
    case platformBonus
    case redeemed(MerchantID)
    /// Points members spent in the points mall on items the platform sponsors.
    case platformRedeemed
    case expired
    case offlineRisk(SiteID)
    case escrow(SiteID)
    case adjustments

    /// The stored key, for example `member:01KAR…`, `issued:mall-fashion`, `offline_risk:hotel-01`.
    package var key: String {
        switch self {
        case .member(let id): return "member:\(id)"
        case .issued(let id): return "issued:\(id)"
        case .bonus(let id): return "bonus:\(id)"
        case .platformBonus: return "platform_bonus"
        case .redeemed(let id): return "redeemed:\(id)"
        case .platformRedeemed: return "platform_redeemed"
        case .expired: return "expired"
        case .offlineRisk(let id): return "offline_risk:\(id)"
        case .escrow(let id): return "escrow:\(id)"
        case .adjustments: return "adjustments"
        }
    }

    package var description: String { key }

    /// Whether points issued to members come from it: a funder's account (`issued`, `bonus`,
    /// `platform_bonus`, `adjustments`).
    package var funds: Bool {
        switch self {
        case .issued, .bonus, .platformBonus, .adjustments: true
        default: false
        }
    }
}

/// One line of a ledger transaction.
package struct Posting: Hashable, Sendable {
    package var account: Account
    package var points: Points

    package init(_ account: Account, _ points: Points) {
        self.account = account
        self.points = points
    }
}

/// The postings of one transaction: they always sum to zero (checked on construction).
package struct Postings: Hashable, Sendable {
    package private(set) var lines: [Posting]

    /// Postings that must sum to zero; zero lines are dropped.
    package init(_ lines: [Posting]) {
        let sum = lines.reduce(Points.zero) { $0 + $1.points }
        precondition(sum == .zero, "postings sum to \(sum), not zero: \(lines)")
        self.lines = lines.filter { $0.points != .zero }
    }

    /// The change of one account.
    package func change(of account: Account) -> Points {
        lines.filter { $0.account == account }.reduce(.zero) { $0 + $1.points }
    }
}

/// The conflict rules of DESIGN §6 that decide amounts, as pure functions.
package enum PostingRules: Sendable {
    /// A debit of `requested` points from a member who has `available` (balance less other
    /// holds): the member goes down to zero at most; the rest is the shortfall, borne by
    /// `offline_risk(site)`.
    package static func debit(requested: Points, available: Points) -> (fromMember: Points, shortfall: Points) {
        precondition(requested >= .zero, "a negative debit")
        let fromMember = min(requested, max(.zero, available))
        return (fromMember, requested - fromMember)
    }

    /// A redemption (or parking payment) of `points` at `merchant` of `site`, for a member with
    /// `available` points: the merchant's `redeemed` account gets every point; `fromEscrow` of
    /// them come from `escrow(site)` (the site's allowance for the member), the member pays what
    /// they have of the rest and `offline_risk(site)` what is still missing.
    package static func redemption(
        member: MemberID, merchant: MerchantID, site: SiteID, points: Points, available: Points,
        fromEscrow: Points = .zero
    ) -> (Postings, shortfall: Points) {
        let (fromMember, shortfall) = debit(requested: points - fromEscrow, available: available)
        return (
            Postings([
                Posting(.member(member), -fromMember), Posting(.offlineRisk(site), -shortfall),
                Posting(.escrow(site), -fromEscrow), Posting(.redeemed(merchant), points),
            ]), shortfall
        )
    }

    /// The exact opposite of a transaction (a cancelled redemption).
    package static func negation(of postings: Postings) -> Postings {
        Postings(postings.lines.map { Posting($0.account, -$0.points) })
    }
}

/// Where a refund of an earn takes its points back from (docs/rules.md, "Refunds"). The till
/// refunded cash for `points` (the refund's points less those it withheld cash for): they come
/// from the refunded earn's own lot, then from what of that lot expired (the breakage is reversed:
/// the member did not lose those points to the refund), then from the member's other points. What
/// none of these covers (`unrecovered`) the member had spent and the till did not withhold: it is
/// not taken back, and the issuer keeps paying for those points, as for any other point it issued
/// that was redeemed.
package struct RefundSources: Hashable, Sendable {
    package var fromOwnLot: Points
    package var fromExpired: Points
    package var fromOtherLots: Points
    package var unrecovered: Points

    /// `ownLot` is what the earn's lot holds, `expired` what expired of it and was not taken back
    /// yet, `available` the member's balance less holds.
    package static func split(_ points: Points, ownLot: Points, expired: Points, available: Points) -> RefundSources {
        precondition(points >= .zero, "a negative refund")
        let spendable = max(.zero, available)
        let fromOwnLot = min(points, max(.zero, ownLot), spendable)
        let fromExpired = min(points - fromOwnLot, max(.zero, expired))
        let fromOtherLots = min(points - fromOwnLot - fromExpired, spendable - fromOwnLot)
        return RefundSources(
            fromOwnLot: fromOwnLot, fromExpired: fromExpired, fromOtherLots: fromOtherLots,
            unrecovered: points - fromOwnLot - fromExpired - fromOtherLots)
    }

    /// The member gives back what it has of the points, `expired` what expired; the earn's funders
    /// get back every point recovered (`funders`, from `PostingRules.giveBack`: their payables are
    /// reversed for those only).
    package func postings(member: MemberID, funders: [Posting]) -> Postings {
        Postings([Posting(.member(member), -(fromOwnLot + fromOtherLots)), Posting(.expired, -fromExpired)] + funders)
    }
}

/// DESIGN §6, online redemption: what the gateway may hold for an authorisation, and what holds
/// keep from a member.
package enum HoldRules {
    /// Points of `member`'s balance kept by `holds` in force at `now`, other than the hold
    /// `excluding`: each hold counts the part it took from the balance, until it expires.
    package static func held(
        _ holds: some Sequence<HoldRecord>, member: MemberID, now: Timestamp, excluding: String? = nil
    ) -> Points {
        holds.reduce(.zero) { sum, hold in
            hold.member == member && hold.expiresAt > now && hold.holdID != excluding ? sum + hold.balancePoints : sum
        }
    }

    /// The decision on holding `points` for a member with `fromBalance` points (the ledger balance
    /// less other holds in force). The site's change the gateway has not acknowledged yet
    /// (`unacknowledged`, an earn a moment ago) counts towards the member, less what the gateway
    /// has in fact posted of it since (`alreadyPosted`: an acknowledgement lost on its way back
    /// leaves those points in the site's count and already in the balance); a negative change
    /// counts as nothing (the balance will fall when it posts). The hold keeps only the part it
    /// takes from the balance (`fromBalancePart`) away from other transactions; the site bears the
    /// rest if its change never posts.
    package static func authorize(points: Points, fromBalance: Points, unacknowledged: Points, alreadyPosted: Points)
        -> (approved: Bool, available: Points, fromBalancePart: Points)
    {
        var pending = unacknowledged
        if pending > .zero { pending -= alreadyPosted }
        let available = fromBalance + max(.zero, pending)
        guard points <= available else { return (false, max(.zero, available), .zero) }
        return (true, available - points, min(points, max(.zero, fromBalance)))
    }
}
