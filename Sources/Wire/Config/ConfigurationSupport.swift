import Foundation

/// A configuration problem, naming the key.
package struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    package var description: String

    package init(_ description: String) {
        self.description = description
    }
}

/// `host:port` settings (IPv6 as `[::1]:7001`).
package enum Address {
    /// The host and port, or a `ConfigurationError` naming `key`.
    package static func parse(_ text: String, key: String = "address") throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65_535).contains(port)
        else {
            throw ConfigurationError("\(key): must be host:port, for example 127.0.0.1:7001 (found '\(text)')")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError("\(key): the host is missing in '\(text)'") }
        return (host, port)
    }
}

/// Hexadecimal text (key files).
package enum Hex {
    /// The bytes of `text` (pairs of 0-9, a-f, A-F), or nil.
    package static func bytes(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = value(chars[index]), let low = value(chars[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    /// Lower-case hexadecimal text of `bytes` (a SHA-256 digest, say).
    package static func string(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
}

extension Coalition_Sync_V1_OutboxTransaction {
    /// An outbox transaction as stored at the edge and the gateway alike.
    package init(sequence: Int64, transactionID: String, previousHash: Data, payload: Data, occurredAtMs: Int64) {
        self.init()
        self.sequence = UInt64(sequence)
        self.transactionID = transactionID
        self.previousHash = previousHash
        self.payload = payload
        self.occurredAtMs = occurredAtMs
    }
}
