/// A parsed program file (YAML or JSON) as a plain tree, before any meaning is given to it.
///
/// Parsing text into this tree is the job of a format reader outside Core (`Wire` uses Yams);
/// `ProgramLoader` turns the tree into a validated `Program`, with errors that name the key path.
package indirect enum DocumentNode: Sendable, Equatable {
    /// A scalar as written (`0.5`, `gold`, `2026-11-28`), always as text.
    case scalar(String)
    /// An explicit null or an empty value.
    case null
    /// A sequence.
    case list([DocumentNode])
    /// A mapping in document order; keys are unique.
    case map([DocumentEntry])

    /// A short name of the node's kind for error messages.
    package var kindName: String {
        switch self {
        case .scalar: return "a value"
        case .null: return "nothing"
        case .list: return "a list"
        case .map: return "a mapping"
        }
    }
}

/// One key and value of a mapping.
package struct DocumentEntry: Sendable, Equatable {
    package var key: String
    package var value: DocumentNode

    package init(key: String, value: DocumentNode) {
        self.key = key
        self.value = value
    }
}

/// Where in the document something is, written as `sites[0].merchants[2].category`.
package struct DocumentPath: Hashable, Sendable, CustomStringConvertible {
    private var components: [String]

    /// The document's root.
    package static let root = DocumentPath(components: [])

    private init(components: [String]) {
        self.components = components
    }

    /// The path of `key` in the mapping at this path.
    package func key(_ key: String) -> DocumentPath {
        DocumentPath(components: components + [components.isEmpty ? key : ".\(key)"])
    }

    /// The path of item `index` in the list at this path.
    package func index(_ index: Int) -> DocumentPath {
        DocumentPath(components: components + ["[\(index)]"])
    }

    package var description: String { components.isEmpty ? "(document)" : components.joined() }
}

/// A problem in a program document: where, and what is wrong.
package struct ProgramError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The key path, for example `tiers[1].threshold`.
    package var path: String
    /// What is wrong, in a sentence an operator understands.
    package var message: String

    package init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    package var description: String { "\(path): \(message)" }
}

/// All problems found in a program document; the loader reports every one, not just the first.
package struct ProgramErrors: Error, Sendable, CustomStringConvertible {
    /// At least one problem, in document order of discovery.
    package var errors: [ProgramError]

    package init(errors: [ProgramError]) {
        self.errors = errors
    }

    package var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension DocumentNode: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    package init(stringLiteral value: String) { self = .scalar(value) }
    package init(integerLiteral value: Int64) { self = .scalar(String(value)) }
    package init(arrayLiteral elements: DocumentNode...) { self = .list(elements) }
    /// Keeps the literal's order, as a document does.
    package init(dictionaryLiteral elements: (String, DocumentNode)...) {
        self = .map(elements.map { DocumentEntry(key: $0.0, value: $0.1) })
    }
    package init(nilLiteral: ()) { self = .null }

    /// This node with the value at a dotted key path (`tiers.levels.1.threshold`, list items by
    /// index) replaced, or removed when `value` is nil. A missing key is added. Used to derive
    /// variants of a document (tests, tools).
    package func setting(_ path: String, to value: DocumentNode?) -> DocumentNode {
        setting(path.split(separator: ".").map(String.init)[...], to: value)
    }

    private func setting(_ keys: ArraySlice<String>, to value: DocumentNode?) -> DocumentNode {
        guard let key = keys.first else { return value ?? .null }
        let rest = keys.dropFirst()
        switch self {
        case .map(var entries):
            if let index = entries.firstIndex(where: { $0.key == key }) {
                if rest.isEmpty, value == nil {
                    entries.remove(at: index)
                } else {
                    entries[index].value = entries[index].value.setting(rest, to: value)
                }
            } else if let value {
                entries.append(DocumentEntry(key: key, value: DocumentNode.map([]).setting(rest, to: value)))
            }
            return .map(entries)
        case .list(var items):
            guard let index = Int(key), items.indices.contains(index) else { return self }
            if rest.isEmpty, value == nil {
                items.remove(at: index)
            } else {
                items[index] = items[index].setting(rest, to: value)
            }
            return .list(items)
        case .scalar, .null:
            return rest.isEmpty ? (value ?? .null) : DocumentNode.map([]).setting(keys, to: value)
        }
    }
}
