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

    /// `total` split in proportion to `weights` (each ≥ 0, their sum > 0 unless `total` is 0): each
    /// share rounded down, and the units left over one each to the largest remainders, the earlier
    /// weight first on a tie. The shares sum to `total`, and none exceeds its weight when `total`
    /// does not exceed the weights' sum.
    package static func largestRemainder(_ total: Int64, weights: [Int64]) -> [Int64] {
        precondition(total >= 0 && weights.allSatisfy { $0 >= 0 }, "a negative share or weight")
        let sum = weights.reduce(Int128(0)) { $0 + Int128($1) }
        guard total > 0 else { return weights.map { _ in 0 } }
        precondition(sum > 0, "\(total) split over weights that sum to zero")
        var shares: [Int64] = []
        var remainders: [(index: Int, remainder: Int128)] = []
        var left = Int128(total)
        for (index, weight) in weights.enumerated() {
            let exact = Int128(total) * Int128(weight)
            shares.append(int64(exact / sum))
            remainders.append((index, exact % sum))
            left -= exact / sum
        }
        for share in remainders.sorted(by: {
            $0.remainder != $1.remainder ? $0.remainder > $1.remainder : $0.index < $1.index
        })
        .prefix(Int(left)) {
            shares[share.index] += 1
        }
        return shares
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
