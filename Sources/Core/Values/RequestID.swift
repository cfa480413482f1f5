/// The idempotency key of a state-changing request: the POS's receipt number, or any id the caller
/// chooses. 1 to 64 printable ASCII characters (0x21-0x7E).
package struct RequestID: Hashable, Sendable, CustomStringConvertible {
    /// The longest request id, in characters.
    package static let lengthMax = 64

    /// The validated text.
    package let rawValue: String

    /// Validates and wraps `text`; nil when empty, too long, or not printable ASCII.
    package init?(_ text: String) {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= RequestID.lengthMax, bytes.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E })
        else { return nil }
        self.rawValue = text
    }

    package var description: String { rawValue }

    /// The sentence used when a request id is invalid.
    package static let rule = "must be 1 to 64 printable ASCII characters without spaces"
}
