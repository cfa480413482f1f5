// Goal (issue #12, items 3, 4 and 8): a call that never sends its request is answered
// DEADLINE_EXCEEDED after `request_timeout_ms` instead of holding memory for good; more calls at
// once on one connection than the advertised `streams_per_connection_max` are queued by the client
// and all answered (before, the 101st got GOAWAY PROTOCOL_ERROR for the whole connection); and
// neither the gateway nor the edge's TLS POS port agrees a TLS 1.2 CBC-SHA1 suite any more, while
// ECDHE with AES-GCM or ChaCha20 and TLS 1.3 still connect.
import EdgeNode
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import LocalNetwork
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import NodeSupport
import SwiftProtobuf
import Synchronization
import TestSupport
import Testing
import Wire

@Suite("Stream and TLS limits")
struct StreamAndTLSLimitTests {
    /// Runs `body` with an edge (no gateway) whose limits `edit` sets, and a member to earn for.
    static func withEdge(
        _ edit: (inout ConnectionLimits) -> Void,
        _ body: (RunningEdge, String) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01"])
        var configuration = try Network.edgeConfiguration(
            directory.url.path, site: "mall-01", certificates: certificates, gatewayPort: nil)
        edit(&configuration.limits.connections)
        try await LocalNetwork.withEdge(
            configuration, clock: ManualWallClock(), logger: Network.quiet, merchants: ["mall-fashion"]
        ) { edge in
            let member = try await edge.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: edge.auth("mall-fashion")
            ).member.memberID
            try await body(edge, member)
        }
    }

    /// An Earn call whose request `produce` writes (or never writes), as raw bytes.
    static func earnCall(
        _ client: GRPCClient<HTTP2ClientTransport.Posix>, metadata: Metadata,
        produce: @escaping @Sendable (RPCWriter<[UInt8]>) async throws -> Void
    ) async throws -> [UInt8] {
        try await client.clientStreaming(
            request: StreamingClientRequest(metadata: metadata, producer: produce),
            descriptor: MethodDescriptor(fullyQualifiedService: "coalition.edge.v1.Points", method: "Earn"),
            serializer: RawBytesCodec(), deserializer: RawBytesCodec(), options: .defaults
        ) { try $0.message }
    }

    /// Fails (throws) when `body` has not finished within `seconds`.
    static func within<T: Sendable>(
        seconds: Int, _ what: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw ProcessFailure("\(what) did not finish within \(seconds) s")
            }
            return value
        }
    }

    @Test("a call that never sends its request is answered DEADLINE_EXCEEDED; the node keeps serving")
    func heldRequest() async throws {
        try await Self.withEdge({ $0.requestTimeoutMilliseconds = 500 }) { edge, member in
            let client = edge.client
            let auth = edge.auth("mall-fashion")
            let message = try await Self.within(seconds: 20, "a held call") {
                await expectStatus(.deadlineExceeded) {
                    _ = try await Self.earnCall(client, metadata: auth) { _ in
                        try await Task.sleep(for: .seconds(3_600))
                    }
                }
            }
            #expect(message.contains("request_timeout_ms"))
            // A call that sends its request in time is served as usual.
            let earn = try await edge.points.earn(
                Make.earn("R-1", member: member, amount: 10_000), metadata: auth)
            #expect(earn.points == 100)
        }
    }

    @Test("150 calls at once on one connection, over the advertised 100 streams, are all answered")
    func moreCallsThanStreams() async throws {
        try await Self.withEdge({ $0.streamsPerConnectionMax = 100 }) { edge, member in
            let client = edge.client
            let auth = edge.auth("mall-fashion")
            let released = Flag()
            let results = try await Self.within(seconds: 60, "150 concurrent calls") {
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    for number in 1...150 {
                        group.addTask {
                            let body =
                                try Make.earn("R-\(number)", member: member, amount: 10_000)
                                .serializedBytes() as [UInt8]
                            let answer = try? await Self.earnCall(client, metadata: auth) { writer in
                                // Each call holds its stream until all have been started.
                                while !released.isSet { try await Task.sleep(for: .milliseconds(20)) }
                                try await writer.write(body)
                            }
                            return answer.map { try? Coalition_Edge_V1_EarnResponse(serializedBytes: $0) }?.map(
                                \.points)
                                == 100
                        }
                    }
                    try await Task.sleep(for: .seconds(1))
                    released.set()
                    return try await group.reduce(into: [Bool]()) { $0.append($1) }
                }
            }
            #expect(results.count == 150)
            #expect(results.filter { $0 }.count == 150, "\(results.filter { !$0 }.count) of 150 calls failed")
            #expect(try await edge.balance(member, as: "mall-fashion") == 200 + 150 * 100)
        }
    }

    /// The settings of the first SETTINGS frame the server at 127.0.0.1:`port` (plaintext) sends
    /// after a client preface, by identifier.
    static func serverSettings(port: Int) async throws -> [UInt16: UInt32] {
        let collector = FirstFrameCollector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
        try await channel.writeAndFlush(ByteBuffer(bytes: preface))
        let frame = try await collector.frame.futureResult(on: channel.eventLoop).get()
        #expect(frame.type == 4, "the server's first frame is not SETTINGS")
        var settings: [UInt16: UInt32] = [:]
        var payload = ByteBuffer(bytes: frame.payload)
        while let id = payload.readInteger(as: UInt16.self), let value = payload.readInteger(as: UInt32.self) {
            settings[id] = value
        }
        return settings
    }

    @Test("the stream limit, frame size, window and header-list size are advertised as configured")
    func advertisedSettings() async throws {
        try await Self.withEdge({
            $0.streamsPerConnectionMax = 7
            $0.frameBytesMax = 32_768
            $0.windowBytes = 1_048_576
        }) { edge, _ in
            let settings = try await Self.serverSettings(port: edge.port)
            #expect(settings[0x3] == 7)  // SETTINGS_MAX_CONCURRENT_STREAMS
            #expect(settings[0x4] == 1_048_576)  // SETTINGS_INITIAL_WINDOW_SIZE
            #expect(settings[0x5] == 32_768)  // SETTINGS_MAX_FRAME_SIZE
            #expect(settings[0x6] == 16_384)  // SETTINGS_MAX_HEADER_LIST_SIZE
        }
    }

    /// Whether a TLS handshake with 127.0.0.1:`port` completes when the client offers only
    /// `ciphers` with TLS 1.2 at most (or anything, with TLS 1.3, when `ciphers` is nil).
    static func handshake(port: Int, ciphers: [NIOTLSCipher]?, certificate: String?, key: String?) async throws -> Bool
    {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.applicationProtocols = ["h2"]
        if let ciphers {
            configuration.maximumTLSVersion = .tlsv12
            configuration.cipherSuiteValues = ciphers
        } else {
            configuration.minimumTLSVersion = .tlsv13
        }
        if let certificate, let key {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        }
        let context = try NIOSSLContext(configuration: configuration)
        let outcome = HandshakeOutcome()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(outcome)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        return try await outcome.result.futureResult(on: channel.eventLoop).get()
    }

    @Test("no TLS 1.2 CBC-SHA1 suite on the gateway or the edge's POS port; AES-GCM, ChaCha20 and TLS 1.3 connect")
    func cipherSuites() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try certificates.issue(.gateway("127.0.0.1"), name: "pos")
        let cbc: [NIOTLSCipher] = [
            .TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, .TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
            .TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, .TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
            .TLS_RSA_WITH_AES_128_CBC_SHA, .TLS_RSA_WITH_AES_256_CBC_SHA,
        ]
        let good: [[NIOTLSCipher]] = [
            [.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256],
            [.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256],
        ]
        func check(port: Int, certificate: String?, key: String?) async throws {
            #expect(try await Self.handshake(port: port, ciphers: cbc, certificate: certificate, key: key) == false)
            for suites in good {
                #expect(try await Self.handshake(port: port, ciphers: suites, certificate: certificate, key: key))
            }
            #expect(try await Self.handshake(port: port, ciphers: nil, certificate: certificate, key: key))
        }
        let configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        try await Network.withGateway(configuration, clock: ManualWallClock()) { gateway in
            try await check(
                port: gateway.port, certificate: certificates.path("mall-01.pem"), key: certificates.path("mall-01.key")
            )
        }
        var edge = try Network.edgeConfiguration(dir, site: "mall-01", certificates: certificates, gatewayPort: nil)
        edge.tls = ServerTLSFiles(
            certificatePath: certificates.path("pos.pem"), privateKeyPath: certificates.path("pos.key"))
        try await LocalNetwork.withEdge(
            edge, clock: ManualWallClock(), logger: Network.quiet, merchants: ["mall-fashion"],
            trustRoots: certificates.path("ca.pem")
        ) { edge in
            try await check(port: edge.port, certificate: nil, key: nil)
            // And the POS API still works over it.
            _ = try await edge.points.enroll(
                Make.enroll("E-1", phone: "+8613800138000"), metadata: edge.auth("mall-fashion"))
        }
    }
}

/// Completes with true when the TLS handshake completes, false when it fails or the connection
/// closes first.
final class HandshakeOutcome: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    /// A value set once, awaited on an event loop.
    final class Result<Value: Sendable>: Sendable {
        private let value = Mutex<Value?>(nil)
        private let waiters = Mutex<[EventLoopPromise<Value>]>([])

        func set(_ outcome: Value) {
            guard
                value.withLock({ current in
                    guard current == nil else { return false }
                    current = outcome
                    return true
                })
            else { return }
            for waiter in waiters.withLock({ w in
                defer { w = [] }; return w
            }) { waiter.succeed(outcome) }
        }

        func futureResult(on loop: any EventLoop) -> EventLoopFuture<Value> {
            let promise = loop.makePromise(of: Value.self)
            waiters.withLock { $0.append(promise) }
            if let known = value.withLock({ $0 }) {
                for waiter in waiters.withLock({ w in
                    defer { w = [] }; return w
                }) { waiter.succeed(known) }
            }
            return promise.futureResult
        }
    }

    let result = Result<Bool>()

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { result.set(true) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        result.set(false)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        result.set(false)
        context.fireChannelInactive()
    }
}

/// A flag set once, read by many tasks.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// Collects the first HTTP/2 frame a server sends (type and payload).
final class FirstFrameCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let frame = HandshakeOutcome.Result<(type: UInt8, payload: [UInt8])>()
    private let bytes = Mutex<[UInt8]>([])

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let all = bytes.withLock {
            $0 += buffer.readableBytesView; return $0
        }
        guard all.count >= 9 else { return }
        let length = Int(all[0]) << 16 | Int(all[1]) << 8 | Int(all[2])
        guard all.count >= 9 + length else { return }
        frame.set((type: all[3], payload: Array(all[9..<(9 + length)])))
    }
}
