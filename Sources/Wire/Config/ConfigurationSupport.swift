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
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw ConfigurationError("\(key): must be host:port, for example 127.0.0.1:7001 (found '\(text)')")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError("\(key): the host is missing in '\(text)'") }
        return (host, port)
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
