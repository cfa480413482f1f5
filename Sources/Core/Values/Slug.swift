/// A lowercase slug identifier: `[a-z0-9][a-z0-9-]{0,31}`.
///
/// Site, merchant, format, category, tier and promotion ids are slugs. Each has its own type so a
/// merchant id cannot be passed where a site id is expected.
package protocol SlugIdentifier: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The validated text.
    var rawValue: String { get }
    /// Wraps text already validated by `Slug.isValid`.
    init(unchecked rawValue: String)
}

extension SlugIdentifier {
    /// Validates and wraps `text`; nil when it is not a slug.
    package init?(_ text: String) {
        guard Slug.isValid(text) else { return nil }
        self.init(unchecked: text)
    }

    package var description: String { rawValue }

    package static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The slug grammar shared by all slug identifiers.
package enum Slug: Sendable {
    /// The longest slug, in characters.
    package static let lengthMax = 32

    /// True when `text` matches `[a-z0-9][a-z0-9-]{0,31}`.
    package static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= lengthMax else { return false }
        for (index, byte) in bytes.enumerated() {
            let isLowerOrDigit = (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
            if !(isLowerOrDigit || (index > 0 && byte == 0x2D)) { return false }
        }
        return true
    }

    /// The sentence used when a slug is invalid.
    package static let rule = "must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit"
}

/// A property of the group (a mall, a hotel, a car park, …).
package struct SiteID: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A merchant; it belongs to exactly one site.
package struct MerchantID: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A site's format: `mall`, `hotel`, `parking`, `property`, `tourism`, `office`, … The set of
/// formats is open; a program gives each format it uses a base earn rate.
package struct Format: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A merchant or bill-line category, such as `grocery` or `tobacco`.
package struct Category: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A tier of the program, such as `gold`.
package struct TierID: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A promotion of the program.
package struct PromotionID: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// An item of the points mall's catalog.
package struct ItemID: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A lottery of the points mall.
package struct LotteryID: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A prize of a lottery.
package struct PrizeID: SlugIdentifier {
    package let rawValue: String
    package init(unchecked rawValue: String) { self.rawValue = rawValue }
}
