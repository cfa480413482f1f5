/// Integer division with the rounding modes the rules name.
///
/// Every division of an amount in Coalition goes through one of these, so the rounding of each
/// step is written down in one place (docs/rules.md, "Rounding"):
/// - points awarded round down (`floor`), never in the member's favour beyond what was earned;
/// - points needed to cover a fee round up (`ceiling`), so the fee is covered;
/// - money in statements rounds half to even at the line level (`halfEven`).
package enum Rounding: Sendable {
    /// The largest integer not greater than `numerator / denominator`. `denominator` must be > 0.
    package static func floor(_ numerator: Int128, _ denominator: Int128) -> Int128 {
        precondition(denominator > 0, "division by a non-positive denominator")
        let quotient = numerator / denominator
        let remainder = numerator % denominator
        return remainder < 0 ? quotient - 1 : quotient
    }

    /// The smallest integer not less than `numerator / denominator`. `denominator` must be > 0.
    package static func ceiling(_ numerator: Int128, _ denominator: Int128) -> Int128 {
        precondition(denominator > 0, "division by a non-positive denominator")
        let quotient = numerator / denominator
        let remainder = numerator % denominator
        return remainder > 0 ? quotient + 1 : quotient
    }

    /// `numerator / denominator` rounded to the nearest integer, ties to the even one (banker's
    /// rounding). `denominator` must be > 0.
    package static func halfEven(_ numerator: Int128, _ denominator: Int128) -> Int128 {
        let down = floor(numerator, denominator)
        let remainderTwice = (numerator - down * denominator) * 2
        if remainderTwice < denominator { return down }
        if remainderTwice > denominator { return down + 1 }
        return down % 2 == 0 ? down : down + 1
    }

    /// Converts a result back to `Int64`, trapping if it cannot be represented. Callers bound their
    /// inputs (program limits) so that this never traps on valid data.
    package static func int64(_ value: Int128) -> Int64 {
        guard let result = Int64(exactly: value) else {
            preconditionFailure("amount \(value) does not fit in Int64")
        }
        return result
    }
}
