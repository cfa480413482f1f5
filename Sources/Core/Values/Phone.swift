/// A phone number in E.164 form: `+`, a country code not starting with 0, 7 to 15 digits in all.
package struct PhoneNumber: Hashable, Sendable, CustomStringConvertible {
    /// The validated text, for example `+8613800138000`.
    package let rawValue: String

    /// Validates and wraps `text`; nil when it is not E.164.
    package init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 8, bytes.count <= 16, bytes[0] == 0x2B, bytes[1] >= 0x31, bytes[1] <= 0x39,
            bytes.dropFirst().allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
        else { return nil }
        self.rawValue = text
    }

    package var description: String { rawValue }

    /// The sentence used when a phone number is invalid.
    package static let rule = "must be an E.164 number such as +8613800138000 (+, then 7 to 15 digits)"
}
