import Core
import Crypto
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import NodeSupport
import SwiftProtobuf
import TestSupport
import Testing
import Wire

/// Goal: the console works in a real browser (Debian's Chromium, headless, driven by Playwright):
/// an operator signs in through a login link, every page loads without a console error on a live
/// network of two edges, an offline site and a site whose pushes raised a conflict; the hourly
/// chart has a point per hour; the conflict made here is listed with its site and money at risk; a
/// day closed in the browser downloads the CSV the Ops API exports; an expired or forged session
/// is refused. Screenshots of each page are kept (paths printed).
@Suite("Console in Chromium") struct ConsoleBrowserTests {
    static let hour: Int64 = 3_600_000

    @Test("an operator signs in and uses every page of the console in headless Chromium")
    func browser() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let sites = ["mall-01", "hotel-01", "park-01", "office-01"]
        let certificates = try TestCertificates(directory: dir, sites: sites)
        try certificates.issue(.operator("alice"), name: "alice")
        let clock = ManualWallClock()
        // The day before, from 09:00 (program time): traffic to settle.
        clock.set(ManualClockTime.now.adding(milliseconds: -27 * Self.hour))
        var configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        configuration.console = ConsoleSettings(endpoint: HTTPEndpointSettings(port: 0))
        configuration.console?.refreshMilliseconds = 1_000
        configuration.phoneHashKey = Network.phoneKey
        try await Network.withGateway(configuration, clock: clock) { gateway in
            let port = try await #require(gateway.node.consoleEndpoint).port.value
            let mallConfig = try Network.edgeConfiguration(
                dir, site: "mall-01", certificates: certificates, gatewayPort: gateway.port)
            let hotelConfig = try Network.edgeConfiguration(
                dir, site: "hotel-01", certificates: certificates, gatewayPort: gateway.port)
            var members: [String] = []
            try await Network.withEdge(mallConfig, merchant: "mall-fashion", clock: clock) { mall in
                try await Network.withEdge(hotelConfig, merchant: "hotel-rooms", clock: clock) { hotel in
                    for index in 0..<4 {
                        members.append(
                            try await mall.points.enroll(
                                Make.enroll("E-\(index)", phone: "+86138001380\(10 + index)"), metadata: mall.auth
                            ).member.memberID)
                    }
                    try await Network.eventually("the hotel knows the members enrolled at the mall") {
                        (try? await hotel.balance(members[3])) != nil
                    }
                    // Two days of earns and spends, a few each hour.
                    var receipt = 0
                    let start = ManualClockTime.now.adding(milliseconds: -27 * Self.hour)
                    for step in 0..<28 where step < 8 || step >= 24 {
                        // 09:00 to 16:00 the day before, 09:00 to 12:00 today.
                        clock.set(start.adding(milliseconds: Int64(step) * Self.hour))
                        for (index, member) in members.enumerated() {
                            receipt += 1
                            let edge = index % 2 == 0 ? mall : hotel
                            _ = try await edge.points.earn(
                                Make.earn(
                                    "R-\(receipt)", member: member, amount: Int64(20_000 + 7_000 * step + 3_000 * index)
                                ),
                                metadata: edge.auth)
                        }
                        if step % 3 == 1 {
                            receipt += 1
                            _ = try await hotel.points.redeem(
                                Make.redeem("S-\(receipt)", member: members[1], bill: 10_000, points: 100),
                                metadata: hotel.auth)
                        }
                        try await Network.eventually("synced") {
                            let mallSynced = try await Network.synced(mall)
                            let hotelSynced = try await Network.synced(hotel)
                            return mallSynced && hotelSynced
                        }
                    }
                    // 12:00 today, after the last round: a site's refund of points already spent
                    // (a conflict).
                    try await Self.refundAfterSpend(gateway: gateway, certificates: certificates)
                    try await Network.eventually("the edges saw the gateway at 12:00") {
                        let mallSynced = try await Network.synced(mall)
                        let hotelSynced = try await Network.synced(hotel)
                        return mallSynced && hotelSynced
                    }
                    try await Self.drive(
                        gateway: gateway, port: port, certificates: certificates, clock: clock, phone: "+8613800138010",
                        directory: dir)
                }
            }
        }
    }

    /// office-01 (no edge: a raw client) enrols a member, earns 1,000, spends 900 and refunds the
    /// earn: `refund_after_spend`.
    static func refundAfterSpend(gateway: GatewayHarness, certificates: TestCertificates) async throws {
        try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "office-01") { sync in
            let enrolments = try RawSync.enrolments(merchant: "office-management", count: 1)
            _ = try await sync.push(RawSync.push(enrolments))
            let member = try Coalition_Sync_V1_LocalTransaction(serializedBytes: enrolments[0].payload).enrollment
                .memberID
            let earn = RawSync.earn(
                member: member, merchant: "office-management", amount: 100_000, statedPoints: 1_000, tier: "member")
            var generator = SystemRandomNumberGenerator()
            let spend = RawSync.redemption(
                transaction: TransactionID(time: ManualClockTime.now, using: &generator).description, member: member,
                merchant: "office-management", points: 900, authorization: .floorLimit)
            let refund = RawSync.refund(
                original: earn.transactionID, member: member, merchant: "office-management", amount: 100_000,
                points: -1_000)
            _ = try await sync.push(
                RawSync.push(
                    try RawSync.chain(
                        [earn, spend, refund], first: 2, previous: Data(SHA256.hash(data: enrolments[0].payload)))))
        }
        let conflicts = try await gateway.ledger.conflicts(site: SiteID("office-01"), kind: nil, limit: 10)
        try #require(!conflicts.isEmpty, "the raw site's pushes raised a conflict")
    }

    static func drive(
        gateway: GatewayHarness, port: Int, certificates: TestCertificates, clock: ManualWallClock, phone: String,
        directory: String
    ) async throws {
        let script = Repository.root.appendingPathComponent("Tests/Console/console_browser.py").path
        // Kept after the test (its own folder is removed): under the system's temporary folder, or
        // where COALITION_CONSOLE_SCREENSHOTS says (docs/console when refreshing the docs' images).
        let shots =
            ProcessInfo.processInfo.environment["COALITION_CONSOLE_SCREENSHOTS"]
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "coalition-console-screenshots/\(UUID().uuidString.prefix(8))"
            ).path
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let state = directory + "/browser-state.json"
        let (ops, link, yesterday) = try await OpsServiceTests.withOps(
            port: gateway.port, certificates: certificates, certificate: "alice"
        ) { ops in
            let link = try await ops.createConsoleLogin(Coalition_Ops_V1_CreateConsoleLoginRequest())
            var conflicts = Coalition_Ops_V1_ListConflictsRequest()
            conflicts.pageSize = 100
            let listed = try await ops.listConflicts(conflicts).conflicts
            return (listed, link, "2026-11-23")
        }
        let base = "http://127.0.0.1:\(port)"
        let run = try await ChildProcess.run(
            "/usr/bin/env", ["python3", script, base, link.url, shots, state, phone, yesterday])
        try #require(
            run.status == 0,
            "the browser script failed (is chromium installed, and playwright from pip?): \(run.errors.suffix(3_000))")
        let seen = try #require(
            try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
        #expect(seen["anonymous_status"] as? Int == 401)
        #expect(seen["anonymous_has_sites"] as? Bool == false)
        #expect(seen["operator"] as? String == "alice")
        #expect(seen["cookie_http_only"] as? Bool == true)
        #expect(seen["cookie_same_site"] as? String == "Strict")
        for page in ConsolePage.allCases {
            #expect(seen["\(page.rawValue)_status"] as? Int == 200, "\(page.rawValue)")
        }
        #expect((seen["errors"] as? [String]) == [], "console errors: \(seen["errors"] ?? "")")
        #expect(seen["network_rows"] as? Int == 4)
        // park-01 never connected: at least its row is red.
        #expect((seen["network_alert_rows"] as? Int ?? 0) >= 1)
        #expect(seen["chart_points"] as? Int == 24)
        #expect(seen["conflict_rows"] as? Int == ops.count)
        #expect((seen["conflict_kinds"] as? [String])?.contains("refund_after_spend") == true)
        #expect(seen["conflict_detail_site"] as? String == ops.first?.siteID)
        #expect(seen["live_refresh"] as? Bool == true)
        #expect(seen["member_phone"] as? String == "+86 138****8010")

        // The statement the browser closed and downloaded is the one the Ops API exports.
        let exported = try await OpsServiceTests.withOps(
            port: gateway.port, certificates: certificates, certificate: "alice"
        ) { ops in
            var request = Coalition_Ops_V1_ExportSettlementRequest()
            request.period = yesterday
            return try await ops.exportSettlement(request)
        }
        #expect(seen["content_hash"] as? String == exported.contentHash)
        let csv = try #require(exported.files.first { $0.name == "\(yesterday).csv" })
        #expect(
            seen["csv_sha256"] as? String == SHA256.hash(data: csv.content).map { String(format: "%02x", $0) }.joined())
        #expect(seen["csv_name"] as? String == "\(yesterday).csv")
        let period = try #require(CivilDate(parsing: yesterday))
        #expect(try await gateway.ledger.storedSettlement(period)?.closedBy == "alice")
        if let paths = seen["screenshots"] as? [String: String] {
            for (name, path) in paths.sorted(by: { $0.key < $1.key }) { print("console screenshot \(name): \(path)") }
        }

        // The saved session after it expired, and a forged one: refused.
        clock.advance(milliseconds: 8 * Self.hour + 1)
        let later = try await ChildProcess.run("/usr/bin/env", ["python3", script, "--expired", base, state])
        try #require(later.status == 0, "\(later.errors.suffix(2_000))")
        let refused = try #require(try JSONSerialization.jsonObject(with: Data(later.output.utf8)) as? [String: Any])
        #expect(refused["expired_status"] as? Int == 401)
        #expect(refused["forged_status"] as? Int == 401)
    }
}
