// Goal (DESIGN §5, §8, §11): the gateway's sync endpoint under hostile input over real mutual
// TLS — an old batch replayed days later, oversized batches and messages, truncated and
// bit-flipped bodies, an expired certificate. Each gets its documented status (never UNKNOWN or
// INTERNAL), the ledger is unchanged, and the gateway keeps serving the next honest push.
import Core
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Hostile sync input")
struct HostileSyncTests {
    static func withGateway(
        limits adjust: (inout GatewayLimits) -> Void = { _ in }, ledger: LedgerKind = .sqlite,
        _ body: (GatewayHarness, TestCertificates, ManualWallClock) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        let clock = ManualWallClock()
        var configuration = try Network.gatewayConfiguration(directory.url.path, certificates: certificates)
        adjust(&configuration.limits)
        try await Network.withGateway(configuration, clock: clock, ledger: ledger) { gateway in
            try await body(gateway, certificates, clock)
        }
    }

    /// Ledger rows (not the conflict log, which records refused batches on purpose).
    static func ledgerRows(_ gateway: GatewayHarness) async throws -> [Int] {
        var counts: [Int] = []
        for table in ["transactions", "postings", "members", "lots"] {
            counts.append(Int(try await gateway.sql.int("SELECT COUNT(*) FROM \(table)") ?? -1))
        }
        return counts
    }

    static func siteHead(_ gateway: GatewayHarness) async throws -> (Int64, Data) {
        let row = try #require(
            try await gateway.sql.rows(
                "SELECT high_water_mark, \(gateway.ledger is PostgresLedgerStore ? "encode(last_hash, 'base64')" : "last_hash") FROM sites WHERE site_id = 'mall-01'"
            ).first)
        return (Int64(row[0] ?? "") ?? -1, Data(base64Encoded: row[1] ?? "") ?? Data())
    }

    @Test(
        "an old batch replayed three days later is already applied, changes nothing, and the chain goes on",
        arguments: LedgerKind.allCases)
    func oldBatchReplayed(ledger: LedgerKind) async throws {
        try await Self.withGateway(ledger: ledger) { gateway, certificates, clock in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let first = try RawSync.enrolments(merchant: "mall-fashion", count: 3)
                let second = try RawSync.enrolments(
                    merchant: "mall-fashion", count: 3, first: 4, previous: first[2].payload.sha256)
                // Each push carries the site's offline exposure at the time (#14 item 12).
                func push(_ batch: [Coalition_Sync_V1_OutboxTransaction], exposure: Int64)
                    -> Coalition_Sync_V1_PushRequest
                {
                    var request = RawSync.push(batch)
                    request.unsyncedExposurePoints = exposure
                    return request
                }
                func exposure() async throws -> Int64? {
                    try await gateway.sql.int("SELECT unsynced_exposure_points FROM sites WHERE site_id = 'mall-01'")
                }
                #expect(try await sync.push(push(first, exposure: 500)).status == .applied)
                #expect(try await sync.push(push(second, exposure: 700)).status == .applied)
                #expect(try await exposure() == 700)
                let head = try await Self.siteHead(gateway)
                let rows = try await Self.ledgerRows(gateway)
                clock.advance(milliseconds: 3 * 86_400_000)
                let replay = try await sync.push(push(first, exposure: 500))
                #expect(replay.status == .alreadyApplied)
                // The replay's old exposure figure does not overwrite the current one.
                #expect(try await exposure() == 700)
                #expect(replay.highWaterMark == 6)
                #expect(replay.results.map(\.outcome) == [.posted, .posted, .posted])
                #expect(try await Self.ledgerRows(gateway) == rows)
                // The chain head is still the newest transaction: the next push links to it.
                let after = try await Self.siteHead(gateway)
                #expect(after.0 == head.0 && after.1 == head.1)
                let third = try RawSync.enrolments(
                    merchant: "mall-fashion", count: 1, first: 7, previous: second[2].payload.sha256)
                #expect(try await sync.push(RawSync.push(third)).status == .applied)
            }
            try await gateway.checkInvariants()
        }
    }

    @Test(
        "a batch over the count or byte limit, and a message over the transport limit, are refused; the next push is served",
        arguments: LedgerKind.allCases)
    func oversized(ledger: LedgerKind) async throws {
        try await Self.withGateway(
            limits: {
                $0.pushTransactionsMax = 10
                $0.pushBytesMax = 16 * 1024
                $0.requestBytesMax = 64 * 1024
            }, ledger: ledger
        ) { gateway, certificates, _ in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let rows = try await Self.ledgerRows(gateway)
                let eleven = try RawSync.enrolments(merchant: "mall-fashion", count: 11)
                let message = await expectStatus(.resourceExhausted) { _ = try await sync.push(RawSync.push(eleven)) }
                #expect(message.contains("at most 10"))
                var heavy = try RawSync.enrolments(merchant: "mall-fashion", count: 2)
                heavy[0].payload.append(Data(repeating: 0, count: 12 * 1024))
                heavy[1].payload.append(Data(repeating: 0, count: 12 * 1024))
                let bytes = await expectStatus(.resourceExhausted) { _ = try await sync.push(RawSync.push(heavy)) }
                #expect(bytes.contains("payload bytes"))
                #expect(try await Self.ledgerRows(gateway) == rows)
            }
            // Beyond the transport's limit the stream is reset before the service sees it.
            do {
                try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                    sync in
                    var huge = try RawSync.enrolments(merchant: "mall-fashion", count: 1)
                    huge[0].payload.append(Data(repeating: 7, count: 200 * 1024))
                    _ = try await sync.push(RawSync.push(huge))
                }
                Issue.record("a 200 KiB message was accepted past a 64 KiB limit")
            } catch {
                let code = status(of: error).code
                #expect(code == .resourceExhausted || code == .unavailable || code == .internalError, "\(error)")
            }
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let answer = try await sync.push(
                    RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 10)))
                #expect(answer.status == .applied)
            }
            try await gateway.checkInvariants()
        }
    }

    @Test(
        "truncated and bit-flipped push bodies: never UNKNOWN or INTERNAL, the ledger stays balanced, the gateway keeps serving",
        arguments: LedgerKind.allCases)
    func corruptedBodies(ledger: LedgerKind) async throws {
        try await Self.withGateway(ledger: ledger) { gateway, certificates, _ in
            let batch = try RawSync.enrolments(merchant: "mall-fashion", count: 2)
            let body: [UInt8] = try RawSync.push(batch).serializedBytes()
            let security = HTTP2ClientTransport.Posix.TransportSecurity.mTLS(
                certificateChain: [.file(path: certificates.path("mall-01.pem"), format: .pem)],
                privateKey: .file(path: certificates.path("mall-01.key"), format: .pem)
            ) { $0.trustRoots = .certificates([.file(path: certificates.path("ca.pem"), format: .pem)]) }
            var statuses: [RPCError.Code: Int] = [:]
            try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: gateway.port), transportSecurity: security)
            ) { client in
                for (name, corrupted) in corruptions(of: body, samples: 48) {
                    let before = try await Self.ledgerRows(gateway)
                    do {
                        let answer = try Coalition_Sync_V1_PushResponse(
                            serializedBytes: try await client.raw(
                                corrupted, service: "coalition.sync.v1.Sync", method: "Push"))
                        // A flip in sent_at_ms or the exposure figure still makes a valid push.
                        #expect(
                            answer.status == .applied || answer.status == .alreadyApplied
                                || answer.status == .resendFrom, "\(name)")
                    } catch let error as RPCError {
                        statuses[error.code, default: 0] += 1
                        #expect(
                            error.code != .unknown && error.code != .internalError,
                            "\(name): \(error.code) \(error.message)")
                        #expect(try await Self.ledgerRows(gateway) == before, "\(name) was refused but wrote")
                    }
                }
            }
            #expect(statuses[.invalidArgument, default: 0] > 0)
            try await gateway.checkInvariants()
            // Still serving: an honest batch continuing whatever chain the gateway accepted is applied.
            let (mark, head) = try await Self.siteHead(gateway)
            let next = try RawSync.enrolments(
                merchant: "mall-fashion", count: 2, first: UInt64(mark + 1), previous: head)
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let answer = try await sync.push(RawSync.push(next))
                #expect(answer.status == .applied)
                #expect(answer.highWaterMark == UInt64(mark + 2))
            }
            try await gateway.checkInvariants()
        }
    }

    @Test("an expired site certificate fails the handshake; nothing is written", arguments: LedgerKind.allCases)
    func expiredCertificate(ledger: LedgerKind) async throws {
        try await Self.withGateway(ledger: ledger) { gateway, certificates, _ in
            try certificates.issue(
                .site(SiteID("mall-01")!), name: "mall-expired", now: Date().addingTimeInterval(-40 * 86_400), days: 30)
            let rows = try await Self.ledgerRows(gateway)
            await expectStatus(.unavailable) {
                try await RawSync.withClient(
                    port: gateway.port, certificates: certificates, certificate: "mall-expired"
                ) { sync in
                    _ = try await sync.push(RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 1)))
                }
            }
            #expect(try await Self.ledgerRows(gateway) == rows)
            // The current certificate of the same site still works.
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let answer = try await sync.push(
                    RawSync.push(try RawSync.enrolments(merchant: "mall-fashion", count: 1)))
                #expect(answer.status == .applied)
            }
        }
    }
}

/// Every number a site states in a pushed transaction is the site's word: extreme values in any of
/// them are answered (rejected or posted with the gateway's figures), never trap the gateway, and
/// leave the ledger balanced.
@Suite("Extreme numbers in pushed transactions")
struct ExtremeNumberTests {
    @Test(
        "earns, redemptions and refunds stating extreme integers are answered and the ledger stays balanced",
        arguments: LedgerKind.allCases)
    func extremes(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite(ledger: ledger) { site in
            let member = site.members[0]
            var locals: [Coalition_Sync_V1_LocalTransaction] = []
            let extremes: [Int64] = [Int64.min, Int64.min + 1, -1, 0, Int64.max - 1, Int64.max]
            for value in extremes {
                var earn = RawSync.earn(
                    member: member, merchant: "mall-fashion", amount: value, statedPoints: value, tier: "gold",
                    birthMonth: Int32(truncatingIfNeeded: value), replicaPosition: UInt64(bitPattern: value),
                    promotions: ["double-saturday": value])
                earn.earn.streakDays = Int32(truncatingIfNeeded: value)
                earn.earn.streakLastDay = "2026-11-23"
                earn.earn.lastEarnAtMsByFormat = ["hotel": value, "mall": value]
                earn.occurredAtMs = value
                locals.append(earn)
                var generator = SystemRandomNumberGenerator()
                var redemption = RawSync.redemption(
                    transaction: TransactionID(time: ManualClockTime.now, using: &generator).description,
                    member: member, merchant: "mall-fashion", points: value, authorization: .online)
                redemption.redeem.billAmountMinor = value
                redemption.redeem.valueMinor = value
                locals.append(redemption)
            }
            let original = RawSync.earn(
                member: member, merchant: "mall-fashion", amount: 10_000, statedPoints: 100, tier: "member")
            locals.append(original)
            for value in extremes {
                locals.append(
                    RawSync.refund(
                        original: original.transactionID, member: member, merchant: "mall-fashion", amount: value,
                        points: value))
            }
            let pushed = try await site.push(locals)
            #expect(pushed.status == .applied)
            #expect(pushed.results.count == locals.count)
            // The gateway still serves.
            var pull = Coalition_Sync_V1_PullRequest()
            pull.protocolVersion = 1
            _ = try await site.sync.pull(pull)
            #expect(try await site.gateway.balance(member) >= 0)
        }
    }
}
