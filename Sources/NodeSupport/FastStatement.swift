import Core
import Foundation
import GRDB
import GRDBSQLite

/// A cached statement run with SQLite's C API: values are bound as they are, with no argument
/// array or boxing, for the rows a node writes per transaction on its hot path. Errors come back
/// as GRDB's `DatabaseError`, as from any other statement.
package struct FastStatement {
    private let statement: Statement
    private let handle: OpaquePointer

    package init(_ db: Database, sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
    }

    /// Binds the values `bind` adds, in order, and runs the statement to its end.
    package func run(_ bind: (inout Binder) -> Void) throws {
        sqlite3_reset(handle)
        var binder = Binder(handle: handle)
        bind(&binder)
        precondition(binder.count == sqlite3_bind_parameter_count(handle), "a statement was run with too few values")
        let code = sqlite3_step(handle)
        sqlite3_reset(handle)
        guard code == SQLITE_DONE || code == SQLITE_ROW else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))), sql: statement.sql)
        }
    }

    /// The values of one run, bound left to right.
    package struct Binder {
        fileprivate let handle: OpaquePointer
        private var index: Int32 = 1
        /// How many values are bound.
        var count: Int32 { index - 1 }

        fileprivate init(handle: OpaquePointer) {
            self.handle = handle
        }

        private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        package mutating func add(_ value: Int64) {
            sqlite3_bind_int64(handle, index, value)
            index += 1
        }

        package mutating func add(_ value: Int64?) {
            if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
            index += 1
        }

        package mutating func add(_ value: Int) { add(Int64(value)) }

        package mutating func add(_ value: Int?) { add(value.map(Int64.init)) }

        package mutating func add(_ value: String) {
            var value = value
            value.withUTF8 { bytes in
                // An empty buffer may have no address, which SQLite would bind as NULL.
                if let base = bytes.baseAddress, !bytes.isEmpty {
                    _ = sqlite3_bind_text(handle, index, base, Int32(bytes.count), Self.transient)
                } else {
                    _ = sqlite3_bind_text(handle, index, "", 0, Self.transient)
                }
            }
            index += 1
        }

        /// Binds text of at most `capacity` bytes written by `write` (which returns how many it
        /// wrote) into a temporary buffer: no string is made.
        package mutating func addText(capacity: Int, _ write: (UnsafeMutableBufferPointer<UInt8>) -> Int) {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(1, capacity)) { buffer in
                let count = write(buffer)
                _ = sqlite3_bind_text(handle, index, buffer.baseAddress, Int32(count), Self.transient)
            }
            index += 1
        }

        /// Binds an id's 26 characters.
        package mutating func add(_ id: some TimeOrderedIdentifier) {
            addText(capacity: CrockfordBase32.length128) { buffer in
                CrockfordBase32.encode128(id.value, into: buffer)
                return CrockfordBase32.length128
            }
        }

        package mutating func add<ID: TimeOrderedIdentifier>(_ id: ID?) {
            if let id { add(id) } else { addNull() }
        }

        /// Binds a JSON array of ids (`["01…","01…"]`, for SQLite's `json_each`), written in place.
        package mutating func add<IDs: Collection>(jsonArray ids: IDs) where IDs.Element: TimeOrderedIdentifier {
            let width = CrockfordBase32.length128 + 3
            addText(capacity: 2 + ids.count * width) { buffer in
                buffer[0] = UInt8(ascii: "[")
                var count = 1
                for id in ids {
                    if count > 1 {
                        buffer[count] = UInt8(ascii: ",")
                        count += 1
                    }
                    buffer[count] = UInt8(ascii: "\"")
                    CrockfordBase32.encode128(
                        id.value, into: UnsafeMutableBufferPointer(rebasing: buffer[(count + 1)...]))
                    count += 1 + CrockfordBase32.length128
                    buffer[count] = UInt8(ascii: "\"")
                    count += 1
                }
                buffer[count] = UInt8(ascii: "]")
                return count + 1
            }
        }

        /// Binds an account's stored key (`member:` and the id written in place for members).
        package mutating func add(_ account: Account) {
            guard case .member(let id) = account else { return add(account.key) }
            addText(capacity: 7 + CrockfordBase32.length128) { buffer in
                for (offset, byte) in "member:".utf8.enumerated() { buffer[offset] = byte }
                CrockfordBase32.encode128(id.value, into: UnsafeMutableBufferPointer(rebasing: buffer[7...]))
                return 7 + CrockfordBase32.length128
            }
        }

        package mutating func add(_ value: String?) {
            if let value { add(value) } else { addNull() }
        }

        /// Binds bytes as a blob.
        package mutating func add<Bytes: ContiguousBytes>(blob bytes: Bytes) {
            bytes.withUnsafeBytes { bytes in
                if let base = bytes.baseAddress, !bytes.isEmpty {
                    _ = sqlite3_bind_blob(handle, index, base, Int32(bytes.count), Self.transient)
                } else {
                    _ = sqlite3_bind_zeroblob(handle, index, 0)
                }
            }
            index += 1
        }

        package mutating func add(_ value: Data?) {
            if let value { add(blob: value) } else { addNull() }
        }

        package mutating func addNull() {
            sqlite3_bind_null(handle, index)
            index += 1
        }
    }
}

extension FastStatement {
    /// Binds the values `bind` adds and calls `row` for each result row, reading its columns with
    /// SQLite's C API (no row objects), for the reads a node makes per transaction.
    package func forEach(_ bind: (inout Binder) -> Void, row: (Columns) throws -> Void) throws {
        sqlite3_reset(handle)
        var binder = Binder(handle: handle)
        bind(&binder)
        precondition(binder.count == sqlite3_bind_parameter_count(handle), "a statement was run with too few values")
        defer { sqlite3_reset(handle) }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else {
                throw DatabaseError(
                    resultCode: ResultCode(rawValue: code),
                    message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))), sql: statement.sql)
            }
            try row(Columns(handle: handle))
        }
    }

    /// The columns of the current row, by index from 0.
    package struct Columns {
        fileprivate let handle: OpaquePointer

        package func isNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

        package func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

        package func int64OrNil(_ index: Int32) -> Int64? { isNull(index) ? nil : int64(index) }

        package func string(_ index: Int32) -> String {
            guard let text = sqlite3_column_text(handle, index) else { return "" }
            let count = Int(sqlite3_column_bytes(handle, index))
            return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
        }

        package func stringOrNil(_ index: Int32) -> String? { isNull(index) ? nil : string(index) }

        /// A text column's UTF-8 bytes, valid only inside `body` (no string is made); nil for NULL.
        package func utf8<T>(_ index: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
            guard !isNull(index), let text = sqlite3_column_text(handle, index) else { return nil }
            return body(UnsafeBufferPointer(start: text, count: Int(sqlite3_column_bytes(handle, index))))
        }

        package func bytesOrNil(_ index: Int32) -> [UInt8]? {
            guard !isNull(index) else { return nil }
            let count = Int(sqlite3_column_bytes(handle, index))
            guard count > 0, let blob = sqlite3_column_blob(handle, index) else { return [] }
            return Array(UnsafeRawBufferPointer(start: blob, count: count))
        }
    }
}
