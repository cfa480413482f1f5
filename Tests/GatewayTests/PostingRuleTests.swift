// Goal: the remaining rules of DESIGN §6 end to end: an edge whose points differ from Core's is
// posted with Core's result and flagged; a refund of points already spent takes the member to
// zero and books the rest to the refunding site's offline_risk.
import Core
import Crypto
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Posting rules at the gateway")
struct PostingRuleTests {
    /// Issue #13, item 1: a refund names its original earn, and belongs to that earn's member and
    /// merchant. Before, the gateway checked only the site: a refund of B's 5,000-point earn at
    /// mall-cafe, stating member A and merchant mall-electronics, took 5,000 points from A and paid
    /// mall-electronics for them, while mall-cafe still paid for B's points.
    @Test(
        "a refund stating another member or another merchant than its original is refused and flagged",
        arguments: LedgerKind.allCases)
    func refundOfAnotherPartysEarn(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(members: 2, ledger: ledger) { site in
            let (a, b) = (site.members[0], site.members[1])
            let earn = RawSync.earn(
                member: b, merchant: "mall-cafe", amount: 500_000, statedPoints: 5_000, tier: "member")
            let posted = try await site.push([earn])
            #expect(posted.results.map(\.outcome) != [.rejected])
            let earned = try await site.gateway.balance(b) - 200
            #expect(earned > 0)
            let cafe = try await site.gateway.account("issued:mall-cafe")
            let wrong = [
                (a, "mall-electronics"), (a, "mall-cafe"), (b, "mall-electronics"),
            ].map { member, merchant in
                RawSync.refund(
                    original: earn.transactionID, member: member, merchant: merchant, amount: 500_000,
                    points: -earned)
            }
            let refused = try await site.push(
                wrong, from: site.next + 1, after: Data(SHA256.hash(data: try earn.serializedBytes() as Data)))
            #expect(refused.results.map(\.outcome) == [.rejected, .rejected, .rejected])
            #expect(refused.results.allSatisfy { $0.reason == "unknown_original" })
            // Nobody's points or payables moved, and each refusal is a conflict to review.
            #expect(try await site.gateway.balance(a) == 200)
            #expect(try await site.gateway.balance(b) == 200 + earned)
            #expect(try await site.gateway.account("issued:mall-cafe") == cafe)
            #expect(try await site.gateway.account("issued:mall-electronics") == 0)
            #expect(try await site.gateway.conflicts(kind: "rejected").count == 3)
            // The refund its original's member and merchant push is posted.
            var previous = Data(SHA256.hash(data: try earn.serializedBytes() as Data))
            for local in wrong { previous = Data(SHA256.hash(data: try local.serializedBytes() as Data)) }
            let honest = RawSync.refund(
                original: earn.transactionID, member: b, merchant: "mall-cafe", amount: 500_000, points: -earned)
            let refunded = try await site.push([honest], from: site.next + 4, after: previous)
            #expect(refunded.results.map(\.outcome) == [.posted])
            #expect(try await site.gateway.balance(b) == 200)
            #expect(try await site.gateway.account("issued:mall-cafe") == cafe + earned)
        }
    }

    /// Issue #13, item 4: a refund takes back the refunded earn's own lot first. Before, it took
    /// the member's oldest lot (here the sign-up bonus), so buying and returning before each expiry
    /// date kept points for ever.
    @Test("a refund takes back the refunded earn's own lot, not the member's oldest", arguments: LedgerKind.allCases)
    func refundTakesItsOwnLot(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(members: 2, ledger: ledger) { site in
            // Member 0: the earn and its refund in one push; member 1: in two pushes (the lot then
            // comes from the ledger, not from the batch).
            let earns = site.members.map {
                RawSync.earn(member: $0, merchant: "mall-fashion", amount: 50_000, statedPoints: 500, tier: "member")
            }
            let refunds = zip(site.members, earns).map { member, earn in
                RawSync.refund(
                    original: earn.transactionID, member: member, merchant: "mall-fashion", amount: 50_000,
                    points: -500)
            }
            let first = try await site.push([earns[0], refunds[0], earns[1]])
            #expect(first.results.map(\.outcome) == [.posted, .posted, .posted])
            let second = try await site.push(
                [refunds[1]], from: site.next + 3,
                after: Data(SHA256.hash(data: try earns[1].serializedBytes() as Data)))
            #expect(second.results.map(\.outcome) == [.posted])
            for (member, earn) in zip(site.members, earns) {
                #expect(try await site.gateway.balance(member) == 200)
                let lots = try await site.gateway.sql.rows(
                    "SELECT lot_id, remaining_points FROM lots WHERE member_id = ? ORDER BY lot_number", [member]
                ).map { (id: $0[0] ?? "", remaining: Int64($0[1] ?? "") ?? -1) }
                #expect(lots.map(\.remaining) == [200, 0], "\(lots)")
                #expect(lots.last?.id == earn.transactionID)
            }
        }
    }

    /// Issue #13, item 10: the same phone enrolled at two offline sites, both referred, is one
    /// member paid one sign-up bonus and one referral bonus. Before: 400 sign-up and 600 referral.
    @Test(
        "a duplicate enrolment merged into the first pays no second sign-up or referral bonus",
        arguments: LedgerKind.allCases)
    func mergedEnrolmentPaysOnce(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(members: 1, ledger: ledger) { site in
            let referrer = site.members[0]
            var generator = SystemRandomNumberGenerator()
            let phone = Array(SHA256.hash(data: Data("+8613800138999".utf8)))
            let records = (0..<2).map { index in
                var local = RawSync.header(merchant: "mall-fashion", prefix: "RAW-E\(index)", time: ManualClockTime.now)
                var enrolment = Coalition_Sync_V1_Enrollment()
                enrolment.memberID = MemberID(time: ManualClockTime.now, using: &generator).description
                enrolment.phoneHash = Data(phone)
                enrolment.referrerMemberID = referrer
                enrolment.signupPoints = 200
                enrolment.referralPoints = 300
                local.enrollment = enrolment
                return local
            }
            let pushed = try await site.push(records)
            #expect(pushed.results.map(\.outcome) == [.posted, .postedWithConflict])
            #expect(pushed.results.map(\.postedPoints) == [200, 0])
            let first = records[0].enrollment.memberID
            #expect(try await site.gateway.balance(first) == 200)
            #expect(try await site.gateway.balance(referrer) == 200 + 300)
            // Sign-up and referral bonuses are the platform's (docs/rules.md, "Who funds each point").
            #expect(try await site.gateway.account("issued:mall-fashion") == 0)
            #expect(try await site.gateway.account("platform_bonus") == -(200 + 200 + 300))
            // The referrer is published again at the merged enrolment, so the edge that counted the
            // referral bonus locally drops it (found by the simulation: seed 92 of 300 showed the
            // referrer 300 points richer at the edge than at the gateway, for good).
            let published = try await site.gateway.sql.int(
                "SELECT changed_position FROM members WHERE member_id = ?", [referrer])
            let merged = try await site.gateway.sql.int(
                "SELECT position FROM transactions WHERE transaction_id = ?", [records[1].transactionID])
            #expect(published != nil && published == merged)
        }
    }

    /// Issue #16: the app may still hold the id of an enrolment that was merged into another; an
    /// order or a draw with it is booked to the member it merged into, on both stores. Before, the
    /// PostgreSQL store refused the order `UNKNOWN_MEMBER` (found by the simulation: seed 7 ran
    /// differently on the two stores).
    @Test(
        "an order and a draw naming a merged enrolment are booked to the member it merged into",
        arguments: LedgerKind.allCases)
    func mergedMemberOrders(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(members: 1, ledger: ledger) { site in
            var generator = SystemRandomNumberGenerator()
            let phone = Array(SHA256.hash(data: Data("+8613800138998".utf8)))
            let records = (0..<2).map { index in
                var local = RawSync.header(merchant: "mall-fashion", prefix: "RAW-M\(index)", time: ManualClockTime.now)
                var enrolment = Coalition_Sync_V1_Enrollment()
                enrolment.memberID = MemberID(time: ManualClockTime.now, using: &generator).description
                enrolment.phoneHash = Data(phone)
                enrolment.signupPoints = 200
                local.enrollment = enrolment
                return local
            }
            _ = try await site.push(records)
            let (survivor, merged) = (
                MemberID(records[0].enrollment.memberID)!, MemberID(records[1].enrollment.memberID)!
            )
            _ = try await site.gateway.ledger.adjust(
                member: survivor, points: Points(5_000), funder: .platform, reason: "test", by: "test",
                requestID: RequestID("ADJ-1")!)
            let order = try await site.gateway.ledger.placeOrder(
                OrderCommand(
                    channel: "app", requestID: RequestID("O-1")!, member: merged, item: ItemID("harbour-mug")!,
                    quantity: 1),
                vouchers: nil)
            #expect(order.order.member == survivor && order.order.requestedMember == merged)
            #expect(order.balance == Points(200 + 5_000 - 3_000))
            let draw = try await site.gateway.ledger.draw(
                DrawCommand(
                    channel: "app", requestID: RequestID("D-1")!, member: merged, lottery: LotteryID("winter-draw")!),
                vouchers: VoucherIssuer(keyID: 1) { [key = Curve25519.Signing.PrivateKey()] in
                    try VoucherSeal.sign($0, with: key)
                })
            #expect(draw.draw.member == survivor.description)
            #expect(try await site.gateway.balance(survivor.description) == draw.balance.value)
        }
    }

    /// Issue #13, item 5: a refund re-checks the tier at once. Before, a member who reached gold
    /// with one purchase kept gold after returning it, until the review a year later (1.5× points,
    /// 120 free parking minutes a day).
    @Test(
        "a refund of the purchase that reached a tier takes the tier back; one held before is kept",
        arguments: LedgerKind.allCases)
    func refundTakesTheTierBack(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(members: 2, ledger: ledger) { site in
            // Member 0: a silver-making purchase (¥6,000), then a gold-making one (¥20,000) refunded.
            // Member 1: the gold-making purchase refunded in part, still over the gold threshold.
            let silver = RawSync.earn(
                member: site.members[0], merchant: "mall-fashion", amount: 600_000, statedPoints: 6_000,
                tier: "member")
            let gold = RawSync.earn(
                member: site.members[0], merchant: "mall-fashion", amount: 2_000_000, statedPoints: 24_000,
                tier: "silver")
            let refund = RawSync.refund(
                original: gold.transactionID, member: site.members[0], merchant: "mall-fashion", amount: 2_000_000,
                points: -24_000)
            let big = RawSync.earn(
                member: site.members[1], merchant: "mall-fashion", amount: 3_000_000, statedPoints: 30_000,
                tier: "member")
            let part = RawSync.refund(
                original: big.transactionID, member: site.members[1], merchant: "mall-fashion", amount: 500_000,
                points: -5_000)
            let pushed = try await site.push([silver, gold])
            #expect(pushed.results.allSatisfy { $0.outcome != .rejected })
            #expect(try await Self.tier(site, site.members[0]) == "gold")
            let refunded = try await site.push(
                [refund, big, part], from: site.next + 2,
                after: Data(SHA256.hash(data: try gold.serializedBytes() as Data)))
            #expect(refunded.results.allSatisfy { $0.outcome != .rejected })
            // Back to silver, which the member held before the refunded purchase.
            #expect(try await Self.tier(site, site.members[0]) == "silver")
            // 30,000 − 5,000 still reaches gold.
            #expect(try await Self.tier(site, site.members[1]) == "gold")
        }
    }

    static func tier(_ site: RawSync.EnrolledSite, _ member: String) async throws -> String? {
        try await site.gateway.sql.strings("SELECT tier FROM members WHERE member_id = ?", [member]).first
    }

    @Test(
        "points that differ from Core's are posted as Core computes them, and the site is flagged",
        arguments: LedgerKind.allCases)
    func pointsMismatch(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock,
            ledger: ledger
        ) { gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let batch = try RawSync.enrolments(merchant: "mall-fashion", count: 1, signupPoints: 99_999)
                let response = try await sync.push(RawSync.push(batch))
                #expect(response.results.first?.outcome == .postedWithConflict)
                #expect(response.results.first?.reason == "points_mismatch")
                #expect(response.results.first?.postedPoints == 200)
                let member = try Coalition_Sync_V1_LocalTransaction(serializedBytes: batch[0].payload).enrollment
                    .memberID
                #expect(try await gateway.balance(member) == 200)
                #expect(try await gateway.flags("mall-01").contains("points_mismatch"))
                #expect(try await gateway.conflicts(kind: "points_mismatch").count == 1)
            }
            try await gateway.checkInvariants()
        }
    }

    /// docs/rules.md, "Earning on a bill paid partly with points" (#13 item 11): points were earned
    /// on the whole bill, the part paid with points included. A till now says how much of the bill
    /// points paid; the edge and the gateway earn on the rest, and a site that states the whole
    /// bill's points for such an earn is posted with Core's and flagged.
    @Test(
        "no points are earned on the part of a bill paid with points, at the edge and at the gateway",
        arguments: LedgerKind.allCases)
    func paidWithPoints(ledger: LedgerKind) async throws {
        try await Network.withLinkedEdge(ledger: ledger) { gateway, mall, clock in
            let member = try await mall.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
            ).member.memberID
            var earn = Make.earn("R-1", member: member, amount: 100_000)
            earn.paidWithPointsMinor = 100_001
            let refused = await expectStatus(.invalidArgument) {
                _ = try await mall.points.earn(earn, metadata: mall.auth)
            }
            #expect(refused.contains("paid_with_points_minor"))
            earn.paidWithPointsMinor = 20_000
            let answer = try await mall.points.earn(earn, metadata: mall.auth)
            #expect(answer.points == 800)
            try await Network.eventually("synced") { try await Network.synced(mall) }
            #expect(try await gateway.balance(member) == 1_000)
            #expect(try await gateway.conflicts(kind: "points_mismatch").isEmpty)
        }
    }

    /// A site that earns on the whole bill when part of it was paid with points is corrected.
    @Test(
        "a site stating points on the part paid with points is posted with Core's and flagged",
        arguments: LedgerKind.allCases)
    func paidWithPointsOverstated(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let member = site.members[0]
            var earn = RawSync.earn(
                member: member, merchant: "mall-fashion", amount: 100_000, statedPoints: 1_000, tier: "member")
            earn.earn.paidWithPointsMinor = 20_000
            let pushed = try await site.push([earn])
            #expect(pushed.results.first?.reason == "points_mismatch")
            #expect(pushed.results.first?.postedPoints == 800)
            #expect(try await site.gateway.balance(member) == 1_000)
        }
    }

    /// docs/rules.md, "Referral" (#13 item 10): with `referral_paid_at: first_purchase` the
    /// referrer is paid at the referred member's first purchase that earns base points, once, by
    /// the merchant of that purchase; nothing at the enrolment.
    @Test(
        "a referral paid at the first purchase: nothing at enrolment, once at the first earn",
        arguments: LedgerKind.allCases)
    func referralAtFirstPurchase(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock,
            ledger: ledger
        ) { gateway in
            let document = try Repository.exampleProgram(replacing: [
                ("  referral_points: 300\n", "  referral_points: 300\n  referral_paid_at: first_purchase\n")
            ])
            #expect(
                try await gateway.ledger.publish(document: Array(document.utf8), effectiveAt: nil, by: "alice") == 2)
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                var generator = SystemRandomNumberGenerator()
                func enrolment(referrer: String) -> Coalition_Sync_V1_LocalTransaction {
                    var local = RawSync.header(merchant: "mall-fashion", prefix: "RAW-E", time: ManualClockTime.now)
                    local.programVersion = 2
                    var record = Coalition_Sync_V1_Enrollment()
                    record.memberID = MemberID(time: ManualClockTime.now, using: &generator).description
                    record.signupPoints = 200
                    record.referrerMemberID = referrer
                    local.enrollment = record
                    return local
                }
                let referrer = enrolment(referrer: "")
                let referred = enrolment(referrer: referrer.enrollment.memberID)
                func earn() -> Coalition_Sync_V1_LocalTransaction {
                    var local = RawSync.earn(
                        member: referred.enrollment.memberID, merchant: "mall-cafe", amount: 10_000, statedPoints: 100,
                        tier: "member")
                    local.programVersion = 2
                    return local
                }
                let first = earn()
                let second = earn()
                let chain = try RawSync.chain([referrer, referred, first, second], first: 1, previous: Data(count: 32))
                let enrolled = try await sync.push(RawSync.push(Array(chain.prefix(2))))
                #expect(enrolled.results.map(\.outcome) == [.posted, .posted])
                #expect(try await gateway.balance(referrer.enrollment.memberID) == 200)
                let earned = try await sync.push(RawSync.push(Array(chain.suffix(2))))
                #expect(earned.results.map(\.outcome) == [.posted, .posted])
                #expect(try await gateway.balance(referrer.enrollment.memberID) == 500)
                #expect(try await gateway.balance(referred.enrollment.memberID) == 400)
                #expect(try await gateway.account("issued:mall-cafe") == -200)  // the base points earned
                // The sign-ups and the referral paid at the first purchase are the platform's.
                #expect(try await gateway.account("platform_bonus") == -(200 + 200 + 300))
            }
            try await gateway.checkInvariants()
        }
    }

    /// docs/protocol.md, "Posting rules" (#13 item 6): only future times were capped, so an earn
    /// pushed on Monday dated last Saturday posted the Saturday's double points, unflagged. A time
    /// earlier than the site's previous transaction by more than the clock tolerance is raised to
    /// that bound and flagged.
    @Test(
        "an earn dated before the site's previous transaction is posted at the bound and flagged, not in a past promotion",
        arguments: LedgerKind.allCases)
    func backDatedEarn(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        let monday = ManualClockTime.now.adding(milliseconds: 6 * 86_400_000)  // 2026-11-30 12:00 in Shanghai
        clock.set(monday)
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock,
            ledger: ledger
        ) { gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let (member, previous) = try await RawSync.enrolOne(sync)
                let saturday = ManualClockTime.now.adding(milliseconds: 4 * 86_400_000)  // double-saturday
                let honest = RawSync.earn(
                    member: member, merchant: "mall-fashion", amount: 100_000, statedPoints: 1_000, tier: "member",
                    time: monday)
                let backDated = RawSync.earn(
                    member: member, merchant: "mall-fashion", amount: 100_000, statedPoints: 2_000, tier: "member",
                    promotions: ["double-saturday": 1_000], time: saturday)
                let pushed = try await sync.push(
                    RawSync.push(try RawSync.chain([honest, backDated], first: 2, previous: previous)))
                #expect(pushed.results.map(\.outcome) == [.posted, .postedWithConflict])
                #expect(pushed.results.last?.reason.contains("clock_skew") == true)
                #expect(pushed.results.last?.postedPoints == 1_000)
                #expect(try await gateway.balance(member) == 200 + 1_000 + 1_000)
                #expect(try await gateway.flags("mall-01").contains("clock_skew"))
                let occurred = try await gateway.sql.int(
                    "SELECT occurred_at_ms FROM transactions WHERE transaction_id = ?", [backDated.transactionID])
                let flagged = try await gateway.sql.strings(
                    "SELECT kind FROM conflicts WHERE transaction_id = ? ORDER BY kind", [backDated.transactionID])
                #expect(occurred == monday.milliseconds - 10 * 60 * 1000)
                #expect(flagged == ["clock_skew", "points_mismatch"])
            }
            try await gateway.checkInvariants()
        }
    }

    /// docs/rules.md, "Refunds" (#13 item 8): a refund of an earn whose points expired takes them
    /// back from `expired` (the breakage is reversed), not from the member's other points.
    @Test(
        "a refund of an earn whose points expired takes them back from expired, not from other points",
        arguments: LedgerKind.allCases)
    func refundOfExpiredEarn(ledger: LedgerKind) async throws {
        // The clock jumps 23 months: the edge keeps its transactions for 3 years, or its storage
        // job may prune the earn being refunded before the refund reaches it.
        let keepThreeYears: (inout EdgeConfiguration) -> Void = {
            $0.limits.outboxRetentionMilliseconds = 94_608_000_000
        }
        try await Network.withLinkedEdge(edit: keepThreeYears, ledger: ledger) { gateway, mall, clock in
            let member = try await mall.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
            ).member.memberID
            let first = try await mall.points.earn(
                Make.earn("R-1", member: member, amount: 100_000), metadata: mall.auth)
            #expect(first.points == 1_000)
            try await Network.eventually("synced") { try await Network.synced(mall) }
            clock.set(Timestamp(milliseconds: 1_799_000_000_000))  // 2027-01-04: expires at the end of January 2028
            _ = try await mall.points.earn(Make.earn("R-2", member: member, amount: 50_000), metadata: mall.auth)
            try await Network.eventually("synced") { try await Network.synced(mall) }
            clock.set(Timestamp(milliseconds: 1_827_622_800_000))  // 2027-12-01 09:00 in Shanghai
            let run = try await gateway.ledger.runExpiry(asOfEndOf: CivilDate(parsing: "2027-11-30")!)
            #expect(run.points.value == 1_200)
            try await Network.eventually("the edge knows") { try await mall.balance(member) == 500 }
            var refund = Coalition_Edge_V1_ReverseRequest()
            refund.requestID = "V-1"
            refund.originalTransactionID = first.transactionID
            let answer = try await mall.points.reverse(refund, metadata: mall.auth)
            #expect(answer.withheldPoints == 0)
            try await Network.eventually("synced") { try await Network.synced(mall) }
            #expect(try await gateway.balance(member) == 500)
            #expect(try await gateway.account("expired") == 200)
            #expect(try await gateway.account("offline_risk:mall-01") == 0)
            #expect(try await gateway.account("issued:mall-fashion") == -500)  // 1,500 base, 1,000 back
            #expect(try await gateway.account("platform_bonus") == -200)
            #expect(try await gateway.conflicts(kind: "refund_after_spend").isEmpty)
            try await Network.eventually("the edge shows 500") { try await mall.balance(member) == 500 }
            try await gateway.checkInvariants()
        }
    }

    /// A replica that did not know of a spend refunds in full (withholds nothing): the gateway
    /// takes back what the member has; the issuer keeps paying for the rest, no site's offline_risk
    /// is charged, and the refund is flagged with the points.
    @Test(
        "a refund from a replica that did not know of the spend takes what the member has and is flagged",
        arguments: LedgerKind.allCases)
    func staleRefundAfterSpend(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let member = site.members[0]
            let earn = RawSync.earn(
                member: member, merchant: "mall-fashion", amount: 100_000, statedPoints: 1_000, tier: "member")
            var generator = SystemRandomNumberGenerator()
            let spend = RawSync.redemption(
                transaction: TransactionID(time: ManualClockTime.now, using: &generator).description,
                member: member, merchant: "mall-fashion", points: 900, authorization: .floorLimit)
            let refund = RawSync.refund(
                original: earn.transactionID, member: member, merchant: "mall-fashion", amount: 100_000,
                points: -1_000)
            let pushed = try await site.push([earn, spend, refund])
            #expect(pushed.results.map(\.outcome) == [.posted, .posted, .postedWithConflict])
            #expect(pushed.results.last?.reason == "refund_after_spend")
            #expect(pushed.results.last?.postedPoints == -300)
            #expect(try await site.gateway.balance(member) == 0)
            #expect(try await site.gateway.account("offline_risk:mall-01") == 0)
            #expect(try await site.gateway.account("issued:mall-fashion") == -700)  // 1,000 base, 300 back
            #expect(try await site.gateway.account("platform_bonus") == -200)  // the sign-up
            #expect(try await site.gateway.conflicts(kind: "refund_after_spend").map(\.points) == [700])
        }
    }

    /// docs/rules.md, "Refunds" (#13 item 3): the member keeps nothing it spent; the till withholds
    /// the spent points' value from the cash refund, the issuer's payable is reversed only for the
    /// points taken back, and no site's offline_risk is charged. A replica that did not know of a
    /// spend refunds in full: the gateway takes what the member has, the issuer keeps paying for the
    /// rest and the refund is flagged.
    @Test(
        "a refund of points already spent: the till withholds their value; the issuer is given back only what returns",
        arguments: LedgerKind.allCases)
    func refundAfterSpend(ledger: LedgerKind) async throws {
        try await Network.withLinkedEdge(ledger: ledger) { gateway, mall, clock in
            let member = try await mall.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
            ).member.memberID
            let earn = try await mall.points.earn(
                Make.earn("R-1", member: member, amount: 100_000), metadata: mall.auth)
            #expect(earn.points == 1_000)
            // 1,200 points, 900 spent: a refund of the 1,000 takes back the 300 left and
            // withholds 700 points' value (mall-fashion's redeem price 1 fen) from the cash.
            _ = try await mall.points.redeem(
                Make.redeem("P-1", member: member, bill: 300_000, points: 900), metadata: mall.auth)
            var refund = Coalition_Edge_V1_ReverseRequest()
            refund.requestID = "V-1"
            refund.originalTransactionID = earn.transactionID
            let answer = try await mall.points.reverse(refund, metadata: mall.auth)
            #expect(answer.points == 300)
            #expect(answer.withheldPoints == 700)
            #expect(answer.withheldMinor == 700)
            #expect(answer.balanceAfterPoints == 0)
            try await Network.eventually("synced") { try await Network.synced(mall) }
            #expect(try await gateway.balance(member) == 0)
            #expect(try await gateway.account("offline_risk:mall-01") == 0)
            #expect(try await gateway.account("issued:mall-fashion") == -700)  // 1,000 base, 300 back
            #expect(try await gateway.account("platform_bonus") == -200)  // the sign-up
            #expect(try await gateway.conflicts(kind: "refund_after_spend").isEmpty)

            try await Network.eventually("the edge shows 0") { try await mall.balance(member) == 0 }
            try await gateway.checkInvariants()
        }
    }
}

@Suite("Gateway backup")
struct GatewayBackupTests {
    @Test("an online backup of the ledger holds every posted transaction and balances")
    func backup() async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock
        ) { gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                _ = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 5)))
            }
            let path = directory.path("ledger-backup.sqlite")
            try gateway.store.database.backup(to: path)
            let copy = try GatewayDatabase.open(path: path)
            let counts = try await copy.pool.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM transactions"),
                    try Int64.fetchOne(db, sql: "SELECT SUM(points) FROM postings"),
                    try Int64.fetchOne(db, sql: "SELECT high_water_mark FROM sites WHERE site_id = 'mall-01'")
                )
            }
            #expect(counts.0 == 5)
            #expect(counts.1 == 0)
            #expect(counts.2 == 5)
        }
    }

    /// DESIGN §8: a site that states a tier and a birthday the member never had cannot mint points:
    /// the earn is posted with the gateway's record of the member and flagged with the points at
    /// stake. A stale tier the member really held since the edge's replica position is honest and
    /// is posted as stated.
    @Test(
        "a stated tier or birthday the member did not have is replaced by the gateway's record and flagged",
        arguments: LedgerKind.allCases)
    func memberStateLiar(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let member = site.members[0]
            func earn(_ amount: Int64, stating points: Int64, tier: String, birthMonth: Int32 = 0)
                -> Coalition_Sync_V1_LocalTransaction
            {
                RawSync.earn(
                    member: member, merchant: "mall-fashion", amount: amount, statedPoints: points, tier: tier,
                    birthMonth: birthMonth, replicaPosition: 2)
            }
            let pushed = try await site.push([
                // ¥1,000 at 1 point a yuan is 1,000 points; gold (1.5×) and the birthday month
                // (November, 2×) would make it 2,500.
                earn(100_000, stating: 2_500, tier: "gold", birthMonth: 11),
                // ¥5,000 makes the member silver (5,000 qualifying points).
                earn(500_000, stating: 5_000, tier: "member"),
                // The edge's replica was from before the upgrade: "member" is a tier the member held
                // since then (honest), "gold" is not.
                earn(100_000, stating: 1_000, tier: "member"),
                earn(100_000, stating: 1_500, tier: "gold"),
            ])
            #expect(pushed.results.map(\.reason) == ["member_state_mismatch", "", "", "member_state_mismatch"])
            #expect(pushed.results.map(\.postedPoints) == [1_000, 5_000, 1_000, 1_200])
            #expect(try await site.gateway.balance(member) == 200 + 1_000 + 5_000 + 1_000 + 1_200)
            #expect(try await site.gateway.conflicts(kind: "member_state_mismatch").map(\.points) == [1_500, 300])
            #expect(try await site.gateway.flags("mall-01").contains("member_state_mismatch"))
            #expect(try await site.gateway.conflicts(kind: "points_mismatch").isEmpty)
        }
    }
    /// A member enrolled offline with the phone of a member who has since been upgraded is merged
    /// into that member in the same push as its first earn; the earn states the tier the edge knew
    /// ("member"), which the survivor held since the edge's replica position: honest, posted as
    /// stated. (The loader once read tier history only of members already on file, so the posting
    /// asked for it again and again and the push never returned.)
    @Test(
        "an earn by a member merged in the same push is checked against the survivor's tier history",
        arguments: LedgerKind.allCases)
    func earnAfterMergeInSamePush(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let phone = Data(repeating: 7, count: 32)
            func enrolment(_ member: MemberID) -> Coalition_Sync_V1_LocalTransaction {
                var local = RawSync.header(merchant: "mall-fashion", prefix: "RAW-E", time: ManualClockTime.now)
                var enrollment = Coalition_Sync_V1_Enrollment()
                enrollment.memberID = member.description
                enrollment.phoneHash = phone
                enrollment.signupPoints = 200
                local.enrollment = enrollment
                return local
            }
            var generator = SystemRandomNumberGenerator()
            let first = MemberID(time: ManualClockTime.now, using: &generator)
            let second = MemberID(time: ManualClockTime.now, using: &generator)
            let upgrade = try RawSync.chain(
                [
                    enrolment(first),
                    // ¥5,000 makes the first member silver.
                    RawSync.earn(
                        member: first.description, merchant: "mall-fashion", amount: 500_000, statedPoints: 5_000,
                        tier: "member", replicaPosition: 2),
                ], first: site.next, previous: site.previous)
            let upgraded = try await site.sync.push(RawSync.push(upgrade))
            #expect(upgraded.results.map(\.reason) == ["", ""], "\(upgraded)")
            let pushed = try await site.push(
                [
                    enrolment(second),
                    RawSync.earn(
                        member: second.description, merchant: "mall-fashion", amount: 100_000, statedPoints: 1_000,
                        tier: "member", replicaPosition: 2),
                ], from: site.next + 2, after: Data(SHA256.hash(data: upgrade[1].payload)))
            #expect(pushed.status == .applied)
            #expect(pushed.results.map(\.reason) == ["member_merge", ""])
            // The merged record pays no second sign-up bonus (issue #13, item 10).
            #expect(pushed.results.map(\.postedPoints) == [0, 1_000])
            #expect(try await site.gateway.balance(first.description) == 200 + 5_000 + 1_000)
            #expect(try await site.gateway.conflicts(kind: "member_state_mismatch").isEmpty)
        }
    }
}
