/// Who pays for a kind of bonus point (docs/rules.md, "Who funds each point"): the program says it
/// per bonus kind and per promotion, as `merchant`, `platform` or a merchant id.
package enum Funder: Hashable, Sendable, CustomStringConvertible {
    /// The merchant whose till recorded the transaction (`merchant`).
    case recordingMerchant
    /// The platform (`platform`): an expense of the programme.
    case platform
    /// One merchant of the program, wherever the points were earned.
    case merchant(MerchantID)

    /// `merchant`, `platform` or a merchant id; nil for anything else.
    package init?(_ text: String) {
        switch text {
        case "merchant": self = .recordingMerchant
        case "platform": self = .platform
        default:
            guard let id = MerchantID(text) else { return nil }
            self = .merchant(id)
        }
    }

    package var description: String {
        switch self {
        case .recordingMerchant: "merchant"
        case .platform: "platform"
        case .merchant(let id): id.rawValue
        }
    }

    /// The account a bonus of a transaction recorded by `merchant` is paid from.
    package func account(recordedBy merchant: MerchantID) -> Account {
        switch self {
        case .recordingMerchant: .bonus(merchant)
        case .platform: .platformBonus
        case .merchant(let id): .bonus(id)
        }
    }
}

/// Who funds each kind of bonus that is not a promotion (promotions name their own funder). Base
/// points are always the recording merchant's (`issued`).
package struct BonusFunding: Hashable, Sendable {
    package var signup: Funder
    package var referral: Funder
    package var tier: Funder
    package var crossFormat: Funder
    package var birthday: Funder
    package var streak: Funder

    /// The programme's own bonuses are the platform's: they reward membership of the coalition,
    /// not a purchase at one merchant (docs/rules.md).
    package static let defaults = BonusFunding(
        signup: .platform, referral: .platform, tier: .platform, crossFormat: .platform, birthday: .platform,
        streak: .platform)

    /// The program keys, in document order.
    package static let keys = ["signup", "referral", "tier", "cross_format", "birthday", "streak"]

    package subscript(key key: String) -> Funder? {
        get {
            switch key {
            case "signup": signup
            case "referral": referral
            case "tier": tier
            case "cross_format": crossFormat
            case "birthday": birthday
            case "streak": streak
            default: nil
            }
        }
        set {
            guard let newValue else { return }
            switch key {
            case "signup": signup = newValue
            case "referral": referral = newValue
            case "tier": tier = newValue
            case "cross_format": crossFormat = newValue
            case "birthday": birthday = newValue
            case "streak": streak = newValue
            default: break
            }
        }
    }
}

extension Program {
    /// The account that pays for one component of an earn (or enrolment) recorded at `merchant`'s
    /// till: base points are the merchant's own (`issued`); each bonus is its funder's.
    package func fundingAccount(of component: EarnComponent, recordedBy merchant: MerchantID) -> Account {
        let funding = earn.funding
        let funder: Funder
        switch component.kind {
        case .base: return .issued(merchant)
        case .promotion:
            funder = earn.promotions.first { $0.id.rawValue == component.ruleID }?.fundedBy ?? .recordingMerchant
        case .tier: funder = funding.tier
        case .crossFormat: funder = funding.crossFormat
        case .birthday: funder = funding.birthday
        case .streak: funder = funding.streak
        case .signup: funder = funding.signup
        case .referral: funder = funding.referral
        }
        return funder.account(recordedBy: merchant)
    }
}

extension PostingRules {
    /// Points of `components` issued to a member at `merchant`'s till: the member gets their sum;
    /// each funder's account pays its part (one line per account, in the order they first appear).
    package static func issue(
        member: MemberID, merchant: MerchantID, components: [EarnComponent], program: Program
    ) -> Postings {
        var total = Points.zero
        var funders: [(account: Account, points: Points)] = []
        for component in components where component.points != .zero {
            total += component.points
            let account = program.fundingAccount(of: component, recordedBy: merchant)
            if let index = funders.firstIndex(where: { $0.account == account }) {
                funders[index].points += component.points
            } else {
                funders.append((account, component.points))
            }
        }
        return Postings([Posting(.member(member), total)] + funders.map { Posting($0.account, -$0.points) })
    }

    /// Who funded the points an issuing transaction gave `member`: the funder lines that follow the
    /// member's line in its postings (a transaction that also paid a referrer lists the referrer's
    /// line and its funders after), as points each funded (positive).
    package static func funding(of postings: [Posting], member: MemberID) -> [(account: Account, points: Points)] {
        guard let start = postings.firstIndex(where: { $0.account == .member(member) }) else { return [] }
        var funders: [(account: Account, points: Points)] = []
        for line in postings[(start + 1)...] {
            if case .member = line.account { break }
            if line.account.funds, line.points < .zero { funders.append((line.account, -line.points)) }
        }
        return funders
    }

    /// The accounts `points` given back by a refund go to: each funder of the earn gets a share in
    /// proportion to what it funded and has not been given back yet (`returned`), largest
    /// remainder first, so a refund in full gives each exactly what it funded. Points beyond what
    /// the funders have left go to the first (the recording merchant's base).
    package static func giveBack(
        _ points: Points, funding: [(account: Account, points: Points)], returned: [Account: Points],
        fallback: Account
    ) -> [Posting] {
        guard points > .zero else { return [] }
        let left = funding.map { max(.zero, $0.points - (returned[$0.account] ?? .zero)) }
        let capacity = left.reduce(Points.zero, +)
        guard capacity > .zero else { return [Posting(fallback, points)] }
        let given = min(points, capacity)
        let shares = Rounding.largestRemainder(given.value, weights: left.map(\.value))
        var lines = zip(funding, shares).map { Posting($0.account, Points($1)) }
        if points > given { lines.append(Posting(funding.first?.account ?? fallback, points - given)) }
        return lines
    }
}
