import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import Logging
import Synchronization
import Wire

/// Terminal tokens: each bound to one merchant of the site, stored only as a SHA-256 hash.
///
/// A token is `ct_` followed by 43 base64url characters (32 random bytes). It is printed once
/// when issued. Calls carry it as `authorization: Bearer <token>`.
package final class TerminalRegistry: Sendable {
    /// A terminal as listed by `coalition edge terminal list`.
    package struct Terminal: Sendable {
        package var id: String
        package var merchant: MerchantID
        package var createdAt: Timestamp
        package var revokedAt: Timestamp?
    }

    private struct CacheEntry {
        var merchant: MerchantID
        var until: Int64
    }

    private let pool: DatabasePool
    private let clock: any WallClock
    private let cacheMilliseconds: Int64
    private let cache = Mutex<[Data: CacheEntry]>([:])
    private let failures: Mutex<TokenFailures>
    private let logger: Logger
    /// The most cached tokens; the cache is cleared when it grows past this.
    private static let cacheEntriesMax = 10_000

    package init(
        pool: DatabasePool, clock: any WallClock, cacheMilliseconds: Int,
        tokenFailures: TokenFailures.Settings = TokenFailures.Settings(),
        logger: Logger = Logger(label: "coalition.edge", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.pool = pool
        self.clock = clock
        self.cacheMilliseconds = Int64(cacheMilliseconds)
        self.failures = Mutex(TokenFailures(settings: tokenFailures))
        self.logger = logger
    }

    /// Issues a token for a merchant of this site's program and returns it; only its hash is kept.
    package func issue(merchant: MerchantID, terminalID: String) throws -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token =
            "ct_"
            + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        let now = clock.now()
        do {
            try pool.write { db in
                try db.execute(
                    sql:
                        "INSERT INTO terminals (token_hash, terminal_id, merchant_id, created_at_ms) VALUES (?, ?, ?, ?)",
                    arguments: [Self.hash(token), terminalID, merchant.rawValue, now.milliseconds])
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw ConfigurationError("a terminal named '\(terminalID)' already exists")
        }
        return token
    }

    /// Revokes a terminal by id; false when there is no such active terminal.
    package func revoke(terminalID: String) throws -> Bool {
        let now = clock.now()
        let changed = try pool.write { db in
            try db.execute(
                sql: "UPDATE terminals SET revoked_at_ms = ? WHERE terminal_id = ? AND revoked_at_ms IS NULL",
                arguments: [now.milliseconds, terminalID])
            return db.changesCount
        }
        cache.withLock { $0.removeAll() }
        return changed > 0
    }

    /// Every terminal, oldest first.
    package func list() throws -> [Terminal] {
        try pool.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT terminal_id, merchant_id, created_at_ms, revoked_at_ms FROM terminals ORDER BY created_at_ms, terminal_id"
            ).map { row in
                let revoked: Int64? = row["revoked_at_ms"]
                return Terminal(
                    id: row["terminal_id"], merchant: MerchantID(unchecked: row["merchant_id"]),
                    createdAt: Timestamp(milliseconds: row["created_at_ms"]),
                    revokedAt: revoked.map(Timestamp.init(milliseconds:)))
            }
        }
    }

    /// The merchant a call's bearer token acts for. UNAUTHENTICATED without a valid active token;
    /// a peer (`context.remotePeer`) that keeps failing gets that answer later and later, and is
    /// logged (`TokenFailures`).
    package func authenticate(_ metadata: Metadata, peer: String) async throws -> MerchantID {
        do {
            return try await authenticate(metadata)
        } catch let error as ServiceError {
            let address = TokenFailures.address(ofPeer: peer)
            let now = Uptime.milliseconds
            let verdict = failures.withLock { $0.failed(peer: address, now: now) }
            if let count = verdict.logFailures {
                logger.warning(
                    "wrong terminal token",
                    metadata: [
                        "peer": "\(address)", "failures": "\(count)", "delay_ms": "\(verdict.delayMilliseconds)",
                        "reason": "\(error.rpcErrorMessage)",
                    ])
            }
            if verdict.delayMilliseconds > 0 { try await Task.sleep(for: .milliseconds(verdict.delayMilliseconds)) }
            throw error
        }
    }

    private func authenticate(_ metadata: Metadata) async throws -> MerchantID {
        guard let header = metadata[stringValues: "authorization"].first(where: { _ in true }) else {
            throw ServiceError(.unauthenticated, "missing 'authorization: Bearer <terminal token>' metadata")
        }
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), header.count > prefix.count, header.count <= 200 else {
            throw ServiceError(.unauthenticated, "the authorization metadata must be 'Bearer <terminal token>'")
        }
        let hash = Self.hash(String(header.dropFirst(prefix.count)))
        let now = clock.now().milliseconds
        if let cached = cache.withLock({ $0[hash] }), cached.until > now { return cached.merchant }
        let merchant: String? = try await pool.read { db in
            try String.fetchOne(
                db, sql: "SELECT merchant_id FROM terminals WHERE token_hash = ? AND revoked_at_ms IS NULL",
                arguments: [hash])
        }
        guard let merchant, let id = MerchantID(merchant) else {
            throw ServiceError(.unauthenticated, "the terminal token is unknown or revoked")
        }
        if cacheMilliseconds > 0 {
            cache.withLock { cache in
                if cache.count >= Self.cacheEntriesMax { cache.removeAll() }
                cache[hash] = CacheEntry(merchant: id, until: now + cacheMilliseconds)
            }
        }
        return id
    }

    private static func hash(_ token: String) -> Data {
        Data(SHA256.hash(data: Data(token.utf8)))
    }
}
