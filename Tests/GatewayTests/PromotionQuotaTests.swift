// Goal (#18, deliverable 2): a budgeted promotion's budget is split into per-site quotas carried by
// the pull feed; a site that gives beyond its quota (a liar: an honest edge never does) is cut to
// it, though the budget has room; a quota a site does not use goes back to the pool once the site
// says it holds the next issue, and is split again; the operators' list shows it all
// (docs/protocol.md, "Promotion quotas").
import Core
import Foundation
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Promotion quotas")
struct PromotionQuotaTests {
    /// The example program with the Quay dinner bonus (150 points) at three sites, 900 points in
    /// all, no floor, until 2027.
    static func threeSites(budget: Int64, floor: Int64 = 0) -> (String) throws -> Void {
        { directory in
            try Repository.exampleProgram(replacing: [
                ("minimum_points: 500", "minimum_points: 100"),
                (
                    "end: 2026-12-01T00:00\n      filter:\n        merchants: [hotel-restaurant]\n",
                    "end: 2027-12-01T00:00\n      filter:\n        sites: [mall-01, hotel-01, park-01]\n"
                ),
                ("budget_points: 300000", "budget_points: \(budget)"),
                ("floor_points: 1000", "floor_points: \(floor)"),
            ]).write(toFile: directory + "/program.yaml", atomically: true, encoding: .utf8)
        }
    }

    static let dinner = PromotionID(unchecked: "quay-dinner")

    static func pull(_ site: RawSync.EnrolledSite, holding issue: UInt64 = 0, appliedAt: UInt64 = 0) async throws
        -> Coalition_Sync_V1_PullResponse
    {
        var request = Coalition_Sync_V1_PullRequest()
        request.protocolVersion = 1
        request.promotionQuotaIssue = issue
        request.promotionQuotaAppliedSequence = appliedAt
        return try await site.sync.pull(request)
    }

    @Test(
        "quotas in the pull feed; a site beyond its quota is cut; unused quota returns to the pool and is split again",
        arguments: LedgerKind.allCases)
    func splitCutReturn(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(
            "hotel-01", merchant: "hotel-restaurant", program: Self.threeSites(budget: 900), ledger: ledger
        ) { site in
            let ledger = site.gateway.ledger
            let (mall, park) = (SiteID(unchecked: "mall-01"), SiteID(unchecked: "park-01"))
            // The hotel's pull: a third of the budget (no use anywhere yet), counting from its
            // high-water mark (its enrolment, sequence 1).
            let first = try await Self.pull(site)
            #expect(first.promotionBudgets.map(\.promotionID) == ["quay-dinner"])
            #expect(first.promotionBudgets.map(\.pointsLeft) == [300])
            #expect(first.promotionQuotaIssue == 1 && first.promotionQuotaSequence == 1)
            // The mall and the car park pull theirs (their edges' calls, made here on the ledger).
            #expect(
                try await ledger.issuePromotionQuotas(site: mall, heldIssue: 0, appliedAt: 0)?.quotas == [
                    Self.dinner: Points(300)
                ])
            #expect(
                try await ledger.issuePromotionQuotas(site: park, heldIssue: 0, appliedAt: 0)?.quotas == [
                    Self.dinner: Points(300)
                ])
            // Three dinners with the bonus, as a site claiming more than its quota would push them:
            // two fit its 300, the third is cut to none though 300 of the budget is still free of
            // the hotel's use (it is the mall's and the car park's).
            let member = site.members[0]
            let dinners = (0..<3).map { _ in
                RawSync.earn(
                    member: member, merchant: "hotel-restaurant", amount: 10_000, statedPoints: 250, tier: "member",
                    promotions: ["quay-dinner": 150])
            }
            let pushed = try await site.push(dinners)
            #expect(pushed.results.map(\.postedPoints) == [250, 250, 100])
            #expect(pushed.results.map(\.reason) == ["", "", "promotion_budget"])
            let cut = try await site.gateway.conflicts(kind: "promotion_budget")
            #expect(cut.map(\.points) == [150])
            let details = try await site.gateway.sql.strings(
                "SELECT detail FROM conflicts WHERE kind = 'promotion_budget'")
            #expect(details.count == 1 && details[0].contains("this site's quota left: quay-dinner 0"))
            // The mall and the car park say they hold issue 1 (applied before any transaction of
            // theirs): by use, the 600 left is all the hotel's share now, so they are issued none,
            // and their 300 each stays reserved until they say they hold that issue too.
            #expect(
                try await ledger.issuePromotionQuotas(site: mall, heldIssue: 1, appliedAt: 0)?.quotas == [
                    Self.dinner: .zero
                ])
            #expect(
                try await ledger.issuePromotionQuotas(site: park, heldIssue: 1, appliedAt: 0)?.quotas == [
                    Self.dinner: .zero
                ])
            // The hotel's pull changes nothing (its 300 given, none free to add): the same issue
            // again, with no quota left.
            let unchanged = try await Self.pull(site, holding: 1, appliedAt: 1)
            #expect(unchanged.promotionBudgets.map(\.pointsLeft) == [0])
            #expect(unchanged.promotionQuotaIssue == 1 && unchanged.promotionQuotaSequence == 4)
            _ = try await ledger.issuePromotionQuotas(site: mall, heldIssue: 2, appliedAt: 0)
            _ = try await ledger.issuePromotionQuotas(site: park, heldIssue: 2, appliedAt: 0)
            // Now the pool has their 600, and the hotel's next pull gets it (counting from its
            // high-water mark, sequence 4).
            let again = try await Self.pull(site, holding: 1, appliedAt: 4)
            #expect(again.promotionBudgets.map(\.pointsLeft) == [600])
            #expect(again.promotionQuotaSequence == 4)
            #expect(again.promotionQuotaIssue == 2)
            // Extreme figures in a pull confirm nothing and trap nothing: the gateway answers with
            // the same issue again (nothing changed, nothing written).
            let extreme = try await Self.pull(site, holding: .max, appliedAt: .max)
            #expect(extreme.promotionBudgets.map(\.pointsLeft) == [600])
            #expect(extreme.promotionQuotaIssue == 2)
            // The operators' view.
            try await OpsServiceTests.withOps(
                port: site.gateway.port, certificates: site.certificates, certificate: "alice"
            ) { ops in
                let listed = try await ops.listPromotionQuotas(Coalition_Ops_V1_ListPromotionQuotasRequest())
                #expect(listed.promotions.map(\.promotionID) == ["quay-dinner"])
                #expect(listed.promotions.map(\.budgetPoints) == [900])
                #expect(listed.promotions.map(\.givenPoints) == [300])
                #expect(listed.promotions.map(\.reservedPoints) == [600])
                #expect(listed.promotions.map(\.poolPoints) == [0])
                #expect(listed.quotas.map(\.siteID) == ["hotel-01", "mall-01", "park-01"])
                #expect(listed.quotas.map(\.givenPoints) == [300, 0, 0])
                #expect(listed.quotas.map(\.reservedPoints) == [600, 0, 0])
                #expect(listed.quotas.map(\.recentPoints) == [300, 0, 0])
                var one = Coalition_Ops_V1_ListPromotionQuotasRequest()
                one.siteID = "mall-01"
                #expect(try await ops.listPromotionQuotas(one).quotas.map(\.siteID) == ["mall-01"])
                var unknown = Coalition_Ops_V1_ListPromotionQuotasRequest()
                unknown.promotionID = "double-saturday"
                await expectStatus(.notFound, reason: "UNKNOWN_PROMOTION") {
                    _ = try await ops.listPromotionQuotas(unknown)
                }
            }
        }
    }

    @Test("a promotion that ended issues no quota, and its reservations go back", arguments: LedgerKind.allCases)
    func ended(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(
            "hotel-01", merchant: "hotel-restaurant", program: Self.threeSites(budget: 900), ledger: ledger
        ) { site in
            #expect(try await Self.pull(site).promotionBudgets.map(\.pointsLeft) == [300])
            // A year on, the promotion has ended.
            site.clock.advance(milliseconds: 400 * 86_400_000)
            #expect(try await Self.pull(site, holding: 1, appliedAt: 1).promotionBudgets.map(\.pointsLeft) == [0])
            _ = try await Self.pull(site, holding: 2, appliedAt: 1)
            let quotas = try await site.gateway.ledger.promotionQuotas(promotion: Self.dinner, site: nil)
            #expect(quotas.map(\.holding.outstanding) == [.zero])
            // A dinner pushed with the bonus now is not given it (the promotion is over): the
            // earn's arithmetic, not the quota, refuses it.
            let pushed = try await site.push([
                RawSync.earn(
                    member: site.members[0], merchant: "hotel-restaurant", amount: 10_000, statedPoints: 250,
                    tier: "member", promotions: ["quay-dinner": 150])
            ])
            #expect(pushed.results.map(\.postedPoints) == [100])
        }
    }
}
