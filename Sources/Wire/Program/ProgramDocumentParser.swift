import Core
internal import Yams

/// Reads a program file (YAML, or JSON, which YAML also reads) into Core's document tree and a
/// validated `Program`. The only place that knows the text formats.
package enum ProgramDocumentParser: Sendable {
    /// The largest program document accepted, in bytes (1 MiB).
    package static let documentBytesMax = 1 << 20
    /// The most values (scalars, lists, mappings) a document may hold once YAML aliases are
    /// expanded: bounds the work an alias-nesting document could cause.
    package static let documentNodesMax = 100_000

    /// Parses and validates a program document. Throws `ProgramErrors` for a document that is too
    /// big, not UTF-8, not YAML/JSON, or not a valid program; each error names its key path.
    package static func load(_ bytes: [UInt8]) throws(ProgramErrors) -> Program {
        try ProgramLoader.load(parse(bytes))
    }

    /// Parses text into the document tree without giving it meaning.
    package static func parse(_ bytes: [UInt8]) throws(ProgramErrors) -> DocumentNode {
        func failure(_ message: String) -> ProgramErrors {
            ProgramErrors(errors: [ProgramError(path: DocumentPath.root.description, message: message)])
        }
        guard bytes.count <= documentBytesMax else {
            throw failure("the document is \(bytes.count) bytes; at most \(documentBytesMax) are accepted")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw failure("the document is not UTF-8 text")
        }
        let root: Node?
        do {
            root = try compose(yaml: text)
        } catch {
            throw failure("not valid YAML or JSON: \(describe(error))")
        }
        guard let root else { throw failure("the document is empty") }
        var budget = documentNodesMax
        return try convert(root, budget: &budget)
    }

    private static func convert(_ node: Node, budget: inout Int) throws(ProgramErrors) -> DocumentNode {
        budget -= 1
        guard budget >= 0 else {
            throw ProgramErrors(errors: [
                ProgramError(
                    path: DocumentPath.root.description,
                    message: "the document holds more than \(documentNodesMax) values (with YAML aliases expanded)")
            ])
        }
        switch node {
        case .scalar(let scalar):
            return node.tag.rawValue == Tag.Name.null.rawValue ? .null : .scalar(scalar.string)
        case .sequence(let sequence):
            var items: [DocumentNode] = []
            for item in sequence { items.append(try convert(item, budget: &budget)) }
            return .list(items)
        case .mapping(let mapping):
            var entries: [DocumentEntry] = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw ProgramErrors(errors: [
                        ProgramError(
                            path: DocumentPath.root.description, message: "a mapping key must be a plain value")
                    ])
                }
                entries.append(DocumentEntry(key: keyScalar.string, value: try convert(value, budget: &budget)))
            }
            return .map(entries)
        case .alias:
            throw ProgramErrors(errors: [
                ProgramError(
                    path: DocumentPath.root.description, message: "YAML aliases (*name) are not accepted in a program")
            ])
        }
    }

    private static func describe(_ error: any Error) -> String {
        guard let yaml = error as? YamlError else { return String(describing: error) }
        switch yaml {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)"
        case .duplicatedKeysInMapping(let duplicates, _):
            return "duplicated keys \(duplicates.joined(separator: ", "))"
        default:
            return String(describing: yaml).split(separator: "\n").first.map(String.init) ?? "unreadable"
        }
    }
}
