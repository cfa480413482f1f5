/// An exact non-floating decimal such as `0.5`, `1.5` or `0.012`, with at most six decimal places.
///
/// Rates are written as strings in the program (`"0.5"`) and parsed exactly: `Rate` stores the
/// value times 1,000,000 as an integer. Multiplying an amount by a rate never uses floating point;
/// the caller says how the exact product is rounded (`Rounding`).
package struct Rate: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The fixed-point scale: a rate of 1 is stored as `scale`.
    package static let scale: Int64 = 1_000_000
    /// The number of decimal places a rate may have.
    package static let fractionDigitsMax = 6
    /// The largest rate accepted when parsing (1,000,000), so products of bounded amounts fit in
    /// 128 bits with room to spare.
    package static let parsedMax: Int64 = 1_000_000

    /// The rate times `scale`.
    package var micros: Int64

    /// 0.
    package static let zero = Rate(micros: 0)
    /// 1.
    package static let one = Rate(micros: scale)

    /// Wraps a rate given in millionths.
    package init(micros: Int64) {
        self.micros = micros
    }

    /// A whole-number rate.
    package init(integer: Int64) {
        self.micros = integer * Rate.scale
    }

    /// Parses `"1"`, `"0.5"`, `"-0.25"`, `"1.000001"`. Returns nil for anything else: exponents,
    /// more than six decimal places, empty parts (`"1."`, `".5"`), or a magnitude over `parsedMax`.
    package init?(parsing text: String) {
        var digits = Substring(text)
        var negative = false
        if digits.first == "-" {
            negative = true
            digits = digits.dropFirst()
        }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.count <= 7, whole.allSatisfy(\.isASCIIDigit) else {
            return nil
        }
        var fraction: Substring = ""
        if parts.count == 2 {
            fraction = parts[1]
            guard !fraction.isEmpty, fraction.count <= Rate.fractionDigitsMax, fraction.allSatisfy(\.isASCIIDigit)
            else { return nil }
        }
        guard let wholeValue = Int64(whole) else { return nil }
        let padded = fraction + String(repeating: "0", count: Rate.fractionDigitsMax - fraction.count)
        guard let fractionValue = Int64(padded) else { return nil }
        let magnitude = wholeValue * Rate.scale + fractionValue
        guard magnitude <= Rate.parsedMax * Rate.scale else { return nil }
        self.micros = negative ? -magnitude : magnitude
    }

    /// The shortest exact decimal text: `1`, `0.5`, `1.25`.
    package var description: String {
        let sign = micros < 0 ? "-" : ""
        let magnitude = micros.magnitude
        let whole = magnitude / UInt64(Rate.scale)
        var fraction = String(magnitude % UInt64(Rate.scale))
        if fraction == "0" { return "\(sign)\(whole)" }
        fraction = String(repeating: "0", count: Rate.fractionDigitsMax - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(sign)\(whole).\(fraction)"
    }

    package static func < (lhs: Rate, rhs: Rate) -> Bool { lhs.micros < rhs.micros }
    package static func + (lhs: Rate, rhs: Rate) -> Rate { Rate(micros: lhs.micros + rhs.micros) }
    package static func - (lhs: Rate, rhs: Rate) -> Rate { Rate(micros: lhs.micros - rhs.micros) }

    /// `amount × rate`, rounded down to a whole number.
    package func floorTimes(_ amount: Int64) -> Int64 {
        Rounding.int64(Rounding.floor(Int128(amount) * Int128(micros), Int128(Rate.scale)))
    }

    /// `amount × rate`, rounded half to even.
    package func halfEvenTimes(_ amount: Int64) -> Int64 {
        Rounding.int64(Rounding.halfEven(Int128(amount) * Int128(micros), Int128(Rate.scale)))
    }
}

extension Character {
    /// True for the ASCII digits 0-9 only (not other Unicode digits).
    package var isASCIIDigit: Bool {
        guard let ascii = asciiValue else { return false }
        return ascii >= 0x30 && ascii <= 0x39
    }
}
