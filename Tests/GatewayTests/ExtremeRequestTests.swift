// Goal (issue #12, item 1, the five traps it names): integers from the wire that used to trap the
// gateway (a push sequence of 2^63, sequences [2^64−1, 1], sent_at_ms = −2^63, a conflicts page
// token of Int64.max, an adjustment of −2^63) are refused with INVALID_ARGUMENT naming the field,
// change nothing, and the gateway keeps serving. Before the fix each of these killed the process
// running the gateway (here the test process itself).
import Core
import Crypto
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
    @Test(
        "sync and ops requests with extreme integers are refused naming the field; the gateway keeps serving",
        arguments: LedgerKind.allCases)
    func namedTraps(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        try certificates.issue(.operator("alice"), name: "alice")
        let configuration = try Network.gatewayConfiguration(directory.url.path, certificates: certificates)
        try await Network.withGateway(configuration, clock: ManualWallClock(), ledger: ledger) { gateway in
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

/// Issue #12, item 1: every numeric field of every Sync and Ops request (and of the messages they
/// carry), generated from the `.proto` files, at its extreme values (0, −1, minimum, maximum,
/// UInt64.max for unsigned), sent through mutual TLS as a site and as an operator. Each is answered
/// with a status that is not UNKNOWN or INTERNAL, and the gateway keeps serving.
@Suite("Extreme values of every request field")
struct ExtremeFieldTests {
    static let protos = Repository.root.appendingPathComponent("protos")

    @Test("every numeric field of every Sync and Ops request, at its extremes", arguments: LedgerKind.allCases)
    func everyField(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        try certificates.issue(.operator("alice"), name: "alice")
        let configuration = try Network.gatewayConfiguration(directory.url.path, certificates: certificates)
        try await Network.withGateway(configuration, clock: ManualWallClock(), ledger: ledger) { gateway in
            // A member to name, and the bases the methods accept (so each case reaches past the
            // checks of the fields it does not change).
            let first = try RawSync.enrolments(merchant: "mall-fashion", count: 1)
            let applied = try await RawSync.withClient(
                port: gateway.port, certificates: certificates, certificate: "mall-01"
            ) { client in
                try await client.push(RawSync.push(first)).status
            }
            #expect(applied == .applied)
            let member = try await gateway.memberIDs()[0]
            let next = try RawSync.enrolments(
                merchant: "mall-fashion", count: 1, first: 2,
                previous: Data(SHA256.hash(data: first[0].payload)))[0]
            let version = ExtremeRequests.scalar(1, 1)
            let sync = try ExtremeRequests.cases(service: "Sync", protos: Self.protos) { method in
                switch method {
                case "Push":
                    ExtremeRequests.Base(
                        scalars: version + ExtremeRequests.scalar(2, 1)
                            + ExtremeRequests.scalar(5, UInt64(ManualClockTime.now.milliseconds)),
                        elements: [3: [(try? next.serializedBytes()) ?? []]])
                case "AuthorizeRedeem":
                    ExtremeRequests.Base(
                        scalars: version + ExtremeRequests.text(2, "auth-1") + ExtremeRequests.text(3, member)
                            + ExtremeRequests.text(4, "mall-fashion") + ExtremeRequests.scalar(5, 100)
                            + ExtremeRequests.text(6, next.transactionID))
                case "Recover": ExtremeRequests.Base(scalars: version + ExtremeRequests.scalar(2, 1))
                default: ExtremeRequests.Base(scalars: version)
                }
            }
            let ops = try ExtremeRequests.cases(service: "Ops", protos: Self.protos) { method in
                switch method {
                case "AdjustMember":
                    ExtremeRequests.Base(
                        scalars: ExtremeRequests.text(1, "op-1") + ExtremeRequests.text(2, member)
                            + ExtremeRequests.scalar(3, 10) + ExtremeRequests.text(4, "extremes"))
                case "GetMember", "MemberHistory": ExtremeRequests.Base(scalars: ExtremeRequests.text(1, member))
                default: ExtremeRequests.Base()
                }
            }
            #expect(sync.count > 20)
            #expect(ops.count > 20)
            #expect(sync.contains { $0.path == "transactions.sequence" && $0.value == "UInt64.max" })
            #expect(ops.contains { $0.method == "AdjustMember" && $0.path == "points" && $0.value == "Int64.min" })
            for (service, certificate, cases) in [
                ("coalition.sync.v1.Sync", "mall-01", sync), ("coalition.ops.v1.Ops", "alice", ops),
            ] {
                try await withGRPCClient(
                    transport: .http2NIOPosix(
                        target: .ipv4(address: "127.0.0.1", port: gateway.port),
                        transportSecurity: .mTLS(
                            certificateChain: [.file(path: certificates.path("\(certificate).pem"), format: .pem)],
                            privateKey: .file(path: certificates.path("\(certificate).key"), format: .pem)
                        ) { $0.trustRoots = .certificates([.file(path: certificates.path("ca.pem"), format: .pem)]) })
                ) { client in
                    await client.expectAnswered(cases, service: service)
                    // Still serving.
                    if service.hasSuffix("Ops") {
                        _ = try await client.raw(
                            try Coalition_Ops_V1_ListSitesRequest().serializedBytes(), service: service,
                            method: "ListSites")
                    }
                }
            }
            // The base push (a second enrolment) may be applied by a case that leaves it valid; nothing more.
            #expect(try await gateway.memberIDs().count <= 2)
        }
    }

    /// The numeric fields inside a push's payloads (the edge's `LocalTransaction` and the records it
    /// carries), which the generated request cases cannot reach (a payload is bytes to them): each
    /// at its extremes, in an otherwise valid enrolment, earn, redemption, parking payment and
    /// refund, pushed as the site's next transactions. Each is posted or rejected, never traps the
    /// gateway, and the ledger still balances.
    @Test(
        "every numeric field of every pushed payload, at its extremes, in each kind of transaction",
        arguments: LedgerKind.allCases)
    func payloadFields(ledger: LedgerKind) async throws {
        let cases = try ExtremeRequests.fieldCases(message: "LocalTransaction", protos: Self.protos)
        #expect(cases.contains { $0.path == "occurred_at_ms" && $0.value == "Int64.min" })
        #expect(cases.contains { $0.path == "earn.amount_minor" && $0.value == "Int64.max" })
        #expect(cases.contains { $0.path == "earn.breakdown.total_points" && $0.value == "Int64.min" })
        try await RawSync.withEnrolledSite(members: 2, ledger: ledger) { site in
            let member = site.members[0]
            let original = RawSync.earn(
                member: member, merchant: "mall-fashion", amount: 10_000, statedPoints: 100, tier: "member")
            var pushed = try await site.push([original])
            #expect(pushed.results.map(\.outcome) == [.posted])
            var next = site.next + 1
            var previous = Data(SHA256.hash(data: try original.serializedBytes() as Data))
            var generator = SystemRandomNumberGenerator()
            let now = ManualClockTime.now
            func bases() -> [Coalition_Sync_V1_LocalTransaction] {
                var enrolment = RawSync.header(merchant: "mall-fashion", prefix: "RAW-E", time: now)
                var record = Coalition_Sync_V1_Enrollment()
                record.memberID = MemberID(time: now, using: &generator).description
                record.signupPoints = 200
                enrolment.enrollment = record
                var parking = RawSync.header(merchant: "mall-fashion", prefix: "RAW-P", time: now)
                var stay = Coalition_Sync_V1_ParkingRecord()
                stay.memberID = member
                stay.points = 10
                stay.feeMinor = 100
                parking.parking = stay
                return [
                    enrolment,
                    RawSync.earn(
                        member: member, merchant: "mall-fashion", amount: 1_000, statedPoints: 10, tier: "member"),
                    RawSync.redemption(
                        transaction: TransactionID(time: now, using: &generator).description, member: member,
                        merchant: "mall-fashion", points: 10, authorization: .floorLimit),
                    parking,
                    RawSync.refund(
                        original: original.transactionID, member: member, merchant: "mall-fashion", amount: 100,
                        points: -1),
                ]
            }
            var payloads: [Coalition_Sync_V1_OutboxTransaction] = []
            for base in bases() {
                for field in cases {
                    // A fresh transaction and request id for each case, so none is a retry of another.
                    var local = base
                    local.transactionID = TransactionID(time: now, using: &generator).description
                    local.requestID = "X-\(local.transactionID.suffix(10))"
                    var transaction = Coalition_Sync_V1_OutboxTransaction()
                    transaction.sequence = next
                    transaction.transactionID = local.transactionID
                    transaction.previousHash = previous
                    transaction.payload = try local.serializedBytes() + Data(field.bytes)
                    transaction.occurredAtMs = local.occurredAtMs
                    previous = Data(SHA256.hash(data: transaction.payload))
                    next += 1
                    payloads.append(transaction)
                }
            }
            #expect(payloads.count > 200)
            var outcomes: [Coalition_Sync_V1_PostingOutcome: Int] = [:]
            for start in stride(from: 0, to: payloads.count, by: 100) {
                pushed = try await site.sync.push(
                    RawSync.push(Array(payloads[start..<min(start + 100, payloads.count)])))
                for result in pushed.results { outcomes[result.outcome, default: 0] += 1 }
            }
            #expect(outcomes.values.reduce(0, +) == payloads.count, "\(outcomes)")
            #expect(outcomes[.rejected, default: 0] > 0)
            // Still serving, and the member never below zero.
            #expect(try await site.gateway.balance(member) >= 0)
        }
    }
}
