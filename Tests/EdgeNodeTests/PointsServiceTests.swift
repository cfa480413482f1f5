// Goal: the POS API does what DESIGN §4 promises, through the real server: results equal Core's for
// the example program, retries are idempotent, terminals act only for their merchant, refunds and
// cancellations restore the right points, and offline redemptions stop at the floor limits.
import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import TestSupport
import Testing
import Wire

@Suite("Points service")
struct PointsServiceTests {
    /// Enrols a member and returns their id.
    static func enroll(
        _ edge: EdgeHarness, phone: String = "+8613800138000", as merchant: String = "mall-fashion",
        birthMonth: Int32 = 0
    )
        async throws -> String
    {
        try await edge.points.enroll(
            Requests.enroll("E-\(phone.hashValue & 0xFFFF)", phone: phone, birthMonth: birthMonth),
            metadata: edge.auth(merchant)
        )
        .member.memberID
    }

    @Test("enrolment gives the sign-up bonus; the same phone is not enrolled twice")
    func enrollment() async throws {
        try await EdgeFixture.withEdge { edge in
            let response = try await edge.points.enroll(
                Requests.enroll("E-1", phone: "+8613800138000"), metadata: edge.auth("mall-fashion"))
            #expect(response.member.balancePoints == 200)
            #expect(response.member.tier == "member")
            #expect(response.breakdown.components.map(\.kind) == [.signup])
            #expect(!response.alreadyEnrolled)
            let again = try await edge.points.enroll(
                Requests.enroll("E-2", phone: "+8613800138000"), metadata: edge.auth("mall-cafe"))
            #expect(again.alreadyEnrolled)
            #expect(again.member.memberID == response.member.memberID)
            #expect(again.transactionID.isEmpty)
            var lookup = Coalition_Edge_V1_LookupMemberRequest()
            lookup.phone = "+8613800138000"
            #expect(
                try await edge.points.lookupMember(lookup, metadata: edge.auth("mall-cafe")).member.memberID
                    == response.member.memberID)
            // A referral credits the referrer.
            let referred = try await edge.points.enroll(
                Requests.enroll("E-3", phone: "+8613900139000", referrer: response.member.memberID),
                metadata: edge.auth("mall-fashion"))
            #expect(referred.member.balancePoints == 200)
            // The new member's breakdown is theirs alone (its total the sum of its parts); the
            // referrer's bonus is reported apart.
            #expect(referred.breakdown.components.map(\.kind) == [.signup])
            #expect(referred.breakdown.totalPoints == referred.breakdown.components.reduce(0) { $0 + $1.points })
            #expect(referred.referrerBonusPoints == 300)
            #expect(
                try await edge.points.getBalance(
                    Requests.balance(response.member.memberID), metadata: edge.auth("mall-fashion")
                ).member.balancePoints == 500)
        }
    }

    @Test("the phone is stored only as a keyed hash, nowhere in the file in clear")
    func phoneHashed() async throws {
        try await EdgeFixture.withEdge { edge in
            _ = try await Self.enroll(edge, phone: "+8613800138000")
            let stored = try await edge.node.ledger.database.pool.read { db in
                try Data.fetchOne(db, sql: "SELECT phone_hash FROM members")
            }
            #expect(stored == edge.node.ledger.phoneHash(PhoneNumber("+8613800138000")!))
            // Checkpoint the WAL so the main file holds everything, then look for the digits.
            try await edge.node.ledger.database.pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: edge.node.configuration.databasePath))
            #expect(bytes.range(of: Data("13800138000".utf8)) == nil)
        }
    }

    static let earnCases: [(merchant: String, amount: Int64, lines: [(String, Int64)])] = [
        ("mall-fashion", 10_000, []),
        ("mall-fashion", 10_099, []),
        ("mall-grocer", 10_099, []),
        ("mall-grocer", 20_000, [("grocery", 10_000), ("apparel", 10_000)]),
        ("mall-cafe", 5_000, [("tobacco", 2_000), ("dining", 3_000)]),
    ]

    @Test("every earn equals Core's result for the example program", arguments: earnCases.indices)
    func earnMatchesCore(_ index: Int) async throws {
        let c = Self.earnCases[index]
        try await EdgeFixture.withEdge { edge in
            let member = try await Self.enroll(edge)
            let response = try await edge.points.earn(
                Requests.earn("R-\(index)", member: member, amount: c.amount, lines: c.lines),
                metadata: edge.auth(c.merchant))
            let expected = try EarnCalculator.earn(
                program: edge.program,
                input: EarnInput(
                    merchant: MerchantID(c.merchant)!, amount: Money(minorUnits: c.amount),
                    lines: c.lines.map { SaleLine(category: Category($0.0)!, amount: Money(minorUnits: $0.1)) },
                    occurredAt: edge.clock.now(), member: MemberEarnState(tier: TierID("member")!, streak: nil)))
            #expect(response.points == expected.total.value)
            #expect(response.breakdown == Coalition_Common_V1_EarnBreakdown(expected))
            #expect(response.balanceAfterPoints == 200 + expected.total.value)
            #expect(response.programVersion == 0)
        }
    }

    @Test("a redemption equals Core's quote and takes the points")
    func redeemMatchesCore() async throws {
        try await EdgeFixture.withEdge { edge in
            let member = try await Self.enroll(edge)
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 300_000), metadata: edge.auth("mall-fashion"))
            let response = try await edge.points.redeem(
                Requests.redeem("P-1", member: member, bill: 9_999, points: 2_000), metadata: edge.auth("mall-cafe"))
            let quote = try RedeemCalculator.quote(
                program: edge.program,
                input: RedeemInput(
                    merchant: MerchantID("mall-cafe")!, bill: Money(minorUnits: 9_999), requestedPoints: Points(2_000),
                    availablePoints: Points(3_200)))
            #expect(response.points == quote.points.value)
            #expect(response.valueMinor == quote.value.minorUnits)
            #expect(response.remainingDueMinor == quote.remainingDue.minorUnits)
            #expect(response.balanceAfterPoints == 3_200 - quote.points.value)
            #expect(response.authorization == .floorLimit)
            // Over half the bill is refused with a reason the till can act on.
            await expectStatus(.failedPrecondition, reason: "OVER_BILL_SHARE") {
                _ = try await edge.points.redeem(
                    Requests.redeem("P-2", member: member, bill: 1_000, points: 600), metadata: edge.auth("mall-cafe"))
            }
            await expectStatus(.failedPrecondition, reason: "BELOW_MINIMUM") {
                _ = try await edge.points.redeem(
                    Requests.redeem("P-3", member: member, bill: 10_000, points: 499), metadata: edge.auth("mall-cafe"))
            }
        }
    }

    @Test("a retry returns the original answer; the same id with other content is ALREADY_EXISTS")
    func idempotency() async throws {
        try await EdgeFixture.withEdge { edge in
            let member = try await Self.enroll(edge)
            let request = Requests.earn("R-42", member: member, amount: 12_345)
            let first = try await edge.points.earn(request, metadata: edge.auth("mall-fashion"))
            let retry = try await edge.points.earn(request, metadata: edge.auth("mall-fashion"))
            #expect(retry == first)
            let balance = try await edge.points.getBalance(
                Requests.balance(member), metadata: edge.auth("mall-fashion"))
            #expect(balance.member.balancePoints == 200 + 123)
            await expectStatus(.alreadyExists) {
                _ = try await edge.points.earn(
                    Requests.earn("R-42", member: member, amount: 99_999), metadata: edge.auth("mall-fashion"))
            }
            // The same receipt number at another merchant is another receipt.
            let other = try await edge.points.earn(request, metadata: edge.auth("mall-cafe"))
            #expect(other.transactionID != first.transactionID)
        }
    }

    @Test("terminals need a valid token and act only for their own merchant")
    func authentication() async throws {
        try await EdgeFixture.withEdge { edge in
            let member = try await Self.enroll(edge)
            await expectStatus(.unauthenticated) {
                _ = try await edge.points.getBalance(Requests.balance(member))
            }
            await expectStatus(.unauthenticated) {
                _ = try await edge.points.getBalance(
                    Requests.balance(member), metadata: ["authorization": "Bearer ct_nope"])
            }
            await expectStatus(.unauthenticated) {
                _ = try await edge.points.getBalance(
                    Requests.balance(member), metadata: ["authorization": .string(edge.tokens["mall-cafe"]!)])
            }
            var request = Requests.earn("R-1", member: member, amount: 1_000)
            request.merchantID = "mall-grocer"
            await expectStatus(.permissionDenied) {
                _ = try await edge.points.earn(request, metadata: edge.auth("mall-fashion"))
            }
            let earn = try await edge.points.earn(
                Requests.earn("R-2", member: member, amount: 1_000), metadata: edge.auth("mall-fashion"))
            await expectStatus(.permissionDenied) {
                _ = try await edge.points.reverse(
                    Requests.reverse("V-1", original: earn.transactionID), metadata: edge.auth("mall-cafe"))
            }
            // A revoked terminal is refused once its cache entry expires (cache off here).
        }
    }

    @Test("a revoked terminal is refused")
    func revocation() async throws {
        var limits = EdgeLimits()
        limits.terminalCacheMilliseconds = 0
        try await EdgeFixture.withEdge(limits: limits) { edge in
            let member = try await Self.enroll(edge)
            let name = try #require(try edge.node.terminals.list().first { $0.merchant.rawValue == "mall-cafe" }).id
            #expect(try edge.node.terminals.revoke(terminalID: name))
            await expectStatus(.unauthenticated) {
                _ = try await edge.points.getBalance(Requests.balance(member), metadata: edge.auth("mall-cafe"))
            }
        }
    }

    @Test("refunds take back points in proportion; a cancelled redemption gives them back once")
    func reversals() async throws {
        try await EdgeFixture.withEdge { edge in
            let member = try await Self.enroll(edge)
            let earn = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 10_000), metadata: edge.auth("mall-fashion"))
            #expect(earn.points == 100)
            let partial = try await edge.points.reverse(
                Requests.reverse("V-1", original: earn.transactionID, amount: 3_333),
                metadata: edge.auth("mall-fashion"))
            #expect(partial.points == 33)
            #expect(partial.balanceAfterPoints == 267)
            let rest = try await edge.points.reverse(
                Requests.reverse("V-2", original: earn.transactionID), metadata: edge.auth("mall-fashion"))
            #expect(rest.points == 67)
            #expect(rest.balanceAfterPoints == 200)
            await expectStatus(.failedPrecondition, reason: "NOT_REVERSIBLE") {
                _ = try await edge.points.reverse(
                    Requests.reverse("V-3", original: earn.transactionID), metadata: edge.auth("mall-fashion"))
            }
            _ = try await edge.points.earn(
                Requests.earn("R-2", member: member, amount: 100_000), metadata: edge.auth("mall-fashion"))
            let redeem = try await edge.points.redeem(
                Requests.redeem("P-1", member: member, bill: 10_000, points: 1_000), metadata: edge.auth("mall-fashion")
            )
            #expect(redeem.balanceAfterPoints == 200)
            let cancel = try await edge.points.reverse(
                Requests.reverse("V-4", original: redeem.transactionID), metadata: edge.auth("mall-fashion"))
            #expect(cancel.points == 1_000)
            #expect(cancel.balanceAfterPoints == 1_200)
            await expectStatus(.failedPrecondition, reason: "NOT_REVERSIBLE") {
                _ = try await edge.points.reverse(
                    Requests.reverse("V-5", original: redeem.transactionID), metadata: edge.auth("mall-fashion"))
            }
            await expectStatus(.invalidArgument) {
                _ = try await edge.points.reverse(
                    Requests.reverse("V-6", original: redeem.transactionID, amount: 5),
                    metadata: edge.auth("mall-fashion"))
            }
        }
    }

    @Test("offline, a redemption over the per-transaction cap is refused with a reason")
    func floorLimit() async throws {
        try await EdgeFixture.withEdge { edge in
            let member = try await Self.enroll(edge)
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 2_000_000), metadata: edge.auth("mall-fashion"))
            let message = await expectStatus(.failedPrecondition, reason: "OFFLINE_TRANSACTION_CAP") {
                _ = try await edge.points.redeem(
                    Requests.redeem("P-1", member: member, bill: 100_000, points: 5_001),
                    metadata: edge.auth("mall-fashion"))
            }
            #expect(message.contains("5000"))
            _ = try await edge.points.redeem(
                Requests.redeem("P-2", member: member, bill: 100_000, points: 5_000),
                metadata: edge.auth("mall-fashion"))
            _ = try await edge.points.redeem(
                Requests.redeem("P-3", member: member, bill: 100_000, points: 5_000),
                metadata: edge.auth("mall-fashion"))
            await expectStatus(.failedPrecondition, reason: "OFFLINE_DAILY_CAP") {
                _ = try await edge.points.redeem(
                    Requests.redeem("P-4", member: member, bill: 100_000, points: 500),
                    metadata: edge.auth("mall-fashion"))
            }
            // The next local day the member may redeem again.
            edge.clock.advance(milliseconds: Timestamp.day)
            _ = try await edge.points.redeem(
                Requests.redeem("P-5", member: member, bill: 100_000, points: 500), metadata: edge.auth("mall-fashion"))
            // After the maximum offline duration nothing is redeemed.
            edge.clock.advance(milliseconds: Timestamp.day)
            await expectStatus(.failedPrecondition, reason: "OFFLINE_TOO_LONG") {
                _ = try await edge.points.redeem(
                    Requests.redeem("P-6", member: member, bill: 100_000, points: 500),
                    metadata: edge.auth("mall-fashion"))
            }
            var preview = Coalition_Edge_V1_PreviewRedeemRequest()
            preview.memberID = member
            preview.billAmountMinor = 100_000
            let answer = try await edge.points.previewRedeem(preview, metadata: edge.auth("mall-fashion"))
            #expect(!answer.allowed)
            #expect(answer.reason == .offlineTooLong)
        }
    }

    @Test("history lists the member's transactions newest first, in pages")
    func history() async throws {
        try await EdgeFixture.withEdge { edge in
            let member = try await Self.enroll(edge)
            for index in 1...5 {
                _ = try await edge.points.earn(
                    Requests.earn("R-\(index)", member: member, amount: Int64(index) * 1_000),
                    metadata: edge.auth("mall-fashion"))
            }
            var request = Coalition_Edge_V1_HistoryRequest()
            request.memberID = member
            request.pageSize = 4
            let first = try await edge.points.history(request, metadata: edge.auth("mall-fashion"))
            #expect(first.entries.map(\.points) == [50, 40, 30, 20])
            #expect(first.entries.allSatisfy { !$0.synced && $0.kind == .earn })
            request.pageToken = first.nextPageToken
            let second = try await edge.points.history(request, metadata: edge.auth("mall-fashion"))
            #expect(second.entries.map(\.points) == [10, 200])
            #expect(second.entries.last?.kind == .enroll)
            #expect(second.nextPageToken.isEmpty)
        }
    }

    @Test("the health service answers for the server and each service")
    func health() async throws {
        try await EdgeFixture.withEdge { edge in
            var request = Grpc_Health_V1_HealthCheckRequest()
            let server = try await edge.health.check(request)
            #expect(server.status == .serving)
            request.service = "coalition.edge.v1.Points"
            let points = try await edge.health.check(request)
            #expect(points.status == .serving)
            request.service = "nope"
            await expectStatus(.notFound) { _ = try await edge.health.check(request) }
        }
    }
}
