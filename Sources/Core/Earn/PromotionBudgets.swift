/// Promotion budgets (DESIGN §3): a promotion with `budget` gives at most that many bonus points
/// across all members. The gateway, which sees every earn, is authoritative; edges compute with the
/// figure they last pulled, less their own bonuses since. docs/rules.md, "Promotion budgets".
package enum PromotionBudgets: Sendable {
    /// What each budgeted promotion of `program` may still give, when `given` points were given.
    package static func left(_ program: Program, given: [PromotionID: Points]) -> [PromotionID: Points] {
        var left: [PromotionID: Points] = [:]
        for promotion in program.earn.promotions {
            guard let budget = promotion.budget else { continue }
            left[promotion.id] = max(.zero, budget - (given[promotion.id] ?? .zero))
        }
        return left
    }

    /// The cap an edge's receipt puts on each budgeted promotion of `program`: the points the
    /// receipt gave for it (0 when it gave none). Computing with these caps repeats the edge's
    /// arithmetic whatever budget figure it had.
    package static func caps(_ program: Program, receipt: [PromotionID: Points]) -> [PromotionID: Points] {
        var caps: [PromotionID: Points] = [:]
        for promotion in program.earn.promotions where promotion.budget != nil {
            caps[promotion.id] = receipt[promotion.id] ?? .zero
        }
        return caps
    }

    /// The smaller figure of two, per promotion (the gateway's budget left and the receipt's cap).
    package static func smaller(_ a: [PromotionID: Points], _ b: [PromotionID: Points]) -> [PromotionID: Points] {
        a.merging(b) { min($0, $1) }
    }

    /// The points each promotion gave in an earn.
    package static func given(by result: EarnResult) -> [PromotionID: Points] {
        var given: [PromotionID: Points] = [:]
        for component in result.components where component.kind == .promotion {
            if let id = PromotionID(component.ruleID) { given[id, default: .zero] += component.points }
        }
        return given
    }
}
