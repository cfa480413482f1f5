/// What is known of an earn when part or all of its bill is refunded.
package struct EarnRefundState: Hashable, Sendable {
    /// The original bill amount and the points it earned.
    package var originalAmount: Money
    package var originalPoints: Points
    /// Amount and points already refunded by earlier reversals.
    package var refundedAmount: Money
    package var reversedPoints: Points

    package init(originalAmount: Money, originalPoints: Points, refundedAmount: Money, reversedPoints: Points) {
        self.originalAmount = originalAmount
        self.originalPoints = originalPoints
        self.refundedAmount = refundedAmount
        self.reversedPoints = reversedPoints
    }
}

/// Refunds of earns (DESIGN §3, reverse).
///
/// A partial refund takes back points in proportion, rounded down:
/// floor(original points × refunded amount so far ÷ original amount) − points already taken back.
/// Computing on the cumulative amount means the refunds of a bill always add up to exactly the
/// original points once the whole bill is refunded, whatever the order of partial refunds.
package enum EarnReversal: Sendable {
    /// Points to take back for refunding `amount` (zero means everything not yet refunded), and
    /// the amount refunded. Throws when the amount is negative or more than what is left.
    package static func refund(
        _ state: EarnRefundState, amount: Money
    ) throws(CalculationError) -> (points: Points, amount: Money) {
        let left = state.originalAmount - state.refundedAmount
        guard left > .zero else {
            throw CalculationError(.invalidInput, field: "amount", "the bill has already been refunded in full")
        }
        guard amount >= .zero else {
            throw CalculationError(.invalidInput, field: "amount", "must not be negative (found \(amount))")
        }
        let refund = amount == .zero ? left : amount
        guard refund <= left else {
            throw CalculationError(
                .invalidInput, field: "amount", "at most \(left) minor units are left to refund (found \(refund))")
        }
        let cumulative = state.refundedAmount + refund
        let owed = Rounding.floor(
            Int128(state.originalPoints.value) * Int128(cumulative.minorUnits), Int128(state.originalAmount.minorUnits))
        return (Points(Rounding.int64(owed)) - state.reversedPoints, refund)
    }
}
