// Goal: online authorisation (DESIGN §4 step 1) checks the global balance less other holds, is
// idempotent per transaction, and a hold stops counting when released or expired.
import Core
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
}
