import Core
import EdgeNode
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import LocalNetwork
import NodeSupport
import SwiftProtobuf
import Synchronization
import Wire

package enum MallBenches {
    /// The flash sale: `orders` orders for the `stock` units of one item, all started at once by
    /// `callers` member-app servers, each on its own mutual-TLS connection to the gateway; members
    /// enrolled at an edge first. Baseline: as many empty RPCs started the same way, on the same
    /// server and transport. Checks that exactly `stock` units were sold, to orders answered OK.
    package static func flashSale(program: String, orders: Int, stock: Int, callers: Int, members: Int) async throws {
        let folder = try BenchFolder(program: program)
        // The example's flash sale, open now, at a price the sign-up points pay.
        var text = try String(contentsOfFile: folder.programFile, encoding: .utf8)
        let original = """
                  price_points: 500
                  stock: 100
                  per_member_max: 1
                  sale_start: 2026-11-24T12:00
                  sale_end: 2026-11-24T13:00
            """
        guard text.contains(original) else { throw BenchFailure("the program has no cinema-flash item to sell") }
        text = text.replacingOccurrences(
            of: original,
            with: """
                      price_points: 150
                      stock: \(stock)
                      per_member_max: 1
                      sale_start: 2020-01-01
                      sale_end: 2099-01-01
                """)
        try text.write(toFile: folder.programFile, atomically: true, encoding: .utf8)
        try folder.issue(.gateway("127.0.0.1"), name: "gateway")
        try folder.issue(.site(SiteID("mall-01")!), name: "mall-01")
        try folder.issue(.channel("bench-app"), name: "bench-app")
        let configuration = folder.network.gatewayConfiguration(
            database: folder.path + "/gateway.sqlite", programFile: folder.programFile)
        try await LocalNetwork.withGateway(
            configuration, clock: SystemWallClock(), logger: BenchFolder.quiet,
            extraServices: [BaselineService(responseBytes: 200)]
        ) { gateway, port in
            let ids = try await enrolled(members, folder: folder, gateway: gateway, port: port)
            try await withClients(callers, port: port, folder: folder) { clients, raw in
                let sample = order("F-000000", member: ids[0])
                let requestBytes = try sample.serializedBytes() as [UInt8]
                // Warm up both paths (connections, TLS sessions, caches) with calls that sell nothing.
                _ = await burst(callers * 4) { try await raw[$0 % raw.count].echo(requestBytes) }
                _ = await burst(callers * 4) { index in
                    var request = sample
                    request.itemID = "new-year-gala"  // not on sale: refused from one read
                    request.requestID = "W-\(index)"
                    _ = try? await clients[index % clients.count].placeOrder(request)
                }
                let baseline = await burst(orders) { try await raw[$0 % raw.count].echo(requestBytes) }
                let sold = Mutex<[String: Int]>([:])
                let figure = await burst(orders) { index in
                    do {
                        let answer = try await clients[index % clients.count].placeOrder(
                            order("F-\(index)", member: ids[index % ids.count]))
                        sold.withLock { $0[answer.order.orderID, default: 0] += 1 }
                    } catch let error as RPCError {
                        let reason =
                            error.metadata[stringValues: "coalition-reason"].first { _ in true } ?? "\(error.code)"
                        sold.withLock { $0["refused " + reason, default: 0] += 1 }
                    }
                }
                let outcome = sold.withLock { $0 }
                let answeredOK = outcome.keys.filter { !$0.hasPrefix("refused ") }.count
                let stockRow = try await gateway.ledger.stock([ItemID("cinema-flash")!])[ItemID("cinema-flash")!]
                var report = BenchReport(
                    name: "flash-sale",
                    settings:
                        "\(orders) orders for \(stock) units, started at once by \(callers) callers on their own mutual-TLS connections, \(members) members, SQLite ledger"
                )
                report.line(
                    "baseline",
                    String(
                        format: "%.0f empty RPCs/s (%d started at once; %@; %d errors)", baseline.rate, orders,
                        baseline.latencies.summary, baseline.latencies.errors))
                report.line(
                    "figure",
                    String(
                        format: "%.0f orders/s (%@; %d errors)", figure.rate, figure.latencies.summary,
                        figure.latencies.errors))
                report.line(
                    "ratio",
                    String(
                        format: "%.2f of the baseline's rate; p99 %.2f× the baseline's",
                        figure.rate / max(1, baseline.rate),
                        figure.latencies.milliseconds(99) / max(0.001, baseline.latencies.milliseconds(99))))
                let refusals = outcome.filter { $0.key.hasPrefix("refused ") }.sorted { $0.key < $1.key }
                    .map { "\($0.key.dropFirst(8)) \($0.value)" }.joined(separator: ", ")
                let exact = answeredOK == stock && stockRow?.sold == Int64(stock)
                report.line(
                    "sold",
                    "\(answeredOK) orders answered OK, \(stockRow?.sold ?? 0) units counted sold of \(stock): "
                        + (exact ? "exactly the stock" : "NOT the stock") + "; refused: \(refusals)")
                if let error = figure.latencies.firstError { report.line("first error", error) }
                report.line(
                    "memory",
                    String(format: "peak %.0f MiB (whole process: clients, gateway, edge)", Load.peakMemoryMiB))
                report.print()
                if !exact { throw BenchFailure("the flash sale sold \(answeredOK), not \(stock)") }
            }
        }
    }

    static func order(_ request: String, member: String) -> Coalition_Member_V1_PlaceOrderRequest {
        var message = Coalition_Member_V1_PlaceOrderRequest()
        message.requestID = request
        message.memberID = member
        message.itemID = "cinema-flash"
        message.quantity = 1
        return message
    }

    /// `count` calls started at once; their rate (calls over the wall time of the whole burst) and
    /// latencies.
    static func burst(_ count: Int, _ call: @escaping @Sendable (Int) async throws -> Void) async -> (
        rate: Double, latencies: Latencies
    ) {
        let clock = ContinuousClock()
        let start = clock.now
        // Each call returns its time, merged into one histogram (one per call would cost megabytes).
        let merged = await withTaskGroup(of: Result<Duration, any Error>.self) { group in
            for index in 0..<count {
                group.addTask {
                    do {
                        try await call(index)
                        return .success(clock.now - start)
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var total = Latencies()
            for await outcome in group {
                switch outcome {
                case .success(let duration): total.record(duration)
                case .failure(let error): total.failed(error)
                }
            }
            return total
        }
        return (Double(count) / Load.seconds(clock.now - start), merged)
    }

    /// Members enrolled at an edge of the mall (200 sign-up points each), once the gateway has
    /// them all.
    static func enrolled(_ count: Int, folder: BenchFolder, gateway: GatewayNode, port: Int) async throws -> [String] {
        var configuration = try folder.network.edgeConfiguration(
            site: "mall-01", database: folder.path + "/mall-01.sqlite", programFile: folder.programFile,
            phoneHashKey: BenchFolder.phoneKey, gatewayPort: port)
        configuration.gateway?.syncIntervalMilliseconds = 20
        return try await LocalNetwork.withEdge(
            configuration, clock: SystemWallClock(), logger: BenchFolder.quiet, merchants: ["mall-fashion"],
            terminalsPerMerchant: 1
        ) { edge in
            let bench = TLSBenchEdge(
                node: edge.node, clients: edge.clients, tokens: [edge.auth("mall-fashion", terminal: 0)])
            let ids = try await bench.enroll(count, prefix: "flash")
            let deadline = ContinuousClock.now + .seconds(120)
            var next = 0
            while next < ids.count {
                if try await gateway.ledger.memberDetail(MemberID(ids[next])!) != nil {
                    next += 1
                    continue
                }
                guard ContinuousClock.now < deadline else { throw BenchFailure("the gateway did not get the members") }
                try await Task.sleep(for: .milliseconds(50))
            }
            return ids
        }
    }

    /// Runs `body` with `count` member API clients, each on its own mutual-TLS connection, and the
    /// raw clients under them (for the baseline's empty RPC).
    static func withClients(
        _ count: Int, port: Int, folder: BenchFolder,
        _ body: (
            [Coalition_Member_V1_Member.Client<HTTP2ClientTransport.Posix>], [GRPCClient<HTTP2ClientTransport.Posix>]
        )
            async throws -> Void
    ) async throws {
        func open(
            _ clients: [Coalition_Member_V1_Member.Client<HTTP2ClientTransport.Posix>],
            _ raw: [GRPCClient<HTTP2ClientTransport.Posix>]
        ) async throws {
            guard clients.count < count else { return try await body(clients, raw) }
            try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: port),
                    transportSecurity: .mTLS(
                        certificateChain: [.file(path: folder.path + "/bench-app.pem", format: .pem)],
                        privateKey: .file(path: folder.path + "/bench-app.key", format: .pem)
                    ) { $0.trustRoots = .certificates([.file(path: folder.path + "/ca.pem", format: .pem)]) })
            ) { client in
                try await open(clients + [Coalition_Member_V1_Member.Client(wrapping: client)], raw + [client])
            }
        }
        try await open([], [])
    }
}
