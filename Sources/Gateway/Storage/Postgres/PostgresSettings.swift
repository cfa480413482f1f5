import Crypto
import Foundation
import NodeSupport
import SwiftASN1
import Wire
import X509

/// Where a gateway's PostgreSQL ledger is (`database: postgres://user@host:port/db` in its config;
/// docs/scale.md). The password is never in the URL: it comes from `database_password_file` or the
/// `COALITION_DATABASE_PASSWORD` environment variable.
package struct PostgresSettings: Sendable, Equatable, CustomStringConvertible {
    package var host: String
    package var port: Int
    package var user: String
    package var database: String
    package var password: String?
    /// `disable` (loopback or a private network) or `require` (TLS to the database, the system's
    /// trust roots).
    package var tls: TLSMode
    /// Connections the gateway keeps to the database at most (`database_connections_max`).
    package var connectionsMax: Int
    /// How long connecting may take before the gateway says the database is down, in milliseconds
    /// (`database_connect_timeout_ms`).
    package var connectTimeoutMilliseconds: Int
    /// Connections of their own for claiming ledger positions (`database_claim_connections`).
    package var claimConnections = 2

    package enum TLSMode: String, Sendable, Equatable {
        case disable, require
    }

    package init(
        host: String, port: Int = 5432, user: String, database: String, password: String? = nil,
        tls: TLSMode = .disable, connectionsMax: Int = 16, connectTimeoutMilliseconds: Int = 10_000
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.password = password
        self.tls = tls
        self.connectionsMax = connectionsMax
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
    }

    /// Reads `postgres://user@host:port/database` (or `postgresql://`); nil with the reason when it
    /// is not one. A password in the URL is refused: config files are read by more people than keys.
    package static func parse(_ text: String) -> Result<PostgresSettings, URLProblem> {
        guard text.hasPrefix("postgres://") || text.hasPrefix("postgresql://"), let url = URLComponents(string: text)
        else {
            return .failure(URLProblem("must be postgres://USER@HOST:PORT/DATABASE (found '\(text.prefix(100))')"))
        }
        guard url.password == nil else {
            return .failure(
                URLProblem(
                    "must not hold a password: put it in database_password_file or COALITION_DATABASE_PASSWORD"))
        }
        guard let user = url.user, !user.isEmpty else {
            return .failure(URLProblem("names no user (postgres://USER@…)"))
        }
        guard let host = url.host, !host.isEmpty else { return .failure(URLProblem("names no host")) }
        let database = String(url.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            return .failure(URLProblem("names no database (…/DATABASE)"))
        }
        let port = url.port ?? 5432
        guard (1...65_535).contains(port) else { return .failure(URLProblem("port \(port) is out of range")) }
        return .success(PostgresSettings(host: host, port: port, user: user, database: database))
    }

    package struct URLProblem: Error, Equatable, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = description }
    }

    /// The URL without a password, for logs and messages.
    package var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }
}

/// The SHA-256 of a certificate's DER bytes, hex: how a PostgreSQL ledger remembers the network
/// (its CA) it belongs to.
package enum CertificateFingerprint {
    package static func sha256(ofPEMFile path: String) throws -> String {
        let pem = String(decoding: try ReadableFile.contents(of: path), as: UTF8.self)
        let certificate = try Certificate(pemEncoded: pem)
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return Hex.string(SHA256.hash(data: serializer.serializedBytes))
    }
}
