import Core

/// The stored text form of a member's last earn per format, `mall=1795000000000;hotel=1795000001000`
/// (formats sorted), used by the edge replica and the gateway alike.
package enum LastEarnEncoding {
    package static func encode(_ values: [Format: Timestamp]) -> String {
        let pairs = sorted(values)
        return String(unsafeUninitializedCapacity: capacity(pairs)) { write(pairs, into: $0) }
    }

    /// The pairs in the order they are written (by format).
    package static func sorted(_ values: [Format: Timestamp]) -> [(key: Format, value: Timestamp)] {
        values.count < 2 ? Array(values) : values.sorted { $0.key < $1.key }
    }

    /// Bytes enough for `pairs` written by `write`.
    package static func capacity(_ pairs: [(key: Format, value: Timestamp)]) -> Int {
        pairs.reduce(0) { $0 + $1.key.rawValue.utf8.count + 22 }
    }

    /// Writes `format=milliseconds;…` into `buffer` (at least `capacity(pairs)` bytes) with no
    /// string made; returns the bytes written.
    package static func write(
        _ pairs: [(key: Format, value: Timestamp)], into buffer: UnsafeMutableBufferPointer<UInt8>
    ) -> Int {
        var count = 0
        for (index, (format, time)) in pairs.enumerated() {
            if index > 0 {
                buffer[count] = UInt8(ascii: ";")
                count += 1
            }
            for byte in format.rawValue.utf8 {
                buffer[count] = byte
                count += 1
            }
            buffer[count] = UInt8(ascii: "=")
            count += 1
            if time.milliseconds < 0 {
                buffer[count] = UInt8(ascii: "-")
                count += 1
            }
            var value = time.milliseconds.magnitude
            let start = count
            repeat {
                buffer[count] = UInt8(ascii: "0") + UInt8(value % 10)
                count += 1
                value /= 10
            } while value > 0
            var (low, high) = (start, count - 1)
            while low < high {
                buffer.swapAt(low, high)
                low += 1
                high -= 1
            }
        }
        return count
    }

    /// Pairs that do not parse are skipped.
    package static func decode(_ text: String) -> [Format: Timestamp] {
        var text = text
        return text.withUTF8 { decode(utf8: $0) }
    }

    /// Decodes from the text's UTF-8 bytes (as a database hands them out): no string is made but
    /// each format's (short, so inline) name.
    package static func decode(utf8 bytes: UnsafeBufferPointer<UInt8>) -> [Format: Timestamp] {
        guard !bytes.isEmpty else { return [:] }
        var result: [Format: Timestamp] = [:]
        result.reserveCapacity(4)
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: ";") { end += 1 }
            if let pair = pair(UnsafeBufferPointer(rebasing: bytes[start..<end])) { result[pair.0] = pair.1 }
            start = end + 1
        }
        return result
    }

    private static func pair(_ bytes: UnsafeBufferPointer<UInt8>) -> (Format, Timestamp)? {
        guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")), equals > 0, equals + 1 < bytes.count,
            let format = Format(String(decoding: bytes[..<equals], as: UTF8.self))
        else { return nil }
        var negative = false
        var index = equals + 1
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < bytes.count, bytes.count - index <= 18 else { return nil }
        var value: Int64 = 0
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int64(digit)
            index += 1
        }
        return (format, Timestamp(milliseconds: negative ? -value : value))
    }
}
