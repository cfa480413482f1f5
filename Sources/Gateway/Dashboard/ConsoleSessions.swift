import Core
import Crypto
import Foundation
import NodeSupport
import Synchronization

/// The console's sign-ins, in the gateway's memory: one-time login links minted for an operator
/// (through Ops `CreateConsoleLogin`, so only an operator certificate can ask), and the browser
/// sessions they open. A restart signs everyone out; another gateway knows none of them.
///
/// Tokens and session ids are 32 random bytes; only their SHA-256 is kept, so a memory dump holds
/// nothing a browser could present.
package final class ConsoleSessions: Sendable {
    /// A browser signed in as an operator.
    package struct Session: Sendable, Equatable {
        package var operatorName: String
        package var expiresAt: Timestamp
        /// The token every form of this session carries (CSRF).
        package var formToken: String
    }

    /// Why a link or a session was not accepted (each is answered, never explained further to the
    /// browser than "sign in again").
    package enum Refusal: Error, Equatable, Sendable {
        case unknown, expired, used, tooMany
    }

    private struct State {
        var links: [String: (operatorName: String, expiresAt: Timestamp, used: Bool)] = [:]
        var sessions: [String: Session] = [:]
    }

    private let state = Mutex(State())
    private let settings: ConsoleSettings

    package init(settings: ConsoleSettings) {
        self.settings = settings
    }

    /// A new one-time login token for `operatorName`, valid for `loginLinkMilliseconds`. Throws
    /// `.tooMany` when `loginLinksMax` unexpired links are outstanding.
    package func mintLogin(for operatorName: String, now: Timestamp) throws(Refusal) -> (
        token: String, expiresAt: Timestamp
    ) {
        let token = Self.randomToken()
        let expiresAt = now.adding(milliseconds: settings.loginLinkMilliseconds)
        try state.withLock { (state: inout State) throws(Refusal) in
            state.links = state.links.filter { $0.value.expiresAt > now && !$0.value.used }
            guard state.links.count < settings.loginLinksMax else { throw .tooMany }
            state.links[Self.digest(token)] = (operatorName, expiresAt, false)
        }
        return (token, expiresAt)
    }

    /// Spends a login token and opens a session; returns the session id (the cookie's value).
    package func signIn(token: String, now: Timestamp) throws(Refusal) -> (id: String, session: Session) {
        let id = Self.randomToken()
        let session = try state.withLock { (state: inout State) throws(Refusal) -> Session in
            let key = Self.digest(token)
            guard let link = state.links[key] else { throw .unknown }
            guard !link.used else { throw .used }
            guard link.expiresAt > now else { throw .expired }
            state.links[key]?.used = true
            state.sessions = state.sessions.filter { $0.value.expiresAt > now }
            guard state.sessions.count < settings.sessionsMax else { throw .tooMany }
            let session = Session(
                operatorName: link.operatorName, expiresAt: now.adding(milliseconds: settings.sessionMilliseconds),
                formToken: Self.randomToken())
            state.sessions[Self.digest(id)] = session
            return session
        }
        return (id, session)
    }

    /// The session of a cookie's value, if it is one of ours and has not expired.
    package func session(_ id: String, now: Timestamp) -> Session? {
        guard id.utf8.count <= 64 else { return nil }
        return state.withLock { state in
            guard let session = state.sessions[Self.digest(id)], session.expiresAt > now else { return nil }
            return session
        }
    }

    /// Ends a session (sign out).
    package func end(_ id: String) {
        _ = state.withLock { $0.sessions.removeValue(forKey: Self.digest(id)) }
    }

    private static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    private static func digest(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// The console's settings (`console:` in the gateway's config; docs/operations.md, "Console").
package struct ConsoleSettings: Sendable, Equatable {
    package var endpoint: HTTPEndpointSettings
    /// The address operators' browsers use (a TLS reverse proxy's, for example), printed in login
    /// links (`public_url`); by default `http://` and the listen address.
    package var publicURL: String?
    /// How long a session lasts from sign-in (`session_ms`, 8 hours).
    package var sessionMilliseconds: Int64 = 8 * 3_600_000
    /// How long a login link is valid (`login_link_ms`, 5 minutes).
    package var loginLinkMilliseconds: Int64 = 300_000
    /// Most sessions open at once (`sessions_max`).
    package var sessionsMax = 256
    /// Most unused, unexpired login links (`login_links_max`).
    package var loginLinksMax = 64
    /// How often a page refreshes its figures (`refresh_ms`, 5 s).
    package var refreshMilliseconds = 5_000
    /// A site with no sync call for this long shows as offline (`offline_after_ms`, 2 minutes).
    package var offlineAfterMilliseconds: Int64 = 120_000

    package init(endpoint: HTTPEndpointSettings) {
        self.endpoint = endpoint
    }

    /// The console's address for login links: `public_url`, else `http://` and the bound address.
    package func baseURL(boundPort: Int) -> String {
        if let publicURL { return publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL }
        let host = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        return "http://\(host):\(boundPort)"
    }

    /// Reads the `console:` map (its listener keys as `HTTPEndpointSettings.read`); nil when
    /// absent or invalid (problems reported on the map).
    package static func read(
        _ map: MapReader, address: (String) -> (String, Int)?, resolve: (String) -> String
    ) -> ConsoleSettings? {
        let publicURL = map.string("public_url", required: false, lengthMax: 300)
        if let publicURL, !(publicURL.hasPrefix("http://") || publicURL.hasPrefix("https://")) {
            map.diagnostics.fail(map.path.key("public_url"), "must start with http:// or https://")
        }
        var values: [String: Int64] = [:]
        for (key, range) in [
            ("session_ms", 60_000...604_800_000), ("login_link_ms", 10_000...3_600_000), ("sessions_max", 1...100_000),
            ("login_links_max", 1...10_000), ("refresh_ms", 0...3_600_000), ("offline_after_ms", 1_000...86_400_000),
        ] as [(String, ClosedRange<Int64>)] {
            if let value = map.integer(key, in: range, required: false) { values[key] = value }
        }
        guard let endpoint = HTTPEndpointSettings.read(map, address: address, resolve: resolve) else { return nil }
        var settings = ConsoleSettings(endpoint: endpoint)
        settings.publicURL = publicURL
        settings.sessionMilliseconds = values["session_ms"] ?? settings.sessionMilliseconds
        settings.loginLinkMilliseconds = values["login_link_ms"] ?? settings.loginLinkMilliseconds
        settings.sessionsMax = values["sessions_max"].map(Int.init) ?? settings.sessionsMax
        settings.loginLinksMax = values["login_links_max"].map(Int.init) ?? settings.loginLinksMax
        settings.refreshMilliseconds = values["refresh_ms"].map(Int.init) ?? settings.refreshMilliseconds
        settings.offlineAfterMilliseconds = values["offline_after_ms"] ?? settings.offlineAfterMilliseconds
        return settings
    }
}
