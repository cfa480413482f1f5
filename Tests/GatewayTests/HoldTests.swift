// Goal: online authorisation (DESIGN §4 step 1) checks the global balance less other holds, is
// idempotent per transaction, and a hold stops counting when released or expired.
import Core
import Crypto
import Foundation
import GRPCCore
import Gateway
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Holds")
struct HoldTests {
    @Test("authorise, retry, release and expire")
    func holds() async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock
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
    @Test("a redemption whose authorisation answer was lost is paid from the points its own hold kept")
    func lostAuthorisationAnswer() async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock
        ) { gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let enrolments = try RawSync.enrolments(merchant: "mall-fashion", count: 2)
                _ = try await sync.push(RawSync.push(enrolments))
                let members = try enrolments.map {
                    try Coalition_Sync_V1_LocalTransaction(serializedBytes: $0.payload).enrollment.memberID
                }
                var generator = SystemRandomNumberGenerator()
                var redemptions: [Coalition_Sync_V1_LocalTransaction] = []
                for (member, points) in zip(members, [Int64(150), 200]) {
                    let transaction = TransactionID(time: ManualClockTime.now, using: &generator).description
                    var request = Coalition_Sync_V1_AuthorizeRedeemRequest()
                    request.protocolVersion = 1
                    request.requestID = "A-\(transaction.suffix(6))"
                    request.memberID = member
                    request.merchantID = "mall-fashion"
                    request.points = points
                    request.transactionID = transaction
                    // Approved at the gateway; the answer never reaches the edge.
                    #expect(try await sync.authorizeRedeem(request).approved)
                    redemptions.append(
                        RawSync.redemption(
                            transaction: transaction, member: member, merchant: "mall-fashion", points: points,
                            authorization: .floorLimit))
                }
                let pushed = try await sync.push(
                    RawSync.push(
                        try RawSync.chain(
                            redemptions, first: 3,
                            previous: Data(SHA256.hash(data: enrolments[1].payload)))))
                #expect(pushed.results.map(\.outcome) == [.posted, .posted])
                #expect(pushed.results.map(\.postedPoints) == [-150, -200])
            }
            #expect(try await gateway.balance(try await gateway.memberIDs()[0]) == 50)
            #expect(try await gateway.account("offline_risk:mall-01") == 0)
            #expect(try await gateway.conflicts(kind: "offline_overdraw").isEmpty)
            #expect(try await gateway.activeHolds() == 0)
            try await gateway.checkInvariants()
        }
    }
}
