/// Reads typed values out of a `DocumentNode` tree, collecting every problem with its key path
/// instead of stopping at the first.
///
/// Used only while loading one document, on one task; it is a class so that nested readers share
/// one list of problems.
package final class DocumentDiagnostics {
    package private(set) var errors: [ProgramError] = []

    package init() {}

    /// Records a problem at `path`.
    package func fail(_ path: DocumentPath, _ message: String) {
        errors.append(ProgramError(path: path.description, message: message))
    }
}

/// A view of one mapping of the document that remembers which keys were read, so unknown keys
/// (usually typos) are reported by `finish()`.
package final class MapReader {
    package let path: DocumentPath
    package let diagnostics: DocumentDiagnostics
    private let entries: [DocumentEntry]
    private var consumed: Set<String> = []

    /// A reader for `node`, or nil (with a problem recorded) when it is not a mapping.
    package init?(_ node: DocumentNode, at path: DocumentPath, diagnostics: DocumentDiagnostics) {
        guard case .map(let entries) = node else {
            diagnostics.fail(path, "expected a mapping of keys, found \(node.kindName)")
            return nil
        }
        self.path = path
        self.diagnostics = diagnostics
        self.entries = entries
    }

    /// The keys present, in document order.
    package var keys: [String] { entries.map(\.key) }

    /// True when `key` is present (and not null).
    package func has(_ key: String) -> Bool {
        guard let node = entries.first(where: { $0.key == key })?.value else { return false }
        return node != .null
    }

    /// The node at `key`, marking it read. Nil and a problem when required and missing.
    package func node(_ key: String, required: Bool) -> DocumentNode? {
        consumed.insert(key)
        guard let node = entries.first(where: { $0.key == key })?.value, node != .null else {
            if required { diagnostics.fail(path.key(key), "is required") }
            return nil
        }
        return node
    }

    /// Reports every key that no one read.
    package func finish() {
        let known = consumed.sorted().joined(separator: ", ")
        for entry in entries where !consumed.contains(entry.key) {
            diagnostics.fail(path.key(entry.key), "unknown key (expected one of: \(known))")
        }
    }

    // MARK: Typed reads

    /// Text at `key`, 1 to `lengthMax` characters.
    package func string(_ key: String, required: Bool = true, lengthMax: Int = 200) -> String? {
        guard let node = node(key, required: required) else { return nil }
        return Self.string(node, at: path.key(key), lengthMax: lengthMax, diagnostics: diagnostics)
    }

    /// A slug identifier at `key`.
    package func slug<ID: SlugIdentifier>(_ key: String, as type: ID.Type, required: Bool = true) -> ID? {
        guard let node = node(key, required: required) else { return nil }
        return Self.slug(node, at: path.key(key), as: type, diagnostics: diagnostics)
    }

    /// A whole number at `key` within `range`.
    package func integer(_ key: String, in range: ClosedRange<Int64>, required: Bool = true) -> Int64? {
        guard let node = node(key, required: required) else { return nil }
        return Self.integer(node, at: path.key(key), in: range, diagnostics: diagnostics)
    }

    /// An exact decimal rate at `key`, not negative, at most `maximum`.
    package func rate(_ key: String, maximum: Rate = Rate(integer: Rate.parsedMax), required: Bool = true) -> Rate? {
        guard let node = node(key, required: required) else { return nil }
        return Self.rate(node, at: path.key(key), maximum: maximum, diagnostics: diagnostics)
    }

    /// A nested mapping at `key`.
    package func map(_ key: String, required: Bool = true) -> MapReader? {
        guard let node = node(key, required: required) else { return nil }
        return MapReader(node, at: path.key(key), diagnostics: diagnostics)
    }

    /// A list at `key`, as (path, item) pairs.
    package func list(_ key: String, required: Bool = true) -> [(path: DocumentPath, node: DocumentNode)]? {
        guard let node = node(key, required: required) else { return nil }
        guard case .list(let items) = node else {
            diagnostics.fail(path.key(key), "expected a list, found \(node.kindName)")
            return nil
        }
        return items.enumerated().map { (path.key(key).index($0.offset), $0.element) }
    }

    /// A list of slugs at `key`, reporting duplicates.
    package func slugSet<ID: SlugIdentifier>(_ key: String, as type: ID.Type, required: Bool = false) -> Set<ID> {
        guard let items = list(key, required: required) else { return [] }
        var result: Set<ID> = []
        for item in items {
            guard let id = Self.slug(item.node, at: item.path, as: type, diagnostics: diagnostics) else { continue }
            if !result.insert(id).inserted { diagnostics.fail(item.path, "'\(id)' is listed twice") }
        }
        return result
    }

    // MARK: Scalar conversions

    package static func scalar(_ node: DocumentNode, at path: DocumentPath, diagnostics: DocumentDiagnostics) -> String?
    {
        guard case .scalar(let text) = node else {
            diagnostics.fail(path, "expected a single value, found \(node.kindName)")
            return nil
        }
        return text
    }

    package static func string(
        _ node: DocumentNode, at path: DocumentPath, lengthMax: Int, diagnostics: DocumentDiagnostics
    ) -> String? {
        guard let text = scalar(node, at: path, diagnostics: diagnostics) else { return nil }
        guard !text.isEmpty, text.count <= lengthMax else {
            diagnostics.fail(path, "must be 1 to \(lengthMax) characters")
            return nil
        }
        return text
    }

    package static func slug<ID: SlugIdentifier>(
        _ node: DocumentNode, at path: DocumentPath, as type: ID.Type, diagnostics: DocumentDiagnostics
    ) -> ID? {
        guard let text = scalar(node, at: path, diagnostics: diagnostics) else { return nil }
        guard let id = ID(text) else {
            diagnostics.fail(path, "'\(text)' is not a valid id: it \(Slug.rule)")
            return nil
        }
        return id
    }

    package static func integer(
        _ node: DocumentNode, at path: DocumentPath, in range: ClosedRange<Int64>, diagnostics: DocumentDiagnostics
    ) -> Int64? {
        guard let text = scalar(node, at: path, diagnostics: diagnostics) else { return nil }
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else {
            diagnostics.fail(path, "'\(text)' is not a whole number")
            return nil
        }
        guard let value = Int64(text) else {
            diagnostics.fail(
                path, "'\(text)' is out of range: must be between \(range.lowerBound) and \(range.upperBound)")
            return nil
        }
        guard range.contains(value) else {
            if value < 0 && range.lowerBound >= 0 {
                diagnostics.fail(path, "must not be negative (found \(value))")
            } else {
                diagnostics.fail(path, "must be between \(range.lowerBound) and \(range.upperBound) (found \(value))")
            }
            return nil
        }
        return value
    }

    package static func rate(
        _ node: DocumentNode, at path: DocumentPath, maximum: Rate, diagnostics: DocumentDiagnostics
    ) -> Rate? {
        guard let text = scalar(node, at: path, diagnostics: diagnostics) else { return nil }
        guard let rate = Rate(parsing: text) else {
            // Digits with at most the allowed decimals, but too large to hold: out of range.
            let parts = (text.hasPrefix("-") ? text.dropFirst() : Substring(text)).split(
                separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            if let whole = parts.first, !whole.isEmpty, whole.allSatisfy(\.isASCIIDigit),
                parts.count == 1
                    || (!parts[1].isEmpty && parts[1].count <= Rate.fractionDigitsMax
                        && parts[1].allSatisfy(\.isASCIIDigit))
            {
                diagnostics.fail(path, "'\(text)' is out of range: must be at most \(maximum)")
                return nil
            }
            diagnostics.fail(
                path,
                "'\(text)' is not an exact decimal (write it like \"0.5\", at most \(Rate.fractionDigitsMax) decimals)")
            return nil
        }
        guard rate >= .zero else {
            diagnostics.fail(path, "must not be negative (found \(rate))")
            return nil
        }
        guard rate <= maximum else {
            diagnostics.fail(path, "must be at most \(maximum) (found \(rate))")
            return nil
        }
        return rate
    }
}
