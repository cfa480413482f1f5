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

/// Rows written with one statement per chunk: `INSERT … VALUES (…), (…)` or `UPDATE … FROM
/// (VALUES …)`. Every placeholder is cast to its column's type, so a NULL needs no type of its own.
struct PostgresRowsWriter {
    /// The statement before the rows, e.g. `INSERT INTO postings (position, line, account, points) VALUES`.
    let head: String
    /// The statement after the rows (an `ON CONFLICT …`, or `) AS v (…) WHERE …`).
    let tail: String
    /// Each column's type (`bigint`, `text`, `bytea`, `boolean`).
    let types: [String]
    /// The rows so far, in chunks of at most `perChunk` rows (one statement each).
    private var chunks: [(rows: Int, bindings: PostgresBindings)] = []
    private(set) var count = 0
    /// Rows per statement: up to 30,000 values, far below the protocol's 65,535 parameters.
    private var perChunk: Int { max(1, 30_000 / types.count) }

    init(_ head: String, types: [String], tail: String = "") {
        self.head = head
        self.types = types
        self.tail = tail
    }

    /// Appends one row; `body` appends exactly one value per column, in order.
    mutating func add(_ body: (inout PostgresBindings) throws -> Void) rethrows {
        if chunks.isEmpty || chunks[chunks.count - 1].rows == perChunk {
            chunks.append((0, PostgresBindings(capacity: min(perChunk, 64) * types.count)))
        }
        let last = chunks.count - 1
        let before = chunks[last].bindings.count
        try body(&chunks[last].bindings)
        precondition(
            chunks[last].bindings.count - before == types.count, "a row of \(head) has the wrong number of values")
        chunks[last].rows += 1
        count += 1
    }

    /// Writes the rows added, one statement per chunk.
    func write(_ connection: PostgresConnection, _ logger: Logger) async throws {
        for chunk in chunks {
            try await connection.run(
                PostgresQuery(unsafeSQL: statement(rows: chunk.rows), binds: chunk.bindings), logger)
        }
    }

    private func statement(rows: Int) -> String {
        var sql = head + " "
        sql.reserveCapacity(head.count + tail.count + rows * types.count * 12)
        var parameter = 0
        for row in 0..<rows {
            sql += row == 0 ? "(" : ", ("
            for (column, type) in types.enumerated() {
                parameter += 1
                if column > 0 { sql += ", " }
                sql += "$\(parameter)::\(type)"
            }
            sql += ")"
        }
        return sql + " " + tail
    }
}
