import Core
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NodeSupport
import Wire

/// The web console (docs/operations.md, "Console"): server-rendered pages over the Ops API,
/// for signed-in operators only. Every figure comes from an Ops call made as the signed-in
/// operator (`ConsoleCaller`), so a page and `coalition admin … --json` read the same numbers,
/// and every action is recorded under the operator's name as the CLI's are.
package struct Console<Store: LedgerStore>: Sendable {
    /// The session cookie's name.
    package static var cookieName: String { "coalition_console" }
    /// Largest form body accepted, in bytes.
    static var formBytesMax: Int { 16_384 }

    let ops: OpsService<Store>
    let store: Store
    let sessions: ConsoleSessions
    let settings: ConsoleSettings
    let logger: Logger
    /// Whether the cookie is marked `Secure` (the public address is https).
    var secureCookie: Bool { settings.publicURL?.hasPrefix("https://") ?? false }

    package init(
        ops: OpsService<Store>, store: Store, sessions: ConsoleSessions, settings: ConsoleSettings, logger: Logger
    ) {
        self.ops = ops
        self.store = store
        self.sessions = sessions
        self.settings = settings
        self.logger = logger
    }

    /// The console's HTTP listener, announcing its port to `port`.
    package func endpoint(port: BoundPort) -> HTTPEndpoint<BasicRequestContext> {
        let router = Router()
        router.get("/static/console.css") { _, _ in
            Self.asset(ConsoleAssets.css, type: "text/css; charset=utf-8")
        }
        router.get("/static/console.js") { _, _ in
            Self.asset(ConsoleAssets.javascript, type: "text/javascript; charset=utf-8")
        }
        // Browsers ask for an icon on their own; "no content" rather than a 404 each browser
        // logs as a failed resource.
        router.get("/favicon.ico") { _, _ in
            Response(status: .noContent, headers: [.cacheControl: "max-age=86400"])
        }
        router.get("/login") { request, _ in self.login(request) }
        router.post("/logout") { request, _ in
            try await self.action(request) { session, _, id in
                self.sessions.end(id)
                self.logger.notice("console sign-out", metadata: ["operator": "\(session.operatorName)"])
                return Self.page(status: .ok, title: "Signed out", body: Self.signedOutBody(signedOut: true))
            }
        }
        router.get("/") { request, _ in
            try await self.signedIn(request) { _ in Self.redirect("/network") }
        }
        for page in ConsolePage.allCases {
            router.get(RouterPath(stringLiteral: page.path)) { request, _ in
                try await self.signedIn(request) { session in
                    try await self.render(page, request: request, session: session)
                }
            }
        }
        router.get("/settlement/download") { request, _ in
            try await self.signedIn(request) { session in try await self.download(request, session: session) }
        }
        router.post("/settlement/close") { request, _ in
            try await self.action(request) { session, form, _ in
                try await self.closeDay(form: form, session: session)
            }
        }
        router.post("/member/adjust") { request, _ in
            try await self.action(request) { session, form, _ in
                try await self.adjust(form: form, session: session)
            }
        }
        return HTTPEndpoint(name: "console", settings: settings.endpoint, router: router, logger: logger, port: port)
    }

    // MARK: Sign-in

    private func login(_ request: Request) -> Response {
        guard let token = request.uri.queryParameters["token"].map(String.init), !token.isEmpty, token.utf8.count <= 64
        else {
            return Self.page(
                status: .badRequest, title: "Sign in", body: Self.signedOutBody(error: "The link has no token."))
        }
        do {
            let (id, session) = try sessions.signIn(token: token, now: store.clockNow)
            logger.notice("console sign-in", metadata: ["operator": "\(session.operatorName)"])
            var response = Self.page(
                status: .ok, title: "Signed in",
                body: "<p class=\"notice\" id=\"signed-in\">Signed in as \(ConsoleHTML.escape(session.operatorName)). "
                    + "<a href=\"/network\">Continue</a></p>",
                refreshTo: "/network")
            var cookie =
                "\(Self.cookieName)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(settings.sessionMilliseconds / 1_000)"
            if secureCookie { cookie += "; Secure" }
            response.headers[.setCookie] = cookie
            return response
        } catch {
            let reason: String
            switch error {
            case .expired: reason = "This sign-in link has expired."
            case .used: reason = "This sign-in link was used already."
            case .tooMany: reason = "Too many operators are signed in; try again later."
            case .unknown: reason = "This sign-in link is not valid here."
            }
            logger.warning("console sign-in refused", metadata: ["reason": "\(error)"])
            return Self.page(
                status: error == .tooMany ? .serviceUnavailable : .forbidden, title: "Sign in",
                body: Self.signedOutBody(error: reason))
        }
    }

    /// The session of the request's cookie, or nil.
    private func session(_ request: Request) -> (id: String, session: ConsoleSessions.Session)? {
        guard let id = request.cookies[Self.cookieName]?.value, !id.isEmpty,
            let session = sessions.session(id, now: store.clockNow)
        else { return nil }
        return (id, session)
    }

    /// Runs `body` for a signed-in operator; anyone else gets 401 and the sign-in help.
    private func signedIn(
        _ request: Request, _ body: (ConsoleSessions.Session) async throws -> Response
    ) async throws -> Response {
        guard let (_, session) = session(request) else {
            return Self.page(status: .unauthorized, title: "Sign in", body: Self.signedOutBody())
        }
        do {
            return try await ConsoleCaller.$operatorName.withValue(session.operatorName) { try await body(session) }
        } catch {
            return failure(error, session: session)
        }
    }

    /// Runs a form's action for a signed-in operator whose form carries the session's token and,
    /// when the browser says where it comes from, comes from this console.
    private func action(
        _ request: Request, _ body: (ConsoleSessions.Session, [String: String], String) async throws -> Response
    ) async throws -> Response {
        guard let (id, session) = session(request) else {
            return Self.page(status: .unauthorized, title: "Sign in", body: Self.signedOutBody())
        }
        if let origin = request.headers[.origin], let authority = request.head.authority, origin != "null" {
            guard URL(string: origin).map({ "\($0.host ?? "")\($0.port.map { ":\($0)" } ?? "")" == authority }) ?? false
            else {
                return Self.page(
                    status: .forbidden, title: "Refused",
                    body: "<p class=\"error\" id=\"error\">This form came from another site.</p>", session: session)
            }
        }
        let form: [String: String]
        do {
            form = Self.formFields(try await request.body.collect(upTo: Self.formBytesMax))
        } catch {
            return Self.page(
                status: .contentTooLarge, title: "Refused",
                body: "<p class=\"error\" id=\"error\">The form is larger than \(Self.formBytesMax) bytes.</p>",
                session: session)
        }
        guard let token = form["csrf"], token == session.formToken else {
            logger.warning("console form without its token", metadata: ["operator": "\(session.operatorName)"])
            return Self.page(
                status: .forbidden, title: "Refused",
                body: "<p class=\"error\" id=\"error\">The form has no valid token: reload the page and try again.</p>",
                session: session)
        }
        do {
            return try await ConsoleCaller.$operatorName.withValue(session.operatorName) {
                try await body(session, form, id)
            }
        } catch {
            return failure(error, session: session)
        }
    }

    /// An Ops refusal as the page that says it (its status mapped to HTTP's); anything else is a
    /// 500 that names no internals (the log has the error).
    private func failure(_ error: any Error, session: ConsoleSessions.Session) -> Response {
        guard let refusal = error as? any RPCErrorConvertible else {
            logger.error("console page failed", metadata: ["error": "\(error)"])
            return Self.page(
                status: .internalServerError, title: "Not done",
                body: "<p class=\"error\" id=\"error\">The gateway could not answer; the log says why.</p>",
                session: session)
        }
        return Self.page(
            status: Self.status(of: refusal.rpcErrorCode), title: "Not done",
            body: "<p class=\"error\" id=\"error\">\(ConsoleHTML.escape(refusal.rpcErrorMessage))</p>", session: session
        )
    }

    // MARK: Calls

    /// Calls an Ops method as the signed-in operator (`ConsoleCaller` is set by the caller).
    func call<Input: Sendable, Output: Sendable>(
        _ method: String, _ message: Input,
        _ handler: (ServerRequest<Input>, ServerContext) async throws -> ServerResponse<Output>
    ) async throws -> Output {
        try await withServerContextRPCCancellationHandle { cancellation in
            let context = ServerContext(
                descriptor: MethodDescriptor(fullyQualifiedService: "coalition.ops.v1.Ops", method: method),
                remotePeer: "console", localPeer: "console", cancellation: cancellation)
            return try await handler(ServerRequest(metadata: [:], message: message), context).message
        }
    }

    // MARK: Responses

    static func status(of code: RPCError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument, .outOfRange: .badRequest
        case .notFound: .notFound
        case .failedPrecondition, .alreadyExists, .aborted: .conflict
        case .permissionDenied, .unauthenticated: .forbidden
        case .resourceExhausted: .tooManyRequests
        case .unavailable, .deadlineExceeded: .serviceUnavailable
        default: .internalServerError
        }
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: type, .cacheControl: "max-age=300", .init("X-Content-Type-Options")!: "nosniff"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    /// The headers every page carries: no caching, no framing, nothing loaded from elsewhere, no
    /// referrer (a login link's token never leaves in one).
    static func pageHeaders(contentType: String = "text/html; charset=utf-8") -> HTTPFields {
        [
            .contentType: contentType, .cacheControl: "no-store",
            .contentSecurityPolicy:
                "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
                + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            .init("X-Content-Type-Options")!: "nosniff", .init("Referrer-Policy")!: "no-referrer",
            .init("X-Frame-Options")!: "DENY",
        ]
    }

    /// A whole page (or, for a signed-in `session`, the page with the navigation).
    static func page(
        status: HTTPResponse.Status, title: String, body: String, session: ConsoleSessions.Session? = nil,
        current: ConsolePage? = nil, refreshMilliseconds: Int = 0, refreshTo: String? = nil
    ) -> Response {
        var html = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        if let refreshTo { html += "<meta http-equiv=\"refresh\" content=\"0;url=\(ConsoleHTML.escape(refreshTo))\">" }
        html += "<title>\(ConsoleHTML.escape(title)) · Coalition console</title>"
        html += "<link rel=\"stylesheet\" href=\"/static/console.css\"></head><body>"
        html += "<header><span class=\"brand\">COALITION</span>"
        if let session {
            html += "<nav>"
            html += ConsolePage.allCases.map { page in
                "<a href=\"\(page.path)\"\(page == current ? " class=\"current\"" : "")>\(page.title)</a>"
            }.joined()
            html += "</nav><span class=\"who\" id=\"operator\">\(ConsoleHTML.escape(session.operatorName))</span>"
            html += "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\""
            html += ConsoleHTML.escape(session.formToken) + "\"><button type=\"submit\">Sign out</button></form>"
        }
        html += "</header><main id=\"main\""
        if refreshMilliseconds > 0 { html += " data-refresh-ms=\"\(refreshMilliseconds)\"" }
        html += ">" + body + "</main><script src=\"/static/console.js\"></script></body></html>"
        return Response(
            status: status, headers: pageHeaders(), body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    static func signedOutBody(error: String? = nil, signedOut: Bool = false) -> String {
        var html = "<h1>Coalition console</h1>"
        if let error { html += "<p class=\"error\" id=\"error\">\(ConsoleHTML.escape(error))</p>" }
        if signedOut { html += "<p class=\"notice\" id=\"signed-out\">You are signed out.</p>" }
        html += "<p id=\"sign-in-help\">Sign in with a link from <code>coalition admin console login</code>, run with "
        html += "your operator certificate. A link works once, for a few minutes.</p>"
        return html
    }

    /// `application/x-www-form-urlencoded` fields (the last of a repeated name wins).
    static func formFields(_ buffer: ByteBuffer) -> [String: String] {
        var fields: [String: String] = [:]
        let text = String(buffer: buffer)
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String? {
                String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            guard let name = parts.first.flatMap(decode), let value = decode(parts.count > 1 ? parts[1] : "") else {
                continue
            }
            fields[name] = value
        }
        return fields
    }
}
