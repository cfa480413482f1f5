import Foundation
import Logging
import PostgresNIO

/// Small helpers over postgres-nio for the ledger: rows read whole, statements run to completion,
/// and multi-row writes (one statement for many rows: a push writes hundreds).
extension PostgresConnection {
    /// Every row of `query`.
    func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRandomAccessRow] {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await self.query(query, logger: logger) { rows.append(row.makeRandomAccess()) }
        return rows
    }

    /// The first column of the first row of `query`, if any.
    func value<Value: PostgresDecodable>(_ query: PostgresQuery, as type: Value.Type, _ logger: Logger) async throws
        -> Value?
    {
        for try await row in try await self.query(query, logger: logger) {
            return try row.makeRandomAccess()[0].decode(Value.self)
        }
        return nil
    }

    /// Runs `query`, reading and dropping any rows.
    func run(_ query: PostgresQuery, _ logger: Logger) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }
}

extension PostgresRandomAccessRow {
    func int(_ column: String) throws -> Int64 { try self[column].decode(Int64.self) }
    func intOrNil(_ column: String) throws -> Int64? { try self[column].decode(Int64?.self) }
    func text(_ column: String) throws -> String { try self[column].decode(String.self) }
    func textOrNil(_ column: String) throws -> String? { try self[column].decode(String?.self) }
    func bytes(_ column: String) throws -> Data { try self[column].decode(Data.self) }
    func bytesOrNil(_ column: String) throws -> Data? { try self[column].decode(Data?.self) }
    func bool(_ column: String) throws -> Bool { try self[column].decode(Bool.self) }
}

/// Rows written with one statement: each column bound as one array and the rows read back with
/// `unnest`, as `INSERT INTO t (a, b) SELECT * FROM unnest($1::bigint[], $2::text[]) …` or
/// `UPDATE t SET … FROM (SELECT * FROM unnest(…)) AS v (…) WHERE …`. The statement's text is the
/// same for any number of rows, so the server parses a short statement instead of a VALUES list
/// of thousands of parameters (which took a third of its time, docs/benchmarks.md).
package struct PostgresRowsWriter {
    /// The statement before the rows, e.g. `INSERT INTO postings (position, line, account, points)`
    /// or `UPDATE … FROM (`.
    let head: String
    /// The statement after the rows (an `ON CONFLICT …`, or `) AS v (…) WHERE …`).
    let tail: String
    /// Each column's type.
    let types: [ColumnType]
    private var columns: [Column]
    private(set) var count = 0

    package enum ColumnType: String, Sendable {
        case bigint, text, bytea, boolean

        var element: PostgresDataType {
            switch self {
            case .bigint: .int8
            case .text: .text
            case .bytea: .bytea
            case .boolean: .bool
            }
        }

        var array: PostgresDataType {
            switch self {
            case .bigint: .int8Array
            case .text: .textArray
            case .bytea: .byteaArray
            case .boolean: .boolArray
            }
        }
    }

    /// One column's elements in PostgreSQL's binary array layout (a length, -1 for NULL, then the
    /// value's bytes).
    fileprivate struct Column {
        var elements = ByteBuffer()
        var hasNull = false
    }

    package init(_ head: String, types: [ColumnType], tail: String = "") {
        self.head = head
        self.types = types
        self.tail = tail
        self.columns = Array(repeating: Column(), count: types.count)
    }

    /// One row's values, appended in column order.
    package struct Row: ~Copyable {
        fileprivate var columns: [Column]
        fileprivate let types: [ColumnType]
        fileprivate var next = 0

        private mutating func put(_ type: ColumnType, _ write: (inout ByteBuffer) -> Void) {
            precondition(next < types.count && types[next] == type, "a row's value \(next) is not a \(type)")
            write(&columns[next].elements)
            next += 1
        }

        private mutating func putNull() {
            precondition(next < types.count, "a row has more values than columns")
            columns[next].elements.writeInteger(Int32(-1))
            columns[next].hasNull = true
            next += 1
        }

        mutating func append(_ value: Int64?) {
            guard let value else { return putNull() }
            put(.bigint) {
                $0.writeInteger(Int32(8))
                $0.writeInteger(value)
            }
        }

        mutating func append(_ value: String?) {
            guard let value else { return putNull() }
            put(.text) {
                let lengthAt = $0.writerIndex
                $0.writeInteger(Int32(0))
                let written = $0.writeString(value)
                $0.setInteger(Int32(written), at: lengthAt)
            }
        }

        mutating func append(_ value: Data?) {
            guard let value else { return putNull() }
            put(.bytea) {
                $0.writeInteger(Int32(value.count))
                $0.writeBytes(value)
            }
        }

        mutating func append(_ value: Bool?) {
            guard let value else { return putNull() }
            put(.boolean) {
                $0.writeInteger(Int32(1))
                $0.writeInteger(UInt8(value ? 1 : 0))
            }
        }

        /// A value as the server sent it (binary format, of the column's type).
        package mutating func append(_ value: PostgresData) {
            guard var bytes = value.value else { return putNull() }
            precondition(value.formatCode == .binary && value.type == types[next].element, "a value of another type")
            put(types[next]) {
                $0.writeInteger(Int32(bytes.readableBytes))
                $0.writeBuffer(&bytes)
            }
        }
    }

    /// Appends one row; `body` appends exactly one value per column, in order.
    package mutating func add(_ body: (inout Row) throws -> Void) rethrows {
        var row = Row(columns: columns, types: types)
        columns = []
        defer { columns = row.columns }
        try body(&row)
        precondition(row.next == types.count, "a row of \(head) has the wrong number of values")
        count += 1
    }

    /// Writes the rows added, in one statement.
    package func write(_ connection: PostgresConnection, _ logger: Logger) async throws {
        guard count > 0 else { return }
        var bindings = PostgresBindings(capacity: types.count)
        var arrays: [String] = []
        for (index, (type, column)) in zip(types, columns).enumerated() {
            var array = ByteBuffer()
            array.reserveCapacity(20 + column.elements.readableBytes)
            array.writeInteger(Int32(1))  // dimensions
            array.writeInteger(Int32(column.hasNull ? 1 : 0))
            array.writeInteger(type.element.rawValue)
            array.writeInteger(Int32(count))  // elements
            array.writeInteger(Int32(1))  // lower bound
            var elements = column.elements
            array.writeBuffer(&elements)
            bindings.append(PostgresData(type: type.array, formatCode: .binary, value: array))
            arrays.append("$\(index + 1)::\(type.rawValue)[]")
        }
        try await connection.run(
            PostgresQuery(
                unsafeSQL: "\(head) SELECT * FROM unnest(\(arrays.joined(separator: ", "))) \(tail)", binds: bindings),
            logger)
    }
}
