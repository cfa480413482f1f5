// Goal (issue #12, item 1, the five traps it names): integers from the wire that used to trap the
// gateway (a push sequence of 2^63, sequences [2^64−1, 1], sent_at_ms = −2^63, a conflicts page
// token of Int64.max, an adjustment of −2^63) are refused with INVALID_ARGUMENT naming the field,
// change nothing, and the gateway keeps serving. Before the fix each of these killed the process
// running the gateway (here the test process itself).
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Extreme integers in requests")
struct ExtremeRequestTests {
    @Test("sync and ops requests with extreme integers are refused naming the field; the gateway keeps serving")
    func namedTraps() async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        try certificates.issue(.operator("alice"), name: "alice")
        let configuration = try Network.gatewayConfiguration(directory.url.path, certificates: certificates)
        try await Network.withGateway(configuration, clock: ManualWallClock()) { gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let enrolments = try RawSync.enrolments(merchant: "mall-fashion", count: 2)
                // A sequence of 2^63.
                var huge = enrolments[0]
                huge.sequence = 1 << 63
                let first = await expectStatus(.invalidArgument) { _ = try await sync.push(RawSync.push([huge])) }
                #expect(first.contains("transactions[0].sequence"))
                // Sequences [2^64 − 1, 1].
                var wrap = enrolments
                wrap[0].sequence = UInt64.max
                wrap[1].sequence = 1
                let second = await expectStatus(.invalidArgument) { _ = try await sync.push(RawSync.push(wrap)) }
                #expect(second.contains("transactions[0].sequence"))
                // The next sequence, sent at −2^63.
                var early = RawSync.push([enrolments[0]])
                early.sentAtMs = Int64.min
                let third = await expectStatus(.invalidArgument) { _ = try await sync.push(early) }
                #expect(third.contains("sent_at_ms"))
                // Nothing was written; the same batch, honest, is applied.
                #expect(try await gateway.memberIDs().isEmpty)
                #expect(try await sync.push(RawSync.push(enrolments)).status == .applied)
            }
            let member = try await gateway.memberIDs()[0]
            try await OpsServiceTests.withOps(port: gateway.port, certificates: certificates, certificate: "alice") {
                ops in
                var list = Coalition_Ops_V1_ListConflictsRequest()
                list.pageToken = String(Int64.max)
                let listed = await expectStatus(.invalidArgument) { _ = try await ops.listConflicts(list) }
                #expect(listed.contains("page_token"))
                var adjust = Coalition_Ops_V1_AdjustMemberRequest()
                adjust.requestID = "op-extreme-1"
                adjust.memberID = member
                adjust.points = Int64.min
                adjust.reason = "extreme"
                let adjusted = await expectStatus(.invalidArgument) { _ = try await ops.adjustMember(adjust) }
                #expect(adjusted.contains("points"))
                // Still serving, and the member's points are untouched.
                let sites = try await ops.listSites(Coalition_Ops_V1_ListSitesRequest()).sites
                #expect(!sites.isEmpty)
            }
            #expect(try await gateway.balance(member) == 200)
        }
    }
}
