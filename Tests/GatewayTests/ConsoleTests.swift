import Core
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import NodeSupport
import TestSupport
import Testing
import Wire

/// Goal: the web console lets in only an operator who came through a login link minted with an
/// operator certificate, refuses every forged, spent or expired credential and every action
/// without its form token (writing nothing), and shows the same figures `coalition admin --json`
/// prints, on a live network, over real HTTP.
@Suite("Console") struct ConsoleTests {
    /// A gateway with a console on a free port (alice is an operator), one edge of mall-01 linked.
    static func withConsole(
        ledger: LedgerKind = .sqlite,
        _ body: (GatewayHarness, LinkedEdge, Int, TestCertificates, ManualWallClock) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try certificates.issue(.operator("alice"), name: "alice")
        let clock = ManualWallClock()
        var configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        configuration.console = ConsoleSettings(endpoint: HTTPEndpointSettings(port: 0))
        configuration.phoneHashKey = Network.phoneKey
        try await Network.withGateway(configuration, clock: clock, ledger: ledger) { gateway in
            let port = try await #require(gateway.node.consoleEndpoint).port.value
            let edgeConfiguration = try Network.edgeConfiguration(
                dir, site: "mall-01", certificates: certificates, gatewayPort: gateway.port)
            try await Network.withEdge(edgeConfiguration, merchant: "mall-fashion", clock: clock) { edge in
                try await body(gateway, edge, port, certificates, clock)
            }
        }
    }

    /// A session cookie for alice (`name=value`), through a fresh login link.
    static func signIn(gateway: GatewayHarness, port: Int, certificates: TestCertificates) async throws -> String {
        let link = try await OpsServiceTests.withOps(
            port: gateway.port, certificates: certificates, certificate: "alice"
        ) {
            try await $0.createConsoleLogin(Coalition_Ops_V1_CreateConsoleLoginRequest())
        }
        let path = try #require(link.url.components(separatedBy: "127.0.0.1:\(port)").last)
        let answer = try await RawHTTP.send("GET", path, port: port)
        #expect(answer.status == 200)
        let cookie = try #require(answer.headers["set-cookie"])
        return try #require(cookie.split(separator: ";").first.map(String.init))
    }

    static func formToken(_ html: String) throws -> String {
        let marker = "name=\"csrf\" value=\""
        let start = try #require(html.range(of: marker)).upperBound
        return String(html[start...].prefix { $0 != "\"" })
    }

    static func figure(_ html: String, id: String) throws -> String {
        let start = try #require(html.range(of: "id=\"\(id)\">"), "no figure \(id)").upperBound
        return String(html[start...].prefix { $0 != "<" })
    }

    @Test("a login link signs in once, within its time; forged, spent and expired credentials are refused")
    func signIn() async throws {
        try await Self.withConsole { gateway, _, port, certificates, clock in
            // No session: no page and no data.
            let anonymous = try await RawHTTP.send("GET", "/network", port: port)
            #expect(anonymous.status == 401)
            #expect(anonymous.body.contains("coalition admin console login"))
            #expect(!anonymous.body.contains("mall-01"))
            #expect(
                try await RawHTTP.send("GET", "/settlement/download?day=2026-11-23&format=csv", port: port).status
                    == 401)

            let link = try await OpsServiceTests.withOps(
                port: gateway.port, certificates: certificates, certificate: "alice"
            ) {
                try await $0.createConsoleLogin(Coalition_Ops_V1_CreateConsoleLoginRequest())
            }
            #expect(link.operator == "alice")
            #expect(link.url.hasPrefix("http://127.0.0.1:\(port)/login?token="))
            #expect(link.expiresAtMs == clock.now().milliseconds + 300_000)
            let path = try #require(link.url.components(separatedBy: "127.0.0.1:\(port)").last)
            #expect(try await RawHTTP.send("GET", "/login?token=not-a-token", port: port).status == 403)
            #expect(try await RawHTTP.send("GET", "/login", port: port).status == 400)

            let first = try await RawHTTP.send("GET", path, port: port)
            #expect(first.status == 200)
            let setCookie = try #require(first.headers["set-cookie"])
            #expect(
                setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Path=/"))
            #expect(first.headers["referrer-policy"] == "no-referrer")
            let cookie = try #require(setCookie.split(separator: ";").first.map(String.init))
            // Spent: the same link again.
            let again = try await RawHTTP.send("GET", path, port: port)
            #expect(again.status == 403)
            #expect(again.body.contains("used already"))

            let network = try await RawHTTP.send("GET", "/network", port: port, headers: ["Cookie": cookie])
            #expect(network.status == 200)
            #expect(network.body.contains("mall-01") && network.body.contains("id=\"operator\">alice<"))
            #expect(network.headers["content-security-policy"]?.contains("default-src 'none'") == true)
            // A forged session id, and a cookie of the right shape from nowhere.
            for forged in ["coalition_console=forged", "coalition_console=" + String(repeating: "A", count: 43)] {
                #expect(
                    try await RawHTTP.send("GET", "/network", port: port, headers: ["Cookie": forged]).status == 401)
            }

            // Expired link: minted, then left for longer than login_link_ms.
            let late = try await OpsServiceTests.withOps(
                port: gateway.port, certificates: certificates, certificate: "alice"
            ) {
                try await $0.createConsoleLogin(Coalition_Ops_V1_CreateConsoleLoginRequest())
            }
            clock.advance(milliseconds: 300_001)
            let expired = try await RawHTTP.send(
                "GET", try #require(late.url.components(separatedBy: "127.0.0.1:\(port)").last), port: port)
            #expect(expired.status == 403)
            #expect(expired.body.contains("expired"))
            // The session itself ends after session_ms.
            #expect(try await RawHTTP.send("GET", "/today", port: port, headers: ["Cookie": cookie]).status == 200)
            clock.advance(milliseconds: 8 * 3_600_000)
            #expect(try await RawHTTP.send("GET", "/today", port: port, headers: ["Cookie": cookie]).status == 401)
        }
    }

    @Test(
        "an action without its form token, or from another site, writes nothing; with it, it is audited under the operator"
    )
    func actions() async throws {
        try await Self.withConsole { gateway, _, port, certificates, clock in
            let cookie = try await Self.signIn(gateway: gateway, port: port, certificates: certificates)
            let page = try await RawHTTP.send("GET", "/settlement", port: port, headers: ["Cookie": cookie])
            #expect(page.status == 200)
            let token = try Self.formToken(page.body)
            let yesterday = ManualWallClock.tuesdayNoon.adding(milliseconds: -86_400_000)
            let day = try #require(gateway.ledger.programs.latest?.program.timeZone.date(of: yesterday)).description
            #expect(page.body.contains("id=\"close-\(day)\""))
            let form = ["Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"]
            func closed() async throws -> Bool {
                try await gateway.ledger.storedSettlement(try #require(CivilDate(parsing: day))) != nil
            }
            // No token, a wrong token, another site's origin: refused, nothing closed.
            #expect(
                try await RawHTTP.send("POST", "/settlement/close", port: port, headers: form, body: "day=\(day)")
                    .status == 403)
            #expect(
                try await RawHTTP.send(
                    "POST", "/settlement/close", port: port, headers: form, body: "day=\(day)&csrf=wrong"
                ).status == 403)
            var foreign = form
            foreign["Origin"] = "http://evil.example"
            #expect(
                try await RawHTTP.send(
                    "POST", "/settlement/close", port: port, headers: foreign, body: "day=\(day)&csrf=\(token)"
                ).status == 403)
            #expect(
                try await RawHTTP.send("POST", "/settlement/close", port: port, body: "day=\(day)&csrf=\(token)").status
                    == 401)
            // Too large a form.
            let huge = try await RawHTTP.send(
                "POST", "/member/adjust", port: port, headers: form,
                body: "reason=" + String(repeating: "x", count: 20_000))
            #expect(huge.status == 413)
            #expect(try await closed() == false)

            var sameOrigin = form
            sameOrigin["Origin"] = "http://127.0.0.1:\(port)"
            let done = try await RawHTTP.send(
                "POST", "/settlement/close", port: port, headers: sameOrigin, body: "day=\(day)&csrf=\(token)")
            #expect(done.status == 303)
            #expect(done.headers["location"] == "/settlement?day=\(day)")
            let period = try #require(CivilDate(parsing: day))
            let stored = try #require(try await gateway.ledger.storedSettlement(period))
            #expect(stored.closedBy == "alice")

            // The statement's download carries the hash the Ops API gives.
            let csv = try await RawHTTP.send(
                "GET", "/settlement/download?day=\(day)&format=csv", port: port, headers: ["Cookie": cookie])
            #expect(csv.status == 200)
            let exported = try await OpsServiceTests.withOps(
                port: gateway.port, certificates: certificates, certificate: "alice"
            ) {
                var request = Coalition_Ops_V1_ExportSettlementRequest()
                request.period = day
                return try await $0.exportSettlement(request)
            }
            #expect(csv.headers["x-content-hash"] == exported.contentHash)
            let file = try #require(exported.files.first { $0.name == "\(day).csv" })
            #expect(Array(csv.body.utf8) == Array(file.content))
            #expect(
                try await RawHTTP.send(
                    "GET", "/settlement/download?day=\(day)&format=xml", port: port, headers: ["Cookie": cookie]
                ).status == 400)
            // Bad input, the console keeps serving.
            #expect(try await RawHTTP.send("GET", "/nothing", port: port, headers: ["Cookie": cookie]).status == 404)
            // The icon browsers ask for by themselves: nothing, and no 404 logged in their console.
            let icon = try await RawHTTP.send("GET", "/favicon.ico", port: port)
            #expect(icon.status == 204 && icon.body.isEmpty, "\(icon.status) \(icon.body.prefix(200))")
            let badDay = try await RawHTTP.send("GET", "/today?day=2026-13-45", port: port, headers: ["Cookie": cookie])
            #expect(badDay.status == 400, "\(badDay.status) \(badDay.body.suffix(300))")
            #expect(
                try await RawHTTP.send("GET", "/today?%zz=%", port: port, headers: ["Cookie": cookie]).status == 200)
            let bigHead = try? await RawHTTP.send(
                "GET", "/network", port: port,
                headers: ["Cookie": cookie, "X-Pad": String(repeating: "p", count: 40_000)])
            #expect(bigHead.map { $0.status == 431 || $0.status == 400 } ?? true)
            #expect(try await RawHTTP.send("GET", "/network", port: port, headers: ["Cookie": cookie]).status == 200)
            _ = clock
        }
    }

    @Test("the console's figures are the ones `coalition admin … --json` prints", arguments: LedgerKind.allCases)
    func agreesWithAdmin(ledger: LedgerKind) async throws {
        try await Self.withConsole(ledger: ledger) { gateway, edge, port, certificates, _ in
            let member = try await edge.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: edge.auth
            ).member.memberID
            for index in 0..<3 {
                _ = try await edge.points.earn(
                    Make.earn("R-\(index)", member: member, amount: 25_000), metadata: edge.auth)
            }
            try await Network.eventually("synced") { try await Network.synced(edge) }
            let admin = certificates.directory + "/admin.yaml"
            try """
            gateway: 127.0.0.1:\(gateway.port)
            ca_certificate: \(certificates.path("ca.pem"))
            certificate: \(certificates.path("alice.pem"))
            private_key: \(certificates.path("alice.key"))
            """.write(toFile: admin, atomically: true, encoding: .utf8)
            let cookie = try await Self.signIn(gateway: gateway, port: port, certificates: certificates)
            func page(_ path: String) async throws -> String {
                let answer = try await RawHTTP.send("GET", path, port: port, headers: ["Cookie": cookie])
                #expect(answer.status == 200, "\(path): \(answer.body.prefix(300))")
                return answer.body
            }
            func json(_ arguments: [String]) async throws -> [String: Any] {
                let text = try await Binary.run(["admin"] + arguments + ["--config", admin, "--json"])
                return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            }
            func number(_ text: String) -> Int64? { Int64(text.filter { $0.isNumber || $0 == "-" }) }

            let liability = try await json(["report", "liability"])
            let liabilityPage = try await page("/liability")
            let outstanding = try #require(number(try Self.figure(liabilityPage, id: "outstanding-points")))
            #expect(outstanding > 0)
            #expect("\(outstanding)" == "\(liability["outstanding_points"] ?? "")")
            #expect(try await gateway.balance(member) == outstanding, "one member holds every point")

            let granted = try await json([
                "allowances", "grant", "--site", "hotel-01", "--member", member, "--points", "300", "--reason", "desk",
            ])
            #expect((granted["allowance"] as? [String: Any])?["granted_points"] as? String == "300")
            let allowances = try await json(["allowances", "--active"])
            let allowancesPage = try await page("/allowances")
            let escrowed = try #require(number(try Self.figure(allowancesPage, id: "escrowed-total")))
            #expect(escrowed == 300)
            #expect(
                escrowed
                    == ((allowances["escrow"] as? [[String: Any]]) ?? []).reduce(Int64(0)) {
                        $0 + Int64("\($1["escrowed_points"] ?? 0)")!
                    })
            #expect(allowancesPage.contains(member))

            let today = try await json(["report", "today"])
            let todayPage = try await page("/today")
            let issued = try #require(number(try Self.figure(todayPage, id: "issued-total")))
            #expect("\(issued)" == "\(today["issued_points"] ?? "0")")
            #expect(issued > 0)
            // The chart: one point per hour in each series.
            for series in ["issued", "redeemed"] {
                let marker = "data-series=\"\(series)\" points=\""
                let start = try #require(todayPage.range(of: marker)).upperBound
                let points = todayPage[start...].prefix { $0 != "\"" }.split(separator: " ")
                #expect(points.count == 24)
            }

            let sites = try await json(["sites", "list"])
            let listed = try #require(sites["sites"] as? [[String: Any]]).first {
                $0["site_id"] as? String == "mall-01"
            }
            let networkPage = try await page("/network")
            #expect(networkPage.contains("mall-01"))
            let site = try #require(listed)
            let limit = try #require(number("\(site["exposure_limit_points"] ?? "")"))
            #expect(limit > 0)
            #expect(networkPage.contains("/ \(ConsoleHTML.number(limit)) pts"))

            let memberPage = try await page("/member?q=\(member)")
            #expect(try Self.figure(memberPage, id: "member-balance") == ConsoleHTML.number(outstanding))
            #expect(!memberPage.contains("13800138000"), "the phone number is never shown whole")
            let byPhone = try await page("/member?q=%2B8613800138000")
            #expect(try Self.figure(byPhone, id: "member-id") == member)
            #expect(try Self.figure(byPhone, id: "member-phone") == "+86 138****8000")
            #expect(!byPhone.contains("13800138000"), "nor echoed in the search field")
        }
    }
}
