// Goal (#18, the home-site trigger): where a format's rule grants on `home_site`, the daily job
// gives each member an allowance at the site where they earned most often over 90 days, once while
// it is active, and none to a member whose home site's format has no such rule; earns older than
// 90 days do not count. Through the real sync service on both ledgers.
import Core
import Foundation
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Allowances at the home site")
struct AllowanceHomeSiteTests {
    @Test("the daily job grants at each member's home site when its format asks for it", arguments: LedgerKind.allCases)
    func homeSite(ledger: LedgerKind) async throws {
        // Office towers grant 150 points for a day to the members who earn there most.
        let program: (String) throws -> Void = { directory in
            let path = directory + "/program.yaml"
            let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
                of: "  formats:\n    parking:",
                with:
                    "  formats:\n    property:\n      trigger: home_site\n      points_max: 150\n      lease_minutes: 1440\n    parking:"
            )
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        try await RawSync.withEnrolledSite(
            "office-01", merchant: "office-management", members: 3, program: program, ledger: ledger
        ) { site in
            let (tenant, visitor, old) = (site.members[0], site.members[1], site.members[2])
            func earn(_ member: String, at time: Timestamp) -> Coalition_Sync_V1_LocalTransaction {
                RawSync.earn(
                    member: member, merchant: "office-management", amount: 1_000, statedPoints: 10, tier: "member",
                    time: time)
            }
            // The old member earned at the office 91 days ago; the tenant earns there twice now, the
            // visitor once.
            let then = site.clock.now()
            let now = then.adding(milliseconds: 91 * 86_400_000)
            _ = try await site.push(batches: [
                [earn(old, at: then)], [earn(tenant, at: now), earn(tenant, at: now), earn(visitor, at: now)],
            ]) { site.clock.set(now) }
            #expect(try await site.gateway.balance(old) > 200, "the old earn posted")
            let program = try #require(site.gateway.ledger.programs.latest?.program)
            let ledgerStore = site.gateway.ledger
            #expect(try await ledgerStore.grantHomeSiteAllowances(program: program, now: now, limit: 100) == 2)
            let granted = try await ledgerStore.allowances(
                site: SiteID(unchecked: "office-01"), member: nil, activeOnly: true, limit: 10)
            #expect(Set(granted.map(\.member.description)) == [tenant, visitor])
            #expect(granted.allSatisfy { $0.granted == Points(150) })
            // Once a day, and not again while one is active.
            #expect(try await ledgerStore.grantHomeSiteAllowances(program: program, now: now, limit: 100) == 0)
            site.clock.set(now.adding(milliseconds: 3_600_000))
            #expect(
                try await ledgerStore.grantHomeSiteAllowances(
                    program: program, now: now.adding(milliseconds: 3_600_000), limit: 100) == 0)
            #expect(try await site.gateway.account("escrow:office-01") == 300)
            // A limit of none grants none.
            #expect(try await ledgerStore.grantHomeSiteAllowances(program: program, now: now, limit: 0) == 0)
        }
    }
}
