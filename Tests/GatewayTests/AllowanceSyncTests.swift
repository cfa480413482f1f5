// Goal (#18, through the real sync service on both ledgers): a pushed redemption's allowance
// fields reach the posting rules. Until the stores keep allowances, every named allowance is
// unknown: the spend is posted as a floor-limit one with an `allowance_overspent` conflict, and
// allowance points the spend cannot hold reject it with nothing applied (docs/protocol.md,
// "Posting rules").
import Core
import Foundation
import Gateway
import Testing
import Wire

@Suite("Allowances over sync")
struct AllowanceSyncTests {
    static func spend(
        member: String, points: Int64, fromAllowance: Int64, allowance: String, merchant: String = "mall-fashion"
    ) -> Coalition_Sync_V1_LocalTransaction {
        var generator = SystemRandomNumberGenerator()
        var local = RawSync.redemption(
            transaction: TransactionID(time: ManualClockTime.now, using: &generator).description, member: member,
            merchant: merchant, points: points, authorization: .allowance)
        local.redeem.allowanceID = allowance
        local.redeem.allowancePoints = fromAllowance
        return local
    }

    @Test(
        "a spend naming an allowance the gateway does not hold is the member's, with the conflict",
        arguments: LedgerKind.allCases)
    func unknownAllowance(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let member = site.members[0]
            let pushed = try await site.push([
                Self.spend(member: member, points: 120, fromAllowance: 120, allowance: "al_unknown"),
                Self.spend(member: member, points: 50, fromAllowance: 51, allowance: "al_unknown"),
                Self.spend(member: member, points: 50, fromAllowance: 10, allowance: ""),
            ])
            #expect(pushed.results.map(\.outcome) == [.postedWithConflict, .rejected, .rejected])
            #expect(pushed.results.first?.reason == "allowance_overspent")
            #expect(pushed.results.dropFirst().allSatisfy { $0.reason.contains("malformed") })
            #expect(try await site.gateway.balance(member) == 80)  // 200 sign-up points less 120
            #expect(try await site.gateway.account("escrow:mall-01") == 0)
            #expect(try await site.gateway.account("offline_risk:mall-01") == 0)
            #expect(try await site.gateway.conflicts(kind: "allowance_overspent").map(\.points) == [120])
            #expect(
                try await site.gateway.ledger.siteStatus(SiteID(unchecked: "mall-01"))?.flags == ["allowance_overspent"]
            )
        }
    }
}
