import Foundation
import GRDB
import GRPCCore
import Gateway
import Logging
import PostgresNIO
import Testing

/// Which store a test's gateway keeps its ledger in: every test that takes this argument runs on
/// both (issue #15: one contract suite, two stores).
enum LedgerKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }
}

/// Reads of a gateway's ledger by SQL, on whichever store it has: the statements use what both
/// dialects share (`?` placeholders, numbered for PostgreSQL; `CAST(… AS BIGINT)` for sums).
struct LedgerSQL: Sendable {
    enum Source: Sendable {
        case sqlite(GatewayDatabase)
        case postgres(PostgresClient)
        case down
    }

    let source: Source

    init(node: GatewayNode) {
        source =
            if let postgres = node.ledger as? PostgresLedgerStore {
                .postgres(postgres.database.client)
            } else {
                .sqlite(node.store.database)
            }
    }

    /// Reads of a SQLite ledger (none: every read fails, as of a gateway that is down).
    init(sqlite database: GatewayDatabase?) {
        source = database.map { .sqlite($0) } ?? .down
    }

    /// Reads through a pool of the test's own (gateways in other processes).
    init(client: PostgresClient) {
        source = .postgres(client)
    }

    /// Every row of `sql`, each column as text (nil for NULL).
    func rows(_ sql: String, _ arguments: [String] = []) async throws -> [[String?]] {
        if case .postgres(let client) = source {
            var numbered = ""
            var parameter = 0
            for character in sql {
                if character == "?" {
                    parameter += 1
                    numbered += "$\(parameter)"
                } else {
                    numbered.append(character)
                }
            }
            var binds = PostgresBindings()
            for argument in arguments { binds.append(argument) }
            var rows: [[String?]] = []
            for try await row in try await client.query(
                PostgresQuery(unsafeSQL: numbered, binds: binds))
            {
                rows.append(
                    try row.map { cell -> String? in
                        guard cell.bytes != nil else { return nil }
                        switch cell.dataType {
                        case .int8: return String(try cell.decode(Int64.self))
                        case .int4: return String(try cell.decode(Int32.self))
                        case .int2: return String(try cell.decode(Int16.self))
                        case .bool: return String(try cell.decode(Bool.self))
                        case .numeric: return "\(try cell.decode(Decimal.self))"
                        default: return try cell.decode(String.self)
                        }
                    })
            }
            return rows
        }
        guard case .sqlite(let database) = source else {
            throw RPCError(code: .unavailable, message: "the gateway is down")
        }
        return try await database.pool.read { db in try Self.rows(db, sql, arguments) }
    }

    /// Every row of `sql` on a SQLite ledger, each column as text (nil for NULL).
    static func rows(_ db: Database, _ sql: String, _ arguments: [String] = []) throws -> [[String?]] {
        try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map { row in
            row.databaseValues.map { value -> String? in
                switch value.storage {
                case .null: nil
                case .int64(let number): String(number)
                case .double(let number): String(number)
                case .string(let text): text
                case .blob(let data): data.base64EncodedString()
                }
            }
        }
    }

    /// Runs a statement that changes the ledger (a test's tampering).
    func execute(_ sql: String, _ arguments: [String] = []) async throws {
        if case .sqlite(let database) = source {
            try await database.pool.write { db in try db.execute(sql: sql, arguments: StatementArguments(arguments)) }
        } else {
            _ = try await rows(sql, arguments)
        }
    }

    /// The first column of the first row as an integer, if any.
    func int(_ sql: String, _ arguments: [String] = []) async throws -> Int64? {
        guard let cell = try await rows(sql, arguments).first?.first, let text = cell else { return nil }
        return Int64(text)
    }

    /// The first column of every row.
    func strings(_ sql: String, _ arguments: [String] = []) async throws -> [String] {
        try await rows(sql, arguments).compactMap { $0.first ?? nil }
    }
}
