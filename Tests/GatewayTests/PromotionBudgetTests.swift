// Goal: a promotion's budget is held at the gateway, which sees every earn (DESIGN §3): a bonus an
// edge gave from a budget that has run out is posted with what is left and recorded, the pull feed
// carries each budget's figure, and an edge in touch with the gateway stops promising the bonus.
import Core
import Crypto
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Promotion budgets")
struct PromotionBudgetTests {
    /// The example program with the Quay dinner bonus (150 points) limited to 300 points in all.
    static func smallBudget(_ directory: String) throws {
        try Repository.exampleProgram(replacing: [
            ("minimum_points: 500", "minimum_points: 100"), ("budget_points: 300000", "budget_points: 300"),
        ]).write(toFile: directory + "/program.yaml", atomically: true, encoding: .utf8)
    }

    @Test(
        "a bonus past the budget is posted with what is left and recorded; the pull feed shows the budget",
        arguments: LedgerKind.allCases)
    func gatewayCut(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(
            "hotel-01", merchant: "hotel-rooms", program: Self.smallBudget, ledger: ledger
        ) { site in
            let member = site.members[0]
            // The site pulls its quota: the whole budget, as the only site the promotion reaches.
            var first = Coalition_Sync_V1_PullRequest()
            first.protocolVersion = 1
            #expect(try await site.sync.pull(first).promotionBudgets.map(\.pointsLeft) == [300])
            // Three ¥100 dinners, each 100 base points and the 150-point bonus as an edge with an
            // old quota figure would compute them: 250 points each.
            let dinners = (0..<3).map { _ in
                RawSync.earn(
                    member: member, merchant: "hotel-restaurant", amount: 10_000, statedPoints: 250, tier: "member",
                    promotions: ["quay-dinner": 150])
            }
            let pushed = try await site.push(dinners)
            #expect(pushed.results.map(\.postedPoints) == [250, 250, 100])
            #expect(pushed.results.map(\.reason) == ["", "", "promotion_budget"])
            #expect(try await site.gateway.balance(member) == 200 + 250 + 250 + 100)
            // The edge, not yet told of the cut, refunds half of the third dinner in proportion to
            // its receipt (125 of 250); the gateway takes back half of what it posted (50), and does
            // not call the honest edge's figure a mismatch.
            let refunded = try await site.push(
                [
                    RawSync.refund(
                        original: dinners[2].transactionID, member: member, merchant: "hotel-restaurant",
                        amount: 5_000, points: -125)
                ], from: 5, after: Data(SHA256.hash(data: try dinners[2].serializedBytes() as [UInt8])))
            #expect(refunded.results.map(\.postedPoints) == [-50])
            #expect(refunded.results.map(\.outcome) == [.posted])
            var pull = Coalition_Sync_V1_PullRequest()
            pull.protocolVersion = 1
            let page = try await site.sync.pull(pull)
            #expect(page.promotionBudgets.map(\.promotionID) == ["quay-dinner"])
            #expect(page.promotionBudgets.map(\.pointsLeft) == [0])
            #expect(try await site.gateway.conflicts(kind: "promotion_budget").map(\.points) == [150])
            #expect(try await site.gateway.conflicts(kind: "points_mismatch").isEmpty)
            // Base points and the refund are the restaurant's own; the dinner bonus is funded by the
            // restaurant too (the promotion's funder is the recording merchant by default).
            #expect(try await site.gateway.account("issued:hotel-restaurant") == -(100 + 100 + 100 - 50))
            #expect(try await site.gateway.account("bonus:hotel-restaurant") == -(150 + 150))
        }
    }

    @Test(
        "an edge in touch with the gateway stops giving the bonus once the budget is spent",
        arguments: LedgerKind.allCases)
    func edgeFollowsBudget(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["hotel-01"])
        let clock = ManualWallClock()
        let configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        try Self.smallBudget(dir)
        try await Network.withGateway(configuration, clock: clock, ledger: ledger) { gateway in
            var edge = try Network.edgeConfiguration(
                dir, site: "hotel-01", certificates: certificates, gatewayPort: gateway.port)
            edge.programFile = dir + "/program.yaml"
            try await Network.withEdge(edge, merchant: "hotel-restaurant", clock: clock) { hotel in
                let member = try await hotel.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: hotel.auth
                ).member.memberID
                var given: [Int64] = []
                for index in 1...3 {
                    let earned = try await hotel.points.earn(
                        Make.earn("D-\(index)", member: member, amount: 10_000), metadata: hotel.auth)
                    given.append(
                        earned.breakdown.components.filter { $0.kind == .promotion }.reduce(0) { $0 + $1.points })
                }
                // The edge counts its own bonuses against the budget it pulled: 150, 150, then none.
                #expect(given == [150, 150, 0])
                try await Network.eventually("everything is posted") { try await Network.synced(hotel) }
                // The receipts and the ledger agree: nothing was cut.
                #expect(try await gateway.balance(member) == 200 + 250 + 250 + 100)
                #expect(try await gateway.conflicts(kind: "promotion_budget").isEmpty)
            }
        }
    }

    /// The receipts a refund is checked against are the site's words: extreme figures in them are
    /// refused as a mismatch, never trap the gateway.
    @Test(
        "a refund checked against receipts with extreme figures is posted and flagged, and the gateway serves on",
        arguments: LedgerKind.allCases)
    func extremeReceipts(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let member = site.members[0]
            let earn = RawSync.earn(
                member: member, merchant: "mall-fashion", amount: 10_000, statedPoints: Int64.max, tier: "member")
            let refunds = [Int64.min, Int64.max, -1].map { points in
                RawSync.refund(
                    original: earn.transactionID, member: member, merchant: "mall-fashion", amount: 1_000,
                    points: points)
            }
            let pushed = try await site.push([earn] + refunds)
            #expect(pushed.results.map(\.reason) == Array(repeating: "points_mismatch", count: 4))
            #expect(pushed.results.map(\.postedPoints) == [100, -10, -10, -10])
            #expect(try await site.gateway.balance(member) == 200 + 100 - 30)
        }
    }
}
