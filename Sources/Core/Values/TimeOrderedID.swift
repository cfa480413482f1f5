/// A 128-bit identifier ordered by time: 48 bits of Unix milliseconds, then 80 random bits.
///
/// Written as 26 characters of Crockford base32 (`0-9A-Z` without `I L O U`), so the text sorts
/// like the number. Minted where the thing happens (edge or gateway) from the current instant and
/// a random number generator the caller passes in; Core reads no clock.
package protocol TimeOrderedIdentifier: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 128-bit value.
    var value: UInt128 { get }
    /// Wraps a raw 128-bit value.
    init(value: UInt128)
}

extension TimeOrderedIdentifier {
    /// Mints a new identifier for the instant `time` with 80 bits from `generator`.
    package init(time: Timestamp, using generator: inout some RandomNumberGenerator) {
        precondition(time.milliseconds >= 0 && time.milliseconds < (1 << 48), "time out of the 48-bit range")
        let high = UInt128(UInt64(time.milliseconds)) << 80
        let upper: UInt64 = generator.next() & 0xFFFF
        let lower: UInt64 = generator.next()
        let random = (UInt128(upper) << 64) | UInt128(lower)
        self.init(value: high | random)
    }

    /// Parses the 26-character text form; accepts lowercase. Nil for anything else.
    package init?(_ text: String) {
        guard let value = CrockfordBase32.decode128(text) else { return nil }
        self.init(value: value)
    }

    /// Parses the text form given as UTF-8 bytes.
    package init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        guard let value = CrockfordBase32.decode128(utf8: bytes) else { return nil }
        self.init(value: value)
    }

    /// The millisecond time the identifier was minted at.
    package var time: Timestamp { Timestamp(milliseconds: Int64(value >> 80)) }

    /// The 26-character text form.
    package var description: String { CrockfordBase32.encode128(value) }

    package static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
}

/// A member of the network.
package struct MemberID: TimeOrderedIdentifier {
    package let value: UInt128
    package init(value: UInt128) { self.value = value }
}

/// A transaction of the ledger, minted where it happened.
package struct TransactionID: TimeOrderedIdentifier {
    package let value: UInt128
    package init(value: UInt128) { self.value = value }
}

/// Crockford's base32 for 128-bit values: 26 characters, the first at most `7`.
package enum CrockfordBase32: Sendable {
    /// The text length of a 128-bit value.
    package static let length128 = 26
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// Each byte's digit value (either case), or 0xFF for a byte outside the alphabet.
    private static let digits: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() {
            table[Int(byte)] = UInt8(index)
            if byte >= UInt8(ascii: "A") { table[Int(byte) + 0x20] = UInt8(index) }
        }
        return table
    }()

    /// Encodes `value` as 26 characters, most significant first.
    /// Writes the 26 characters of `value` to the start of `buffer` (at least 26 bytes), with no
    /// string made (for binding an id to a statement).
    package static func encode128(_ value: UInt128, into buffer: UnsafeMutableBufferPointer<UInt8>) {
        precondition(buffer.count >= length128)
        var rest = value
        for index in stride(from: length128 - 1, through: 0, by: -1) {
            buffer[index] = alphabet[Int(rest & 0x1F)]
            rest >>= 5
        }
    }

    package static func encode128(_ value: UInt128) -> String {
        String(unsafeUninitializedCapacity: length128) { buffer in
            var rest = value
            for index in stride(from: length128 - 1, through: 0, by: -1) {
                buffer[index] = alphabet[Int(rest & 0x1F)]
                rest >>= 5
            }
            return length128
        }
    }

    /// Decodes 26 characters (case-insensitive); nil when the length, a character, or the range
    /// (first character above `7`) is wrong.
    package static func decode128(_ text: String) -> UInt128? {
        var text = text
        return text.withUTF8 { decode128(utf8: $0) }
    }

    /// Decodes 26 characters given as UTF-8 bytes (as a database hands them out).
    package static func decode128(utf8 bytes: UnsafeBufferPointer<UInt8>) -> UInt128? {
        guard bytes.count == length128 else { return nil }
        var value: UInt128 = 0
        for index in 0..<length128 {
            let digit = digits[Int(bytes[index])]
            guard digit != 0xFF, index != 0 || digit <= 7 else { return nil }
            value = (value << 5) | UInt128(digit)
        }
        return value
    }
}
