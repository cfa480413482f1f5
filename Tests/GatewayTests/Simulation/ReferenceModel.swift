import Core
import Foundation

/// The simulation's reference model of the economics (docs/reliability.md, "The reference model"):
/// what each member should hold, what each site's `offline_risk` should be and how much the dinner
/// promotion should have given, worked out from what the tills were asked and answered, written
/// apart from the posting code and far simpler than it.
///
/// The accounting invariants (postings sum to zero, balances equal their postings) hold while the
/// ledger gives points to the wrong party; this model is what catches that. It takes from the
/// gateway only what is the network's choice rather than a rule: the order and time at which
/// transactions were posted, the holds the gateway granted (an authorisation's answer may be lost,
/// so the tills cannot know them all), and the points the lying site was given, which it bounds
/// with the earn calculator and its own record of the member before counting them.
struct ReferenceModel {
    /// What a till was asked and answered, by transaction id.
    enum Fact {
        case enroll(member: String, phone: String, referrer: String?)
        /// An earn's receipt: its total and the dinner bonus in it.
        case earn(member: String, amount: Int64, total: Int64, dinner: Int64)
        /// A redemption or a parking payment of `points`.
        case spend(member: String, points: Int64)
        /// A refund, with the points the till withheld cash for (the member had spent them).
        case refund(original: String, amount: Int64, withheld: Int64)
        /// An earn the lying site made up, with the last earns it claimed.
        case forged(member: String, amount: Int64, occurredAt: Timestamp, claimed: [Format: Timestamp])
        /// A refund the lying site made up of one of its earns, stating another member than the
        /// earn's: a reversal belongs to its original's member and merchant, so it changes nothing.
        case forgedRefund(stated: String)
        /// An order of the points mall answered OK: its points and the vouchers it issued.
        case order(member: String, points: Int64, vouchers: [Voucher])
        /// A cancellation of the order `order` (its transaction id) answered OK.
        case cancel(order: String)
        /// A lottery draw answered OK: its cost, the points won and the prize's voucher.
        case draw(member: String, cost: Int64, won: Int64, voucher: Voucher?)
        /// A voucher honoured at a till, at the instant its till stated.
        case voucherUse(voucher: String, occurredAt: Int64)
        /// An allowance the gateway granted (its id is the grant's transaction id): the points it
        /// reserved and the lease's end (what the rules and the member allowed is the model's).
        case grant(site: String, member: String, points: Int64, leaseUntil: Int64)
        /// An edge's return of what it had left of an allowance, as its outbox states it.
        case allowanceReturn(allowance: String, points: Int64)
        /// The gateway's reclaim of an allowance of the transaction's site and member: the points
        /// it gave back (what was left is the model's).
        case reclaim(member: String, points: Int64)
    }

    /// An allowance as the model follows it.
    private struct Allowance {
        enum Status { case active, returned, reclaimed(at: Int64) }
        var site: String
        var member: String
        var left: Int64
        var leaseUntil: Int64
        var status = Status.active

        var isActive: Bool { if case .active = status { true } else { false } }
    }

    /// A voucher the ledger issued, with the points it stands for (its order's price per unit, or
    /// for a prize its item's catalog price) and the end of its validity.
    struct Voucher {
        var id: String
        var points: Int64
        var validUntil: Int64
    }

    /// A transaction as the gateway posted it: only its order, time and (for the liar) points.
    struct Posted {
        var position: Int64
        var transactionID: String
        var site: String
        var postedAt: Int64
        var rejected: Bool
        var points: Int64
    }

    /// A hold the gateway granted for a redemption.
    struct Hold {
        var transactionID: String
        var member: String
        var points: Int64
        var createdAt: Int64
        /// The ledger's position counter right after the hold was granted: a hold counts for a
        /// posting only if it came before it (many steps share one virtual millisecond).
        var createdPosition: Int64?
        var expiresAt: Int64
        var released: Bool
    }

    /// What the ledger should say.
    struct Expectation {
        var balances: [String: Int64] = [:]
        /// Points each site's `offline_risk` bears (the account's balance is the negative).
        var risk: [String: Int64] = [:]
        /// Points each site refunded in cash that the member had spent and the till did not
        /// withhold (its replica did not know): not taken back, flagged `refund_after_spend`.
        var unrecovered: [String: Int64] = [:]
        var dinnerGiven: Int64 = 0
        /// Earns of the lying site posted with more than an honest site could have been given.
        var overpaid: [String] = []
        /// Transactions the model cannot account for (a fact missing, a member it does not know).
        var unexplained: [String] = []
    }

    private(set) var facts: [String: Fact] = [:]
    let program: Program
    let dinner: PromotionID
    let dinnerBudget: Int64
    let liarSite: String
    let liarMerchant: MerchantID

    init(program: Program, dinner: PromotionID, dinnerBudget: Int64, liarSite: String, liarMerchant: MerchantID) {
        self.program = program
        self.dinner = dinner
        self.dinnerBudget = dinnerBudget
        self.liarSite = liarSite
        self.liarMerchant = liarMerchant
    }

    mutating func record(_ transaction: String, _ fact: Fact) { facts[transaction] = fact }

    /// The part of each spend the edge paid from an allowance, by transaction, as its outbox states.
    private(set) var allowanceParts: [String: (allowance: String, points: Int64)] = [:]
    mutating func spentFromAllowance(_ transaction: String, allowance: String, points: Int64) {
        allowanceParts[transaction] = (allowance, points)
    }

    /// Vouchers of tier benefits: issued by the daily job with no transaction, so issued before
    /// anything the model replays uses them.
    private(set) var benefitVouchers: [Voucher] = []
    mutating func issued(benefit voucher: Voucher) { benefitVouchers.append(voucher) }

    /// Replays the posted transactions in their order against the facts.
    func expect(posted: [Posted], holds: [Hold]) -> Expectation {
        var out = Expectation()
        var known: Set<String> = []
        var phoneOwner: [String: String] = [:]
        var mergedInto: [String: String] = [:]
        var qualifying: [String: Int64] = [:]
        var tier: [String: Int] = [:]
        var earns: [String: (member: String, amount: Int64, points: Int64, refunded: Int64, reversed: Int64)] = [:]
        var consumed: Set<String> = []
        /// The vouchers issued so far, with whether they were used or their order cancelled.
        var vouchers = Dictionary(
            benefitVouchers.map { ($0.id, (voucher: $0, used: false, cancelled: false)) },
            uniquingKeysWith: { a, _ in a })
        var orders: [String: (member: String, points: Int64, vouchers: [Voucher])] = [:]
        var allowances: [String: Allowance] = [:]
        let rules = program.allowances

        func resolve(_ member: String) -> String? {
            var id = member
            while let next = mergedInto[id] { id = next }
            return known.contains(id) ? id : nil
        }
        func qualify(_ member: String, _ points: Int64) {
            qualifying[member, default: 0] += points
            // Upgrades happen at once; downgrades only at a review, which no run reaches.
            let reached = program.tiers.tiers.lastIndex { $0.threshold.value <= qualifying[member, default: 0] } ?? 0
            tier[member] = max(tier[member, default: 0], reached)
        }
        /// The member's balance less the holds of other transactions in force at `time`.
        func available(_ member: String, at entry: Posted, excluding transaction: String?) -> Int64 {
            let held = holds.filter {
                $0.transactionID != transaction && !$0.released && !consumed.contains($0.transactionID)
                    && ($0.createdPosition.map { created in created < entry.position }
                        ?? ($0.createdAt < entry.postedAt))
                    && entry.postedAt < $0.expiresAt && resolve($0.member) == member
            }
            return out.balances[member, default: 0] - held.reduce(0) { $0 + $1.points }
        }
        /// Takes `points` from the member as far as they are available; the rest is the site's risk.
        func take(_ points: Int64, from member: String, at site: String, available: Int64) {
            let fromMember = min(points, max(0, available))
            out.balances[member, default: 0] -= fromMember
            out.risk[site, default: 0] += points - fromMember
        }

        for entry in posted {
            guard let fact = facts[entry.transactionID] else {
                out.unexplained.append("\(entry.transactionID) from \(entry.site): posted, never answered at a till")
                continue
            }
            switch fact {
            case .enroll(let member, let phone, let referrer):
                known.insert(member)
                // A second enrolment of the same phone merges into the first and pays no bonus.
                if let owner = phoneOwner[phone] {
                    mergedInto[member] = owner
                    continue
                }
                phoneOwner[phone] = member
                out.balances[member, default: 0] += program.earn.signupPoints.value
                if let referrer, let by = resolve(referrer), by != member {
                    out.balances[by, default: 0] += program.earn.referralPoints.value
                }
            case .earn(let member, let amount, let total, let dinner):
                guard let owner = resolve(member) else {
                    out.unexplained.append("\(entry.transactionID): an earn for \(member), not enrolled before it")
                    continue
                }
                // The dinner bonus is given while the budget lasts; the part left when it runs out.
                let given = min(dinner, max(0, dinnerBudget - out.dinnerGiven))
                out.dinnerGiven += given
                let points = total - (dinner - given)
                out.balances[owner, default: 0] += points
                qualify(owner, points)
                earns[entry.transactionID] = (owner, amount, points, 0, 0)
            case .spend(let member, let points):
                guard let owner = resolve(member) else {
                    out.unexplained.append("\(entry.transactionID): a redemption for \(member), not enrolled before it")
                    continue
                }
                // The part paid from the site's allowance comes out of escrow: never the site's
                // risk. Only a spend of an allowance the gateway reclaimed after waiting
                // `unheard_reclaim_hours` for the site falls to the floor limit, by the rules.
                var rest = points
                if let part = allowanceParts[entry.transactionID] {
                    let reserved = allowances[part.allowance]
                    if var allowance = reserved, allowance.isActive, allowance.site == entry.site,
                        resolve(allowance.member) == owner, part.points <= allowance.left
                    {
                        allowance.left -= part.points
                        allowances[part.allowance] = allowance
                        rest -= part.points
                    } else if let reserved, case .reclaimed(let at) = reserved.status,
                        at >= reserved.leaseUntil + Int64(rules.unheardReclaimHours) * 3_600_000
                    {
                        // Reclaimed from a site unheard of for that long: the whole spend is floor limit.
                    } else {
                        out.unexplained.append(
                            "\(entry.transactionID) from \(entry.site): \(part.points) points spent from allowance \(part.allowance), which "
                                + (reserved.map {
                                    "is \($0.status) with \($0.left) left (lease until \($0.leaseUntil)) for \($0.member) at \($0.site)"
                                } ?? "was never granted before it"))
                        rest -= part.points
                    }
                }
                // Its own hold (if the gateway granted one) was kept for it: not someone else's.
                take(
                    rest, from: owner, at: entry.site,
                    available: available(owner, at: entry, excluding: entry.transactionID))
                consumed.insert(entry.transactionID)
            case .refund(let original, let amount, let withheld):
                guard var earn = earns[original],
                    let refund = try? EarnReversal.refund(
                        EarnRefundState(
                            originalAmount: Money(minorUnits: earn.amount), originalPoints: Points(earn.points),
                            refundedAmount: Money(minorUnits: earn.refunded), reversedPoints: Points(earn.reversed)),
                        amount: Money(minorUnits: amount))
                else {
                    out.unexplained.append(
                        "\(entry.transactionID): a refund of \(original), which the model cannot refund")
                    continue
                }
                // Points of the earn are taken back, less those the till withheld cash for; what
                // the member has spent beyond that is not taken back (no site's risk: the issuer
                // keeps paying for points that were redeemed).
                let owed = refund.points.value - min(max(0, withheld), refund.points.value)
                let fromMember = min(owed, max(0, available(earn.member, at: entry, excluding: nil)))
                out.balances[earn.member, default: 0] -= fromMember
                out.unrecovered[entry.site, default: 0] += owed - fromMember
                qualify(earn.member, -refund.points.value)
                earn.refunded += refund.amount.minorUnits
                earn.reversed += refund.points.value
                earns[original] = earn
            case .order(let member, let points, let issued):
                guard let owner = resolve(member) else {
                    out.unexplained.append("\(entry.transactionID): an order for \(member), not enrolled before it")
                    continue
                }
                let free = available(owner, at: entry, excluding: nil)
                if points > free {
                    out.unexplained.append(
                        "\(entry.transactionID): an order took \(points) points of \(owner), who had \(free) available")
                }
                out.balances[owner, default: 0] -= points
                orders[entry.transactionID] = (owner, points, issued)
                for voucher in issued { vouchers[voucher.id] = (voucher, false, false) }
            case .cancel(let order):
                guard let placed = orders.removeValue(forKey: order), let owner = resolve(placed.member) else {
                    out.unexplained.append("\(entry.transactionID): a cancellation of \(order), not an order placed")
                    continue
                }
                // Points back to the member; its vouchers, none used, cancelled.
                out.balances[owner, default: 0] += placed.points
                for voucher in placed.vouchers {
                    if vouchers[voucher.id]?.used == true {
                        out.unexplained.append(
                            "\(entry.transactionID): order \(order) was cancelled after its voucher \(voucher.id) was used"
                        )
                    }
                    vouchers[voucher.id]?.cancelled = true
                }
            case .draw(let member, let cost, let won, let voucher):
                guard let owner = resolve(member) else {
                    out.unexplained.append("\(entry.transactionID): a draw for \(member), not enrolled before it")
                    continue
                }
                let free = available(owner, at: entry, excluding: nil)
                if cost > free {
                    out.unexplained.append(
                        "\(entry.transactionID): a draw took \(cost) points of \(owner), who had \(free) available")
                }
                out.balances[owner, default: 0] += won - cost
                if let voucher { vouchers[voucher.id] = (voucher, false, false) }
            case .voucherUse(let id, let occurredAt):
                guard var state = vouchers[id] else {
                    out.unexplained.append("\(entry.transactionID): a use of voucher \(id), never issued before it")
                    continue
                }
                guard !entry.rejected else {
                    out.unexplained.append("\(entry.transactionID): a use of issued voucher \(id) was rejected")
                    continue
                }
                // The first use that stands costs nothing more; any other use of it (used before,
                // cancelled, expired when honoured) costs its points to the site that honoured it.
                if state.used || state.cancelled || occurredAt >= state.voucher.validUntil {
                    out.risk[entry.site, default: 0] += state.voucher.points
                } else {
                    state.used = true
                    vouchers[id] = state
                }
            case .grant(let site, let member, let points, let leaseUntil):
                guard let owner = resolve(member) else {
                    out.unexplained.append("\(entry.transactionID): an allowance for \(member), not enrolled before it")
                    continue
                }
                // As many points as the site's rule allows and the member may spend (not held, not
                // reserved elsewhere): never more than the member has.
                let free = available(owner, at: entry, excluding: nil)
                let most = min(
                    SiteID(site).flatMap(program.site).flatMap(rules.rule)?.pointsMax.value ?? 0, max(0, free))
                if points != most || points <= 0 {
                    out.unexplained.append(
                        "\(entry.transactionID): an allowance of \(points) points for \(owner) at \(site), where the rule and the member's \(free) available points give \(most)"
                    )
                }
                out.balances[owner, default: 0] -= points
                allowances[entry.transactionID] = Allowance(
                    site: site, member: owner, left: points, leaseUntil: leaseUntil)
            case .allowanceReturn(let id, let points):
                guard var allowance = allowances[id], allowance.site == entry.site, !entry.rejected else {
                    out.unexplained.append(
                        "\(entry.transactionID) from \(entry.site): a return of allowance \(id), "
                            + (entry.rejected ? "rejected" : "not granted to the site before it"))
                    continue
                }
                // An allowance ended already (reclaimed) has nothing to give back.
                guard allowance.isActive else { continue }
                if points != allowance.left {
                    out.unexplained.append(
                        "\(entry.transactionID) from \(entry.site): gave back \(points) points of allowance \(id), which has \(allowance.left) left"
                    )
                }
                let back = min(points, allowance.left)
                out.balances[resolve(allowance.member) ?? allowance.member, default: 0] += back
                allowance.left -= back
                if allowance.left == 0 { allowance.status = .returned }
                allowances[id] = allowance
            case .reclaim(let member, let points):
                guard let owner = resolve(member),
                    let (id, allowance) = allowances.first(where: {
                        $0.value.isActive && $0.value.site == entry.site && resolve($0.value.member) == owner
                    })
                else {
                    out.unexplained.append(
                        "\(entry.transactionID): a reclaim at \(entry.site) for \(member), who has no active allowance there"
                    )
                    continue
                }
                if points != allowance.left {
                    out.unexplained.append(
                        "\(entry.transactionID): the reclaim of allowance \(id) gave back \(points) points; it had \(allowance.left) left"
                    )
                }
                out.balances[owner, default: 0] += allowance.left
                allowances[id]?.left = 0
                allowances[id]?.status = .reclaimed(at: entry.postedAt)
            case .forgedRefund(let stated):
                if !entry.rejected {
                    out.unexplained.append(
                        "\(entry.transactionID): a refund stating \(stated), not its original's member, was posted")
                }
            case .forged(let member, let amount, let occurredAt, let claimed):
                guard !entry.rejected else { continue }
                guard let owner = resolve(member) else {
                    out.overpaid.append("\(entry.transactionID): posted for \(member), unknown to the model")
                    continue
                }
                // The most an honest site could have stated: the member's tier by the model's own
                // qualifying points, no birthday (the simulation enrols none), and either no last
                // earns or the last earns the liar claimed (the most generous cross-format bonus).
                let state = MemberEarnState(tier: program.tiers.tiers[tier[owner, default: 0]].id)
                let bound =
                    [claimed, [:]].compactMap { lastEarn -> Int64? in
                        var input = state
                        input.lastEarnByFormat = lastEarn
                        return try? EarnCalculator.earn(
                            program: program,
                            input: EarnInput(
                                merchant: liarMerchant, amount: Money(minorUnits: amount), occurredAt: occurredAt,
                                member: input)
                        ).total.value
                    }.max() ?? 0
                if entry.points > bound {
                    out.overpaid.append(
                        "\(entry.transactionID): the lying site was given \(entry.points) points for \(owner), whose record earns at most \(bound)"
                    )
                }
                out.balances[owner, default: 0] += entry.points
                qualify(owner, entry.points)
            }
        }
        return out
    }
}
