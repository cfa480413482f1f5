import Foundation
import GRPCCore
import Testing

/// Requests with an extreme value in one numeric field, for every numeric field of every request
/// of a service, generated from the `.proto` files (so a new field is covered without a new test).
///
/// Each case is a base request's bytes with one field appended: a scalar appended to a message
/// replaces the earlier value (the last one wins), so a top-level field takes the extreme value;
/// a numeric field of a message-typed field is appended as a message holding only that value (a new
/// element of a repeated field, merged into a singular one).
package enum ExtremeRequests {
    package struct Field: Sendable {
        package var name: String
        package var number: Int
        package var type: String
        package var repeated: Bool
    }

    package struct Case: Sendable {
        package var method: String
        /// `field` or `outer.field`, for reports.
        package var path: String
        package var value: String
        package var body: [UInt8]
    }

    /// Every message of the `.proto` files under `folder`, by simple name, with its fields.
    package static func messages(in folder: URL) throws -> [String: [Field]] {
        var messages: [String: [Field]] = [:]
        let files =
            FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "proto" } ?? []
        let field = try Regex(#"^\s*(repeated\s+)?([A-Za-z_][\w.]*)\s+([a-z_][\w]*)\s*=\s*(\d+)"#)
        for file in files {
            var stack: [String] = []
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
                let text = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                let words = text.split(whereSeparator: \.isWhitespace)
                if words.first == "message", words.count >= 2 {
                    stack.append(String(words[1]))
                } else if words.first == "oneof" || words.first == "enum" {
                    stack.append("")  // a block that is not a message of its own
                } else if let match = text.firstMatch(of: field), let message = stack.last(where: { !$0.isEmpty }) {
                    messages[message, default: []].append(
                        Field(
                            name: String(match.output[3].substring ?? ""),
                            number: Int(match.output[4].substring ?? "")!,
                            type: String(match.output[2].substring ?? ""), repeated: match.output[1].substring != nil))
                }
                if text.contains("}"), !stack.isEmpty { stack.removeLast() }
            }
        }
        return messages
    }

    /// The methods of `service` (its simple name) and their request messages.
    package static func methods(of service: String, in folder: URL) throws -> [(method: String, request: String)] {
        let rpc = try Regex(#"rpc\s+(\w+)\s*\(\s*([\w.]+)\s*\)"#)
        var inService = false
        var result: [(String, String)] = []
        let files =
            FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "proto" } ?? []
        for file in files {
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
                if line.hasPrefix("service ") { inService = line.split(separator: " ")[1] == service }
                if inService, let match = line.firstMatch(of: rpc) {
                    result.append((String(match.output[1].substring!), String(match.output[2].substring!)))
                }
                if line.hasPrefix("}") { inService = false }
            }
        }
        return result
    }

    /// The extreme values of a numeric type, as varints (nil for a type that is not numeric).
    static func extremes(of type: String) -> [(String, UInt64)]? {
        switch type {
        case "int64":
            [
                ("0", 0), ("-1", UInt64(bitPattern: -1)), ("Int64.min", UInt64(bitPattern: .min)),
                ("Int64.max", UInt64(Int64.max)),
            ]
        case "int32":
            // Negative int32 values are sign-extended to ten bytes on the wire.
            [
                ("0", 0), ("-1", UInt64(bitPattern: -1)), ("Int32.min", UInt64(bitPattern: Int64(Int32.min))),
                ("Int32.max", UInt64(Int32.max)),
            ]
        case "uint64": [("0", 0), ("UInt64.max", .max), ("2^63", 1 << 63)]
        case "uint32": [("0", 0), ("UInt32.max", UInt64(UInt32.max))]
        case "bool": [("true", 1)]
        default: nil
        }
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = value
        repeat {
            let low = UInt8(rest & 0x7F)
            rest >>= 7
            bytes.append(rest == 0 ? low : low | 0x80)
        } while rest != 0
        return bytes
    }

    /// A varint field `number` holding `value`.
    package static func scalar(_ number: Int, _ value: UInt64) -> [UInt8] {
        varint(UInt64(number << 3)) + varint(value)
    }

    /// A string field `number` holding `text`.
    package static func text(_ number: Int, _ text: String) -> [UInt8] { embedded(number, Array(text.utf8)) }

    static func embedded(_ number: Int, _ body: [UInt8]) -> [UInt8] {
        varint(UInt64(number << 3 | 2)) + varint(UInt64(body.count)) + body
    }

    /// A request the method accepts, as the cases start from: its scalar fields' bytes, and the
    /// bytes of each element of its message-typed fields by field number.
    package struct Base: Sendable {
        package var scalars: [UInt8]
        package var elements: [Int: [[UInt8]]]

        package init(scalars: [UInt8] = [], elements: [Int: [[UInt8]]] = [:]) {
            self.scalars = scalars
            self.elements = elements
        }

        var bytes: [UInt8] {
            scalars
                + elements.sorted { $0.key < $1.key }.flatMap { number, bodies in
                    bodies.flatMap { ExtremeRequests.embedded(number, $0) }
                }
        }
    }

    /// The bytes that, appended to a valid encoding of `message`, set one numeric field to an
    /// extreme value, for every numeric field of the message and of the messages it holds (to
    /// `depth` levels): a scalar appended last wins, and an embedded message appended merges into
    /// the one already there (or adds an element to a repeated field, or switches a oneof).
    package static func fieldCases(
        message: String, protos folder: URL, depth: Int = 3
    ) throws -> [(path: String, value: String, bytes: [UInt8])] {
        let messages = try messages(in: folder)
        func simple(_ name: String) -> String { name.split(separator: ".").last.map(String.init) ?? name }
        func walk(_ name: String, _ depth: Int) -> [(path: String, value: String, bytes: [UInt8])] {
            var result: [(String, String, [UInt8])] = []
            for field in messages[simple(name)] ?? [] {
                if let values = extremes(of: field.type) {
                    for (value, raw) in values { result.append((field.name, value, scalar(field.number, raw))) }
                } else if depth > 1, messages[simple(field.type)] != nil {
                    for inner in walk(field.type, depth - 1) {
                        result.append(("\(field.name).\(inner.path)", inner.value, embedded(field.number, inner.bytes)))
                    }
                }
            }
            return result
        }
        return walk(message, depth)
    }

    /// Every case for `service`: its requests' numeric fields and those of their message fields,
    /// appended to `base(method)` (asked again for each case, so a base may carry fresh request ids).
    /// A message-typed field the base carries has the extreme value
    /// written into its first element (so the rest of the request stays valid); one it does not
    /// carry gets a new element holding only that value.
    package static func cases(
        service: String, protos folder: URL, base: (String) -> Base = { _ in Base() }
    ) throws -> [Case] {
        let messages = try messages(in: folder)
        func simple(_ name: String) -> String { name.split(separator: ".").last.map(String.init) ?? name }
        var cases: [Case] = []
        for (method, request) in try methods(of: service, in: folder) {
            for field in messages[simple(request)] ?? [] {
                if let values = extremes(of: field.type) {
                    for (name, value) in values {
                        let start = base(method)
                        cases.append(
                            Case(
                                method: method, path: field.name, value: name,
                                body: start.bytes + scalar(field.number, value)))
                    }
                } else if let inner = messages[simple(field.type)] {
                    for innerField in inner {
                        for (name, value) in extremes(of: innerField.type) ?? [] {
                            let start = base(method)
                            var changed = start
                            if var bodies = start.elements[field.number], !bodies.isEmpty {
                                bodies[0] += scalar(innerField.number, value)
                                changed.elements[field.number] = bodies
                            } else {
                                changed.elements[field.number] = [scalar(innerField.number, value)]
                            }
                            cases.append(
                                Case(
                                    method: method, path: "\(field.name).\(innerField.name)", value: name,
                                    body: changed.bytes))
                        }
                    }
                }
            }
        }
        return cases
    }
}

extension GRPCClient {
    /// Sends every case to `service` and expects each to be answered OK or with a status that
    /// is not UNKNOWN or INTERNAL.
    package func expectAnswered(
        _ cases: [ExtremeRequests.Case], service: String, metadata: Metadata = [:],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        for item in cases {
            do {
                _ = try await raw(item.body, service: service, method: item.method, metadata: metadata)
            } catch {
                let code = status(of: error).code
                #expect(
                    code != .unknown && code != .internalError, "\(item.method) \(item.path) = \(item.value): \(error)",
                    sourceLocation: sourceLocation)
            }
        }
    }
}
