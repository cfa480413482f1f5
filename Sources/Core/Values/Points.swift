/// A whole number of loyalty points. Points are never fractional; see `Rounding`.
package struct Points: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number of points; negative only for a signed change (a debit).
    package var value: Int64

    /// Zero points.
    package static let zero = Points(0)

    /// Wraps a raw number of points.
    package init(_ value: Int64) {
        self.value = value
    }

    package var description: String { String(value) }

    package static func < (lhs: Points, rhs: Points) -> Bool { lhs.value < rhs.value }
    package static func + (lhs: Points, rhs: Points) -> Points { Points(lhs.value + rhs.value) }
    package static func - (lhs: Points, rhs: Points) -> Points { Points(lhs.value - rhs.value) }
    package static func += (lhs: inout Points, rhs: Points) { lhs.value += rhs.value }
    package static func -= (lhs: inout Points, rhs: Points) { lhs.value -= rhs.value }
    package static prefix func - (operand: Points) -> Points { Points(-operand.value) }
}

/// An amount of money in minor units (fen for CNY) of the program's single currency.
package struct Money: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The amount in minor units.
    package var minorUnits: Int64

    /// No money.
    package static let zero = Money(minorUnits: 0)

    /// Wraps an amount in minor units.
    package init(minorUnits: Int64) {
        self.minorUnits = minorUnits
    }

    package var description: String { String(minorUnits) }

    package static func < (lhs: Money, rhs: Money) -> Bool { lhs.minorUnits < rhs.minorUnits }
    package static func + (lhs: Money, rhs: Money) -> Money { Money(minorUnits: lhs.minorUnits + rhs.minorUnits) }
    package static func - (lhs: Money, rhs: Money) -> Money { Money(minorUnits: lhs.minorUnits - rhs.minorUnits) }
    package static func += (lhs: inout Money, rhs: Money) { lhs.minorUnits += rhs.minorUnits }
}
