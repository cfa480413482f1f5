// Goal (issue #16): tier benefits are issued as vouchers by the daily job exactly once per member,
// benefit and period — a second run in the period issues nothing, the next period issues again —
// a birthday benefit only in the member's birth month, and the account view shows them. Real
// gateway (SQLite and PostgreSQL), member API over mutual TLS.
import Core
import Crypto
import Foundation
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Tier benefits")
struct TierBenefitTests {
    @Test("the daily job issues each benefit once a period; the account view shows it", arguments: LedgerKind.allCases)
    func once(ledger: LedgerKind) async throws {
        try await MemberServiceTests.withMallNetwork(ledger: ledger) { network in
            let (gateway, mall, silver, certificates, clock) = (
                network.gateway, network.mall, network.member, network.certificates, network.clock
            )
            // A gold member born in November (this month), beside the fixture's silver member.
            var enrol = Make.enroll("E-2", phone: "+8613800138001")
            enrol.birthMonth = 11
            let gold = try await mall.points.enroll(enrol, metadata: mall.auth).member.memberID
            _ = try await mall.points.earn(Make.earn("R-2", member: gold, amount: 2_500_000), metadata: mall.auth)
            try await Network.eventually("synced") { try await Network.synced(mall) }
            let key = try VoucherSeal.privateKey(
                fromText: String(contentsOfFile: certificates.directory + "/voucher-1.key", encoding: .utf8))
            let issuer = VoucherIssuer(keyID: 1) { try VoucherSeal.sign($0, with: key) }

            // Silver: 1 parking voucher a month; gold: 2 coffees a month and the birthday tea.
            #expect(try await gateway.ledger.grantTierBenefits(vouchers: issuer) == 1 + 2 + 1)
            #expect(try await gateway.ledger.grantTierBenefits(vouchers: issuer) == 0)
            #expect(try await gateway.ledger.grantTierBenefits(vouchers: nil) == 0)
            try await MemberServiceTests.withMember(port: gateway.port, certificates: certificates, certificate: "app")
            {
                api in
                let account = try await api.getAccount(MemberServiceTests.account(gold))
                #expect(account.tier.tier == "gold")
                #expect(account.benefits.map(\.benefitID) == ["monthly-coffee", "birthday-tea"])
                #expect(account.benefits.map(\.period) == ["2026-11", "2026-birthday"])
                #expect(account.benefits.map(\.vouchers.count) == [2, 1])
                let silverAccount = try await api.getAccount(MemberServiceTests.account(silver))
                #expect(silverAccount.benefits.map(\.vouchers.count) == [1])
                // What the tier brings, and what the next one would: its vouchers each period.
                #expect(silverAccount.tier.benefits.map(\.itemID) == ["parking-2h"])
                #expect(silverAccount.nextTier.tier == "gold")
                #expect(silverAccount.nextTier.benefits.map(\.benefitID) == ["monthly-coffee", "birthday-tea"])
                #expect(silverAccount.nextTier.benefits.map(\.count) == [2, 1])
                #expect(silverAccount.nextTier.benefits.map(\.per) == ["month", "birthday"])
                #expect(silverAccount.nextTier.benefits.allSatisfy { $0.period.isEmpty && $0.vouchers.isEmpty })
                // The codes are real vouchers of their items.
                let code = try VoucherCode.parse(account.benefits[0].vouchers[0].code).get()
                #expect(code.claim.item.rawValue == "coffee")
                // The member's voucher list shows them as benefits.
                var mine = Coalition_Member_V1_ListVouchersRequest()
                mine.memberID = gold
                let listed = try await api.listVouchers(mine).vouchers
                #expect(listed.map(\.source) == ["benefit", "benefit", "benefit"])
                #expect(listed.map(\.itemID).sorted() == ["afternoon-tea", "coffee", "coffee"])
            }
            #expect(try await gateway.sql.int("SELECT COUNT(*) FROM benefit_grants", []) == 3)

            // December: the monthly benefits again, not the birthday one (November's).
            // (The gateway's own daily job may run first at the new day: the totals are what count.)
            clock.set(SettlementTests.at("2026-12-01T09:00"))
            _ = try await gateway.ledger.grantTierBenefits(vouchers: issuer)
            #expect(try await gateway.ledger.grantTierBenefits(vouchers: issuer) == 0)
            #expect(try await gateway.sql.int("SELECT COUNT(*) FROM benefit_grants", []) == 3 + 2)
            try await MemberServiceTests.withMember(port: gateway.port, certificates: certificates, certificate: "app")
            {
                api in
                let account = try await api.getAccount(MemberServiceTests.account(gold))
                #expect(account.benefits.map(\.period) == ["2026-12", ""])
                #expect(account.benefits.map(\.vouchers.count) == [2, 0])
            }
            #expect(
                try await gateway.sql.int("SELECT COUNT(*) FROM vouchers WHERE sponsor = 'platform'", []) == 7)
            try await gateway.checkInvariants()
        }
    }

    @Test(
        "the benefits job walks a tier of more members than one batch once, from a cursor, missing none",
        arguments: LedgerKind.allCases)
    func manyMembers(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(members: 400, ledger: ledger) { site in
            var previous = site.previous
            for first: UInt64 in [401, 801] {
                let more = try RawSync.enrolments(
                    merchant: "mall-fashion", count: 400, first: first, previous: previous)
                _ = try await site.sync.push(RawSync.push(more))
                previous = Data(SHA256.hash(data: more[more.count - 1].payload))
            }
            // 1,200 silver members: 1 parking voucher each a month, in batches of 500.
            try await site.gateway.sql.execute("UPDATE members SET tier = 'silver'")
            let issuer = VoucherIssuer(keyID: 1) { [key = Curve25519.Signing.PrivateKey()] in
                try VoucherSeal.sign($0, with: key)
            }
            #expect(try await site.gateway.ledger.grantTierBenefits(vouchers: issuer) == 1_200)
            #expect(try await site.gateway.ledger.grantTierBenefits(vouchers: issuer) == 0)
            #expect(try await site.gateway.sql.int("SELECT COUNT(DISTINCT member_id) FROM vouchers", []) == 1_200)
            #expect(try await site.gateway.sql.int("SELECT COUNT(*) FROM benefit_grants", []) == 1_200)
        }
    }
}
