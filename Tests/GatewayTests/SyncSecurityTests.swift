// Goal: no one speaks for a site they are not (DESIGN §5, §8): a site certificate pushing another
// site's merchant, a certificate from another CA, no certificate, a revoked site or certificate,
// an unsupported protocol version — each refused with its status, nothing written, and a protocol
// violation (a rewritten chain) flags the site.
import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Sync security")
struct SyncSecurityTests {
    static func withGateway(
        ledger: LedgerKind = .sqlite, _ body: (GatewayHarness, TestCertificates) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(
            directory: directory.url.path, sites: ["mall-01", "hotel-01", "nowhere-01"])
        let clock = ManualWallClock()
        try await Network.withGateway(
            try Network.gatewayConfiguration(directory.url.path, certificates: certificates), clock: clock,
            ledger: ledger
        ) { gateway in
            try await body(gateway, certificates)
        }
    }

    static func rows(_ gateway: GatewayHarness) async throws -> [Int] {
        var counts: [Int] = []
        for table in ["transactions", "postings", "members"] {
            counts.append(Int(try await gateway.sql.int("SELECT COUNT(*) FROM \(table)") ?? -1))
        }
        return counts
    }

    @Test(
        "a site's certificate pushes for its own merchants and is refused for another site's",
        arguments: LedgerKind.allCases)
    func otherSite(ledger: LedgerKind) async throws {
        try await Self.withGateway(ledger: ledger) { gateway, certificates in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let own = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 2)))
                #expect(own.status == .applied)
                #expect(own.results.map(\.outcome) == [.posted, .posted])
                let before = try await Self.rows(gateway)
                let foreign = try RawSync.enrolments(
                    merchant: "hotel-rooms", count: 1, first: 3, previous: Data(count: 32))
                await expectStatus(.permissionDenied) { _ = try await sync.push(RawSync.push(foreign)) }
                #expect(try await Self.rows(gateway) == before)
            }
        }
    }

    @Test(
        "a certificate from another CA, or none, fails the handshake; nothing is written",
        arguments: LedgerKind.allCases)
    func strangers(ledger: LedgerKind) async throws {
        try await Self.withGateway(ledger: ledger) { gateway, certificates in
            let other = try CertificateAuthority.create(name: "someone else")
            try certificates.issue(.site(SiteID("mall-01")!), name: "forged", by: other)
            let before = try await Self.rows(gateway)
            await expectStatus(.unavailable) {
                try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "forged") {
                    sync in
                    _ = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 1)))
                }
            }
            await expectStatus(.unavailable) {
                try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: nil) { sync in
                    _ = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 1)))
                }
            }
            #expect(try await Self.rows(gateway) == before)
        }
    }

    @Test(
        "a revoked site, a revoked certificate and a site not in the program are refused",
        arguments: LedgerKind.allCases)
    func revoked(ledger: LedgerKind) async throws {
        try await Self.withGateway(ledger: ledger) { gateway, certificates in
            try await gateway.ledger.setSite(SiteID("hotel-01")!, revoked: true, by: "", reason: "")
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "hotel-01") {
                sync in
                await expectStatus(.permissionDenied, reason: "SITE_REVOKED") {
                    _ = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "hotel-rooms", count: 1)))
                }
            }
            let mall = try certificates.issue(.site(SiteID("mall-01")!), name: "mall-old")
            _ = try await gateway.ledger.revokeCertificate(serial: mall.serial, reason: "laptop stolen", by: "")
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-old") {
                sync in
                await expectStatus(.permissionDenied, reason: "CERTIFICATE_REVOKED") {
                    _ = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 1)))
                }
            }
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "nowhere-01") {
                sync in
                await expectStatus(.permissionDenied) {
                    _ = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 1)))
                }
            }
            #expect(try await Self.rows(gateway) == [0, 0, 0])
        }
    }

    /// Issue #14, item 14: every call refused for who the caller is leaves a trace: a warning in
    /// the log, a count, and a row `coalition admin audit` lists (newest first, paged).
    @Test(
        "each kind of refused call is counted and listed by the audit, with the peer and the reason",
        arguments: LedgerKind.allCases)
    func audit(ledger: LedgerKind) async throws {
        try await Self.withGateway(ledger: ledger) { gateway, certificates in
            try certificates.issue(.operator("alice"), name: "alice")
            // A site naming another site's merchant.
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let foreign = try RawSync.enrolments(merchant: "hotel-rooms", count: 1)
                await expectStatus(.permissionDenied) { _ = try await sync.push(RawSync.push(foreign)) }
            }
            // A certificate of another CA: refused in the handshake.
            let other = try CertificateAuthority.create(name: "someone else")
            try certificates.issue(.site(SiteID("mall-01")!), name: "forged", by: other)
            await expectStatus(.unavailable) {
                try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "forged") {
                    sync in
                    _ = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 1)))
                }
            }
            // A revoked certificate, and a revoked site.
            let old = try certificates.issue(.site(SiteID("mall-01")!), name: "mall-old")
            _ = try await gateway.ledger.revokeCertificate(serial: old.serial, reason: "laptop stolen", by: "")
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-old") {
                sync in
                await expectStatus(.permissionDenied, reason: "CERTIFICATE_REVOKED") {
                    _ = try await sync.pull(Coalition_Sync_V1_PullRequest())
                }
            }
            try await gateway.ledger.setSite(SiteID("hotel-01")!, revoked: true, by: "", reason: "")
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "hotel-01") {
                sync in
                await expectStatus(.permissionDenied, reason: "SITE_REVOKED") {
                    _ = try await sync.pull(Coalition_Sync_V1_PullRequest())
                }
            }
            // A site certificate calling Ops.
            _ = try await OpsServiceTests.withOps(
                port: gateway.port, certificates: certificates, certificate: "mall-01"
            ) {
                ops in
                await expectStatus(.permissionDenied, reason: "NOT_AN_OPERATOR") {
                    _ = try await ops.listSites(Coalition_Ops_V1_ListSitesRequest())
                }
            }
            _ = try await OpsServiceTests.withOps(port: gateway.port, certificates: certificates, certificate: "alice")
            {
                ops in
                var request = Coalition_Ops_V1_ListRefusedCallsRequest()
                // The handshake's record is written on its own: wait for it.
                try await Network.eventually("the handshake refusal is kept") {
                    try await ops.listRefusedCalls(request).calls.contains { $0.kind == "TLS_HANDSHAKE" }
                }
                let listed = try await ops.listRefusedCalls(request)
                #expect(
                    Set(listed.calls.map(\.kind)) == [
                        "WRONG_SITE", "TLS_HANDSHAKE", "CERTIFICATE_REVOKED", "SITE_REVOKED", "NOT_AN_OPERATOR",
                    ])
                #expect(listed.calls.map(\.id) == listed.calls.map(\.id).sorted(by: >))
                let wrongSite = try #require(listed.calls.first { $0.kind == "WRONG_SITE" })
                #expect(wrongSite.service == "sync" && wrongSite.method == "coalition.sync.v1.Sync/Push")
                #expect(wrongSite.peer.contains("coalition://site/mall-01") && wrongSite.reason.contains("hotel-rooms"))
                #expect(wrongSite.address.contains("127.0.0.1"))
                let revoked = try #require(listed.calls.first { $0.kind == "CERTIFICATE_REVOKED" })
                #expect(revoked.peer.contains(old.serial))
                let opsCall = try #require(listed.calls.first { $0.kind == "NOT_AN_OPERATOR" })
                #expect(opsCall.service == "ops" && opsCall.method == "coalition.ops.v1.Ops/ListSites")
                #expect(listed.calls.first { $0.kind == "TLS_HANDSHAKE" }?.peer == "unverified")
                #expect(
                    Dictionary(uniqueKeysWithValues: listed.countsSinceStart.map { ($0.kind, $0.count) }) == [
                        "WRONG_SITE": 1, "TLS_HANDSHAKE": 1, "CERTIFICATE_REVOKED": 1, "SITE_REVOKED": 1,
                        "NOT_AN_OPERATOR": 1,
                    ])
                // Paged: two at a time, back to the first.
                request.pageSize = 2
                var seen: [Int64] = []
                while true {
                    let page = try await ops.listRefusedCalls(request)
                    seen += page.calls.map(\.id)
                    guard page.nextBefore > 0 else { break }
                    request.before = page.nextBefore
                }
                #expect(seen == listed.calls.map(\.id))
                request.pageSize = 5_000
                await expectStatus(.invalidArgument) { _ = try await ops.listRefusedCalls(request) }
            }
            #expect(try await Self.rows(gateway) == [0, 0, 0])
        }
    }

    @Test("contiguity, replays, a rewritten chain, and the protocol version", arguments: LedgerKind.allCases)
    func protocolRules(ledger: LedgerKind) async throws {
        try await Self.withGateway(ledger: ledger) { gateway, certificates in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let batch = try RawSync.enrolments(merchant: "mall-fashion", count: 3)
                // A batch that starts past the high-water mark is told where to resend from.
                let gap = try await sync.push(RawSync.push(Array(batch.dropFirst())))
                #expect(gap.status == .resendFrom)
                #expect(gap.resendFromSequence == 1)
                #expect(try await sync.push(RawSync.push(batch)).status == .applied)
                // The same batch again (an answer that was lost) is already applied, byte for byte.
                let replay = try await sync.push(RawSync.push(batch))
                #expect(replay.status == .alreadyApplied)
                #expect(replay.results.count == 3)
                let before = try await Self.rows(gateway)
                // The same sequence with other content is a protocol violation: nothing applied, site flagged.
                var forged = try RawSync.enrolments(
                    merchant: "mall-fashion", count: 1, first: 3, previous: batch[1].payload.sha256)
                forged[0].sequence = 3
                await expectStatus(.failedPrecondition, reason: "PROTOCOL_VIOLATION") {
                    _ = try await sync.push(RawSync.push(forged))
                }
                // A broken chain after the high-water mark too.
                let broken = try RawSync.enrolments(
                    merchant: "mall-fashion", count: 1, first: 4, previous: Data(count: 32))
                await expectStatus(.failedPrecondition, reason: "PROTOCOL_VIOLATION") {
                    _ = try await sync.push(RawSync.push(broken))
                }
                #expect(try await Self.rows(gateway) == before)
                #expect(try await gateway.flags("mall-01").contains("protocol_violation"))
                var old = RawSync.push(batch)
                old.protocolVersion = 2
                await expectStatus(.failedPrecondition, reason: "UNSUPPORTED_PROTOCOL") { _ = try await sync.push(old) }
            }
        }
    }
}

extension Data {
    var sha256: Data { Data(SHA256.hash(data: self)) }
}
