// Goal: the day-boundary jobs of DESIGN §6 with an injected clock: points expire at the end of the
// month 12 months after they were earned (once, however often the job runs), members are reminded
// within the window, tiers go up on posting and down only at review, and every edge learns it.
import Core
import EdgeNode
import Foundation
import GRDB
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Expiry and tier review")
struct MaintenanceTests {
    @Test(
        "points expire once at the end of the month, after a reminder, and edges see it", arguments: LedgerKind.allCases
    )
    func expiry(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock,
            ledger: ledger
        ) { gateway in
            let config = try Network.edgeConfiguration(
                directory.url.path, site: "mall-01", certificates: certificates, gatewayPort: gateway.port)
            try await Network.withEdge(config, merchant: "mall-fashion", clock: clock) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 30_000), metadata: mall.auth)
                try await Network.eventually("synced") { try await Network.synced(mall) }
                #expect(try await gateway.balance(member) == 500)
                let zone = ProgramTimeZone(identifier: "Asia/Shanghai")!
                // Earned in November 2026: expiring at the end of November 2027; reminded 30 days before.
                let early = try await gateway.ledger.expiryReminders(
                    asOf: zone.startOfDay(CivilDate(parsing: "2027-10-31")!), limit: 10)
                #expect(early.isEmpty)
                let reminders = try await gateway.ledger.expiryReminders(
                    asOf: zone.startOfDay(CivilDate(parsing: "2027-11-15")!), limit: 10)
                #expect(reminders.map(\.member.description) == [member])
                #expect(reminders.first?.points == Points(500))
                #expect(reminders.first?.expiresAt == zone.startOfDay(CivilDate(parsing: "2027-12-01")!))

                let before = try await gateway.ledger.runExpiry(asOfEndOf: CivilDate(parsing: "2027-11-29")!)
                #expect(before.points == .zero)
                clock.set(zone.startOfDay(CivilDate(parsing: "2027-12-01")!))
                let run = try await gateway.ledger.runExpiry(asOfEndOf: CivilDate(parsing: "2027-11-30")!)
                #expect(run.points == Points(500))
                #expect(run.members == 1)
                let again = try await gateway.ledger.runExpiry(asOfEndOf: CivilDate(parsing: "2027-11-30")!)
                #expect(again.alreadyRun)
                #expect(try await gateway.balance(member) == 0)
                #expect(try await gateway.account("expired") == 500)
                try await Network.eventually("the edge sees the expiry") { try await mall.balance(member) == 0 }
                try await gateway.checkInvariants()
            }
        }
    }

    @Test(
        "gold on crossing the threshold, kept until the review, then down to what 12 months qualify for",
        arguments: LedgerKind.allCases)
    func tiers(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock,
            ledger: ledger
        ) { gateway in
            let config = try Network.edgeConfiguration(
                directory.url.path, site: "mall-01", certificates: certificates, gatewayPort: gateway.port)
            try await Network.withEdge(config, merchant: "mall-fashion", clock: clock) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 2_000_000), metadata: mall.auth)
                try await Network.eventually("synced") { try await Network.synced(mall) }
                func tier() async throws -> (String, String) {
                    let row = try await gateway.sql.rows(
                        "SELECT tier, tier_review_date FROM members WHERE member_id = ?", [member]
                    ).first
                    return ((row?[0] ?? nil) ?? "", (row?[1] ?? nil) ?? "")
                }
                #expect(try await tier() == ("gold", "2027-11-24"))
                try await Network.eventually("the edge sees gold") {
                    var lookup = Coalition_Edge_V1_LookupMemberRequest()
                    lookup.memberID = member
                    return try await mall.points.lookupMember(lookup, metadata: mall.auth).member.tier == "gold"
                }
                // Before the review nothing changes, even with no recent points.
                #expect(try await gateway.ledger.reviewTiers(on: CivilDate(parsing: "2027-11-23")!) == 0)
                #expect(try await tier().0 == "gold")
                // At the review the 20,000 points are more than 12 months old: back to member.
                clock.set(ProgramTimeZone(identifier: "Asia/Shanghai")!.startOfDay(CivilDate(parsing: "2027-11-25")!))
                #expect(try await gateway.ledger.reviewTiers(on: CivilDate(parsing: "2027-11-25")!) == 1)
                #expect(try await tier() == ("member", "2028-11-24"))
            }
        }
    }
}
