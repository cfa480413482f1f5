import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import LocalNetwork
import Logging
import NodeSupport
import SwiftProtobuf
import Wire

/// The benchmark-only baseline service: `coalition.bench.v1.Baseline/Echo` takes any bytes and
/// answers `responseBytes` bytes, with no logic, on the same server and transport as the POS API.
struct BaselineService: RegistrableRPCService {
    static let descriptor = MethodDescriptor(fullyQualifiedService: "coalition.bench.v1.Baseline", method: "Echo")
    let responseBytes: Int

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let answer = [UInt8](repeating: 0x5A, count: responseBytes)
        router.registerHandler(forMethod: Self.descriptor, deserializer: RawBytes(), serializer: RawBytes()) {
            request, _ in
            for try await _ in request.messages {}
            return StreamingServerResponse(single: ServerResponse(message: answer))
        }
    }
}

/// Bytes as they are on the wire.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

extension GRPCClient {
    /// One baseline call carrying `body`.
    func echo(_ body: [UInt8]) async throws {
        try await unary(
            request: ClientRequest(message: body), descriptor: BaselineService.descriptor, serializer: RawBytes(),
            deserializer: RawBytes(),
            options: .defaults
        ) { response in _ = try response.message }
    }
}

/// A temporary folder with the example program and a CA, removed afterwards.
final class BenchFolder {
    let path: String
    let programFile: String
    /// The CA and certificates of the bench's network, in the folder.
    let network: LocalNetwork
    static let quiet = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
    static let phoneKey = [UInt8](repeating: 0x42, count: 32)

    init(program: String) throws {
        guard FileManager.default.fileExists(atPath: program) else {
            throw BenchFailure("cannot read \(program); run from the repository's folder or pass --program")
        }
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("coalition-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        programFile = path + "/program.yaml"
        try FileManager.default.copyItem(atPath: program, toPath: programFile)
        network = try LocalNetwork(directory: path, sites: [], caName: "Coalition bench CA")
    }

    /// Writes a certificate for `identity` as NAME.pem / NAME.key.
    func issue(_ identity: PeerIdentity, name: String) throws {
        try network.issue(identity, name: name)
    }

    /// Bytes of a file and its WAL, if any.
    func size(_ name: String) -> Int64 {
        [name, name + "-wal"].reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: path + "/" + file)[.size] as? Int64) ?? 0)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// An edge node serving its POS API over TLS on loopback with the baseline service beside it,
/// and TLS clients to it.
struct TLSBenchEdge {
    let node: EdgeNode
    /// One client per connection; terminal `k` calls through `clients[k % clients.count]`.
    let clients: [GRPCClient<HTTP2ClientTransport.Posix>]
    let tokens: [Metadata]
    var client: GRPCClient<HTTP2ClientTransport.Posix> { clients[0] }
    var points: Coalition_Edge_V1_Points.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    var parking: Coalition_Edge_V1_Parking.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    var vouchers: Coalition_Edge_V1_Vouchers.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }

    /// Runs `body` with the edge up and `connections` clients; `prepare` edits the configuration
    /// first.
    static func with<Result: Sendable>(
        folder: BenchFolder, site: String, merchant: String, terminals: Int, connections: Int = 1,
        baselineResponseBytes: Int, prepare: (inout EdgeConfiguration) throws -> Void = { _ in },
        _ body: (TLSBenchEdge) async throws -> Result
    ) async throws -> Result {
        try folder.issue(.gateway("127.0.0.1"), name: "pos")
        var configuration = try folder.network.edgeConfiguration(
            site: site, database: folder.path + "/\(site).sqlite", programFile: folder.programFile,
            phoneHashKey: BenchFolder.phoneKey, gatewayPort: nil)
        configuration.tls = ServerTLSFiles(
            certificatePath: folder.path + "/pos.pem", privateKeyPath: folder.path + "/pos.key")
        try prepare(&configuration)
        return try await LocalNetwork.withEdge(
            configuration, clock: SystemWallClock(), logger: BenchFolder.quiet, merchants: [merchant],
            terminalsPerMerchant: terminals, connections: connections, trustRoots: folder.network.path("ca.pem"),
            extraServices: [BaselineService(responseBytes: baselineResponseBytes)]
        ) { edge in
            try await body(
                TLSBenchEdge(
                    node: edge.node, clients: edge.clients,
                    tokens: (0..<terminals).map { edge.auth(merchant, terminal: $0) }))
        }
    }

    /// Enrols `count` members through the API (concurrently) and returns their ids.
    func enroll(_ count: Int, prefix: String) async throws -> [String] {
        try await withThrowingTaskGroup(of: [String].self) { group in
            let stride = (count + 7) / 8
            for part in 0..<8 {
                group.addTask {
                    var ids: [String] = []
                    for index in min(count, part * stride)..<min(count, (part + 1) * stride) {
                        var request = Coalition_Edge_V1_EnrollRequest()
                        request.requestID = "\(prefix)-E-\(index)"
                        request.phone = "+86139" + String(format: "%08d", index)
                        ids.append(try await points.enroll(request, metadata: tokens[0]).member.memberID)
                    }
                    return ids
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }
}

package enum EdgeBenches {
    /// Earn at the till: K terminals over TLS (on `connections` connections, each terminal on
    /// one), durable answers; baseline an empty RPC of the same sizes on the same server and
    /// connections.
    package static func edgeEarn(
        program: String, callers: Int, connections: Int, duration: Duration, rate: Double, members: Int
    ) async throws {
        let folder = try BenchFolder(program: program)
        let sample = {
            var sample = Coalition_Edge_V1_EarnRequest()
            sample.requestID = "B-00-000000"
            sample.memberID = "01M85VBSG0CMG8F9EFTPB66GXE"
            sample.merchantID = "mall-fashion"
            sample.amountMinor = 12_345
            return sample
        }()
        let requestBytes = try sample.serializedBytes() as [UInt8]
        try await TLSBenchEdge.with(
            folder: folder, site: "mall-01", merchant: "mall-fashion", terminals: callers,
            connections: min(max(1, connections), callers), baselineResponseBytes: 120
        ) { edge in
            let ids = try await edge.enroll(members, prefix: "earn")
            let clients = edge.clients
            let points = clients.map { Coalition_Edge_V1_Points.Client(wrapping: $0) }
            @Sendable func earn(_ caller: Int, _ index: Int, _ tag: String) async throws {
                var request = sample
                request.requestID = "\(tag)-\(caller)-\(index)"
                request.memberID = ids[(caller &* 7_919 &+ index) % ids.count]
                _ = try await points[caller % points.count].earn(
                    request, metadata: edge.tokens[caller % edge.tokens.count])
            }
            @Sendable func echo(_ caller: Int) async throws {
                try await clients[caller % clients.count].echo(requestBytes)
            }
            // Warm up both paths.
            _ = await Load.closedLoop(callers: callers, duration: .milliseconds(300)) { caller, _ in
                try await echo(caller)
            }
            _ = await Load.closedLoop(callers: callers, duration: .milliseconds(300)) { try await earn($0, $1, "W") }
            // Empty RPCs and earns in alternating one-second slices: this machine's speed drifts by
            // a third within a minute, which separate phases turned into noise in the ratio.
            let slices = max(1, Int(Load.seconds(duration)))
            let committer = edge.node.ledger.committer.statistics
            FileHandle.standardError.write(Data("edge-earn: earning\n".utf8))
            let (baseline, figure) = await Load.alternating(
                callers: callers, duration: duration, slices: slices,
                first: { caller, _, _ in try await echo(caller) },
                second: { try await earn($0, $1, "C\($2)") })
            let after = edge.node.ledger.committer.statistics
            let baselineLatency = await Load.openLoop(rate: rate, duration: duration) { try await echo($0 % callers) }
            let offered = await Load.openLoop(rate: rate, duration: duration) { try await earn($0 % callers, $0, "O") }
            let synchronous = try await edge.node.ledger.database.pool.write { db in
                try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
            }
            var report = BenchReport(
                name: "edge-earn",
                settings:
                    "\(callers) terminals on \(clients.count) TLS connection\(clients.count == 1 ? "" : "s") on loopback, \(Int(Load.seconds(duration))) s of each in alternating 1-s slices, \(members) members, synchronous=\(synchronous == 2 ? "FULL" : "\(synchronous)")"
            )
            report.line(
                "baseline",
                String(
                    format: "%.0f empty RPCs/s (%d-byte request, same server and TLS transport; %d errors)",
                    baseline.rate, requestBytes.count, baseline.latencies.errors))
            report.line(
                "figure",
                String(
                    format: "%.0f durable earns/s (%d errors; %.1f earns per group commit)", figure.rate,
                    figure.latencies.errors,
                    Double(after.jobs - committer.jobs) / Double(max(1, after.batches - committer.batches))))
            report.line(
                "writer",
                String(
                    format:
                        "busy %.0f%% of the earn phase (BEGIN to COMMIT), %.2f ms per group commit, %.1f commits per turn",
                    100 * Load.seconds(after.writing - committer.writing) / figure.seconds,
                    1000 * Load.seconds(after.writing - committer.writing)
                        / Double(max(1, after.batches - committer.batches)),
                    Double(after.batches - committer.batches) / Double(max(1, after.turns - committer.turns))))
            report.ratio(figure.rate, over: baseline.rate, minimum: 0.60)
            let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
            report.line(
                "cpu",
                String(
                    format:
                        "%.0f µs per empty RPC, %.0f µs per earn (client and server); machine busy %.0f%% and %.0f%%",
                    1_000_000 * baseline.processorSeconds / max(1, Double(baseline.latencies.count)),
                    1_000_000 * figure.processorSeconds / max(1, Double(figure.latencies.count)),
                    100 * baseline.processorSeconds / max(0.001, baseline.seconds * cores),
                    100 * figure.processorSeconds / max(0.001, figure.seconds * cores)))
            report.line("closed loop", "earn latency \(figure.latencies.summary)")
            report.line("offered", String(format: "%.0f/s: baseline %@", rate, baselineLatency.summary))
            report.line("", String(format: "%.0f/s: earn %@ (%d errors)", rate, offered.summary, offered.errors))
            if let error = figure.latencies.firstError ?? offered.firstError { report.line("first error", error) }
            report.ceiling(
                "p99 earn", offered.count == 0 ? .infinity : offered.milliseconds(99), maximum: 10, unit: "ms")
            report.line(
                "memory", String(format: "peak %.0f MiB (whole process: client, server, database)", Load.peakMemoryMiB))
            report.print()
        }
    }

    /// A whole barrier exit — quote, then pay (half of them partly in points) — with the gateway
    /// unreachable; baseline two empty RPCs of the same sizes. With `allowances`, every member
    /// entered with an allowance (as the pull feed leaves it) and every exit pays the whole fee in
    /// points from it, writing the payment and the return of what is left.
    package static func parkingExit(
        program: String, duration: Duration, rate: Double, members requested: Int, allowances: Bool = false
    ) async throws {
        // With allowances, each exit is a member's own (an allowance pays one stay).
        let members = allowances ? max(requested, Int(rate * Load.seconds(duration)) + 100) : requested
        let folder = try BenchFolder(program: program)
        try folder.issue(.site(SiteID("park-01")!), name: "park-01")
        try await TLSBenchEdge.with(
            folder: folder, site: "park-01", merchant: "park-operator", terminals: 4, baselineResponseBytes: 60,
            prepare: { configuration in
                // Linked to a gateway that does not answer (a closed port), after having met it once.
                configuration.gateway = GatewayLink(
                    host: "127.0.0.1", port: 9, caCertificatePath: folder.path + "/ca.pem",
                    certificatePath: folder.path + "/park-01.pem",
                    privateKeyPath: folder.path + "/park-01.key")
                let database = try EdgeDatabase.open(
                    path: configuration.databasePath, site: configuration.siteID, limits: configuration.limits,
                    now: SystemWallClock().now())
                try database.pool.write { db in
                    try db.execute(
                        sql: "UPDATE sync_state SET last_gateway_contact_ms = ? WHERE id = 1",
                        arguments: [SystemWallClock().now().milliseconds])
                }
                try database.pool.close()
            }
        ) { edge in
            let ids = try await edge.enroll(members, prefix: "park")
            let now = SystemWallClock().now().milliseconds
            if allowances {
                try await edge.node.ledger.database.pool.write { db in
                    try db.execute(
                        sql: """
                            UPDATE members SET allowance_id = 'AL-' || member_id, allowance_left = 6000,
                                allowance_stop_at_ms = ?, escrowed_points = 6000
                            """, arguments: [now + 86_400_000])
                }
            }
            @Sendable func exit(_ index: Int) async throws {
                // Warm-up exits (indices from 1,000,000) take the last members.
                let member =
                    allowances && index >= 1_000_000 ? ids[ids.count - 1 - index % 100] : ids[index % ids.count]
                var quote = Coalition_Edge_V1_ParkingQuoteRequest()
                quote.ticketID = "T\(index)"
                quote.memberID = member
                quote.entryAtMs = now - 150 * 60_000
                quote.exitAtMs = now
                let token = edge.tokens[index % edge.tokens.count]
                let quoted = try await edge.parking.quote(quote, metadata: token)
                var pay = Coalition_Edge_V1_ParkingPayRequest()
                pay.requestID = "X-\(index)"
                pay.ticketID = quote.ticketID
                pay.memberID = member
                pay.entryAtMs = quote.entryAtMs
                pay.exitAtMs = quote.exitAtMs
                pay.points =
                    allowances ? quoted.pointsForFullFee : index % 2 == 0 ? 0 : min(quoted.balancePoints, 20)
                let paid = try await edge.parking.pay(pay, metadata: token)
                guard paid.feeMinor == quoted.feeMinor else {
                    throw BenchFailure("the payment's fee differs from the quote")
                }
                if allowances, paid.authorization != .allowance || !paid.openBarrier {
                    throw BenchFailure("an exit was not paid from its allowance (\(paid.authorization))")
                }
            }
            var quoteSample = Coalition_Edge_V1_ParkingQuoteRequest()
            quoteSample.ticketID = "T1000"
            quoteSample.memberID = ids[0]
            quoteSample.entryAtMs = now
            quoteSample.exitAtMs = now
            let quoteBytes = try quoteSample.serializedBytes() as [UInt8]
            _ = await Load.openLoop(rate: rate, duration: .milliseconds(500)) { try await exit(1_000_000 + $0) }
            let baseline = await Load.openLoop(rate: rate, duration: duration) { _ in
                try await edge.client.echo(quoteBytes)
                try await edge.client.echo(quoteBytes)
            }
            let figure = await Load.openLoop(rate: rate, duration: duration) { try await exit($0) }
            var report = BenchReport(
                name: "parking-exit",
                settings:
                    "\(Int(rate)) exits/s offered for \(Int(Load.seconds(duration))) s, gateway unreachable, TLS on loopback"
                    + (allowances ? ", every exit paid in full from its allowance (and the rest given back)" : "")
            )
            report.line("baseline", "two empty RPCs per exit: \(baseline.summary)")
            report.line("figure", "quote + pay: \(figure.summary) (\(figure.count) exits, \(figure.errors) errors)")
            report.line(
                "ratio",
                String(
                    format: "p50 %.2f×, p99 %.2f× the baseline",
                    figure.milliseconds(50) / max(0.001, baseline.milliseconds(50)),
                    figure.milliseconds(99) / max(0.001, baseline.milliseconds(99))))
            if let error = figure.firstError { report.line("first error", error) }
            report.ceiling("p99 exit", figure.count == 0 ? .infinity : figure.milliseconds(99), maximum: 20, unit: "ms")
            report.line("memory", String(format: "peak %.0f MiB", Load.peakMemoryMiB))
            report.print()
        }
    }
}
