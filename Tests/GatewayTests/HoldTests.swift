// Goal: online authorisation (DESIGN §4 step 1) checks the global balance less other holds, is
// idempotent per transaction, and a hold stops counting when released or expired.
import Core
import Crypto
import EdgeNode
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Holds")
struct HoldTests {
    @Test("authorise, retry, release and expire", arguments: LedgerKind.allCases)
    func holds(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock,
            ledger: ledger
        ) { gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let batch = try RawSync.enrolments(merchant: "mall-fashion", count: 1)
                _ = try await sync.push(RawSync.push(batch))
                let local = try Coalition_Sync_V1_LocalTransaction(serializedBytes: batch[0].payload)
                let member = local.enrollment.memberID
                #expect(try await gateway.balance(member) == 200)
                var generator = SystemRandomNumberGenerator()
                func authorize(
                    _ points: Int64,
                    transaction: String = TransactionID(time: ManualClockTime.now, using: &generator).description
                ) async throws
                    -> Coalition_Sync_V1_AuthorizeRedeemResponse
                {
                    var request = Coalition_Sync_V1_AuthorizeRedeemRequest()
                    request.protocolVersion = 1
                    request.requestID = "A-\(transaction.suffix(6))"
                    request.memberID = member
                    request.merchantID = "mall-fashion"
                    request.points = points
                    request.transactionID = transaction
                    return try await sync.authorizeRedeem(request)
                }
                let first = try await authorize(150)
                #expect(first.approved)
                #expect(first.availablePoints == 50)
                let retryID = TransactionID(time: ManualClockTime.now, using: &generator).description
                let held = try await authorize(50, transaction: retryID)
                #expect(held.approved)
                #expect(try await authorize(50, transaction: retryID).holdID == held.holdID)  // the same hold again
                let refused = try await authorize(1)
                #expect(!refused.approved)
                #expect(refused.reason == .insufficientPoints)
                var release = Coalition_Sync_V1_ReleaseHoldRequest()
                release.protocolVersion = 1
                release.holdID = held.holdID
                #expect(try await sync.releaseHold(release).released)
                #expect(try await !sync.releaseHold(release).released)
                #expect(try await authorize(50).approved)
                // After the hold time every hold has lapsed and the points are available again.
                clock.advance(milliseconds: GatewayLimits().holdMilliseconds + 1)
                #expect(try await authorize(200).approved)
            }
        }
    }

    /// An online redemption whose `AuthorizeRedeem` answer missed the edge's deadline: the gateway
    /// placed the hold, the edge went on offline (floor limit) with the same transaction id. The
    /// hold kept those very points for this transaction, so the redemption is posted against them:
    /// the member pays, nothing reaches the site's `offline_risk`, and the hold is consumed.
    @Test(
        "a redemption whose authorisation answer was lost is paid from the points its own hold kept",
        arguments: LedgerKind.allCases)
    func lostAuthorisationAnswer(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(members: 2, ledger: ledger) { site in
            var generator = SystemRandomNumberGenerator()
            var redemptions: [Coalition_Sync_V1_LocalTransaction] = []
            for (member, points) in zip(site.members, [Int64(150), 200]) {
                let transaction = TransactionID(time: ManualClockTime.now, using: &generator).description
                // Approved at the gateway; the answer never reaches the edge.
                #expect(
                    try await Self.authorize(site.sync, member: member, points: points, transaction: transaction)
                        .approved)
                redemptions.append(
                    RawSync.redemption(
                        transaction: transaction, member: member, merchant: "mall-fashion", points: points,
                        authorization: .floorLimit))
            }
            let pushed = try await site.push(redemptions)
            #expect(pushed.results.map(\.outcome) == [.posted, .posted])
            #expect(pushed.results.map(\.postedPoints) == [-150, -200])
            #expect(try await site.gateway.balance(site.members[0]) == 50)
            #expect(try await site.gateway.account("offline_risk:mall-01") == 0)
            #expect(try await site.gateway.conflicts(kind: "offline_overdraw").isEmpty)
            #expect(try await site.gateway.activeHolds() == 0)
        }
    }

    /// Issue #12, item 6: no hold outlives its transaction. A redemption the gateway rejects
    /// releases the hold placed for it (before, the hold kept the member's points for hold_ms), and
    /// a hold is never placed for a transaction already pushed (it could never be consumed).
    @Test(
        "a rejected redemption releases its hold; no hold is placed for a transaction already pushed",
        arguments: LedgerKind.allCases)
    func noHoldOutlivesItsTransaction(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(members: 1, ledger: ledger) { site in
            var generator = SystemRandomNumberGenerator()
            let member = site.members[0]
            let transaction = TransactionID(time: ManualClockTime.now, using: &generator).description
            let hold = try await Self.authorize(site.sync, member: member, points: 150, transaction: transaction)
            #expect(hold.approved)
            #expect(try await site.gateway.activeHolds() == 1)
            // The same transaction pushed with more points than a transaction may carry (rejected),
            // and another redemption, of 10 points, without a hold (posted).
            let posted = TransactionID(time: ManualClockTime.now, using: &generator).description
            let pushed = try await site.push([
                RawSync.redemption(
                    transaction: transaction, member: member, merchant: "mall-fashion", points: 1_000_001,
                    authorization: .online),
                RawSync.redemption(
                    transaction: posted, member: member, merchant: "mall-fashion", points: 10,
                    authorization: .floorLimit),
            ])
            #expect(pushed.results.map(\.outcome) == [.rejected, .posted])
            #expect(try await site.gateway.activeHolds() == 0)
            #expect(try await site.gateway.balance(member) == 190)
            // A transaction already pushed gets no new hold.
            let late = await expectStatus(.failedPrecondition) {
                _ = try await Self.authorize(site.sync, member: member, points: 1, transaction: posted)
            }
            #expect(late.contains("already pushed"))
            #expect(try await site.gateway.activeHolds() == 0)
            // The member can spend all 190 at once.
            let next = TransactionID(time: ManualClockTime.now, using: &generator).description
            #expect(try await Self.authorize(site.sync, member: member, points: 190, transaction: next).approved)
        }
    }

    /// Issue #12, item 6: 200 redemptions at once at an edge whose gateway is up. Before, they
    /// all went by floor limit (the authorisations beyond the connection's stream limit failed the
    /// connection, and those behind them missed the deadline), and their holds stayed active after
    /// the redemptions posted. Now every one whose authorisation the gateway answers in time is
    /// online, and no hold is left once they are all posted.
    /// SQLite only for now: on PostgreSQL the 200 authorisations of one member queue on its row,
    /// each a commit, and under a full CI run 2 of 200 missed the 30 s deadline (issue #15's
    /// write-path work; racing authorisations on PostgreSQL are tested in `MultiGatewayTests`).
    @Test(
        "200 redemptions at once with the gateway up: decided online, and no hold left after they post",
        arguments: [LedgerKind.sqlite])
    func burstOfRedemptions(ledger: LedgerKind) async throws {
        // A deadline no honest gateway on loopback misses, so the count below is about queueing,
        // not about this machine's speed.
        try await Network.withLinkedEdge(edit: { $0.gateway?.authorizeDeadlineMilliseconds = 30_000 }, ledger: ledger) {
            gateway, mall, _ in
            let member = try await mall.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
            ).member.memberID
            for index in 0..<2 {
                _ = try await mall.points.earn(
                    Make.earn("R-\(index)", member: member, amount: 1_000_000), metadata: mall.auth)
            }
            // 20,200 points, or more when the edge pulled the member's upgrade between the two earns
            // (the second then earns the tier bonus too).
            try await Network.eventually("the gateway knows the member's points") {
                let synced = try await Network.synced(mall)
                let balance = try await gateway.balance(member)
                return synced && balance >= 20_200
            }
            let initial = try await gateway.balance(member)
            let authorizations = try await withThrowingTaskGroup(
                of: Coalition_Common_V1_RedeemAuthorization.self
            ) { group in
                for index in 0..<200 {
                    group.addTask {
                        try await mall.points.redeem(
                            Make.redeem("P-\(index)", member: member, bill: 10_000, points: 100),
                            metadata: mall.auth
                        ).authorization
                    }
                }
                return try await group.reduce(into: [Coalition_Common_V1_RedeemAuthorization]()) { $0.append($1) }
            }
            #expect(authorizations.count == 200)
            #expect(authorizations.filter { $0 == .online }.count == 200, "\(authorizations)")
            try await Network.eventually("every redemption is posted") { try await Network.synced(mall) }
            #expect(try await gateway.balance(member) == initial - 200 * 100)
            #expect(try await gateway.activeHolds() == 0)
            #expect(try await gateway.account("offline_risk:mall-01") == 0)
        }
    }

    /// Issue #13, item 9: expiry leaves the points an active hold keeps. Before, a redemption
    /// approved online just before the expiry job lost its points to expiry and was posted as an
    /// overdraw on its site.
    @Test("expiry leaves held points to the redemption that holds them", arguments: LedgerKind.allCases)
    func expiryLeavesHeldPoints(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)  // 2026-11-24: the sign-up lot expires at the end of November 2027
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock,
            ledger: ledger
        ) { gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let (member, previous) = try await RawSync.enrolOne(sync)
                // The morning after the lot's last day, before the expiry job: 150 points held.
                clock.set(Timestamp(milliseconds: 1_827_622_800_000))  // 2027-12-01 09:00 in Shanghai
                var generator = SystemRandomNumberGenerator()
                let transaction = TransactionID(time: clock.now(), using: &generator).description
                #expect(try await Self.authorize(sync, member: member, points: 150, transaction: transaction).approved)
                let run = try await gateway.ledger.runExpiry(asOfEndOf: CivilDate(parsing: "2027-11-30")!)
                #expect(run.points.value == 50)
                #expect(try await gateway.balance(member) == 150)
                // The redemption arrives: paid by the member in full, nothing on the site.
                let redemption = RawSync.redemption(
                    transaction: transaction, member: member, merchant: "mall-fashion", points: 150,
                    authorization: .online)
                let pushed = try await sync.push(
                    RawSync.push(
                        try RawSync.chain(
                            [redemption], first: 2, previous: previous)))
                #expect(pushed.results.map(\.outcome) == [.posted])
                #expect(try await gateway.balance(member) == 0)
                #expect(try await gateway.account("offline_risk:mall-01") == 0)
                #expect(try await gateway.activeHolds() == 0)
            }
            try await gateway.checkInvariants()
        }
    }

    static func authorize(
        _ sync: Coalition_Sync_V1_Sync.Client<HTTP2ClientTransport.Posix>, member: String, points: Int64,
        transaction: String, unacknowledged: Int64 = 0, acknowledgedSequence: UInt64 = 0
    ) async throws -> Coalition_Sync_V1_AuthorizeRedeemResponse {
        var request = Coalition_Sync_V1_AuthorizeRedeemRequest()
        request.protocolVersion = 1
        request.requestID = "A-\(transaction.suffix(6))"
        request.memberID = member
        request.merchantID = "mall-fashion"
        request.points = points
        request.transactionID = transaction
        request.unacknowledgedPoints = unacknowledged
        request.acknowledgedSequence = acknowledgedSequence
        return try await sync.authorizeRedeem(request)
    }

    /// A hold may rely on the site's earn not pushed yet; only the part it took from the member's
    /// balance keeps the site's earlier redemption from the points. Found by simulation seed 113:
    /// an earlier online redemption of the same site was booked wholly to offline_risk.
    @Test(
        "a hold that relies on the site's unpushed earn does not take the points of the site's earlier redemption",
        arguments: LedgerKind.allCases)
    func holdOnUnpushedEarn(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let member = site.members[0]
            var generator = SystemRandomNumberGenerator()
            let first = TransactionID(time: ManualClockTime.now, using: &generator).description
            let second = TransactionID(time: ManualClockTime.now, using: &generator).description
            // 150 of the member's 200, then 300 more relying on the site's 400-point earn.
            #expect(try await Self.authorize(site.sync, member: member, points: 150, transaction: first).approved)
            #expect(
                try await Self.authorize(
                    site.sync, member: member, points: 300, transaction: second, unacknowledged: 400,
                    acknowledgedSequence: 1
                ).approved)
            let pushed = try await site.push([
                RawSync.redemption(
                    transaction: first, member: member, merchant: "mall-fashion", points: 150, authorization: .online),
                RawSync.earn(
                    member: member, merchant: "mall-fashion", amount: 40_000, statedPoints: 400, tier: "member"),
                RawSync.redemption(
                    transaction: second, member: member, merchant: "mall-fashion", points: 300, authorization: .online),
            ])
            #expect(pushed.results.map(\.outcome) == [.posted, .posted, .posted])
            #expect(try await site.gateway.balance(member) == 200 - 150 + 400 - 300)
            #expect(try await site.gateway.account("offline_risk:mall-01") == 0)
            #expect(try await site.gateway.conflicts(kind: "offline_overdraw").isEmpty)
        }
    }

    /// The site's unacknowledged points are counted once: what the gateway has posted of them (an
    /// acknowledgement lost on its way back) is already in the balance.
    @Test(
        "points the gateway posted but the edge still counts as unacknowledged are not counted twice",
        arguments: LedgerKind.allCases)
    func lostAcknowledgement(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let member = site.members[0]
            // Posted; the edge never hears (its acknowledged sequence stays 1).
            _ = try await site.push([
                RawSync.earn(
                    member: member, merchant: "mall-fashion", amount: 60_000, statedPoints: 600, tier: "member")
            ])
            var generator = SystemRandomNumberGenerator()
            let refused = try await Self.authorize(
                site.sync, member: member, points: 1_300,
                transaction: TransactionID(time: ManualClockTime.now, using: &generator).description,
                unacknowledged: 600, acknowledgedSequence: 1)
            #expect(!refused.approved)
            #expect(refused.availablePoints == 800)
            #expect(
                try await Self.authorize(
                    site.sync, member: member, points: 800,
                    transaction: TransactionID(time: ManualClockTime.now, using: &generator).description,
                    unacknowledged: 600, acknowledgedSequence: 1
                ).approved)
        }
    }
}
