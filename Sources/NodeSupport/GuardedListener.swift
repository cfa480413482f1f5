import Core
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOSSL
import NIOTLS
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What every listener of ours allows a connection and a call, so that no client, honest or not,
/// can hold a node's descriptors, memory or streams for good (docs/operations.md, "Connections").
package struct ConnectionLimits: Sendable, Equatable {
    /// Most open connections on the listener (further ones are closed at once); never more than
    /// the open-file limit less `openFilesReserve`.
    package var connectionsMax = 1_000
    /// Most open connections from one IP address.
    package var connectionsPerPeerMax = 64
    /// How long a new connection has to finish its TLS handshake and its HTTP/2 preface and first
    /// SETTINGS before it is closed, in milliseconds.
    package var handshakeTimeoutMilliseconds = 10_000
    /// How long a connection may stay open with no call before it is closed (GOAWAY), in
    /// milliseconds.
    package var idleTimeoutMilliseconds = 300_000
    /// Most calls in progress on one connection, advertised as SETTINGS_MAX_CONCURRENT_STREAMS so
    /// that clients queue further calls rather than fail.
    package var streamsPerConnectionMax = 100
    /// How long a call has to deliver its whole request, in milliseconds; past it the call is
    /// answered DEADLINE_EXCEEDED and its stream closed.
    package var requestTimeoutMilliseconds = 30_000
    /// Descriptors kept free for the database, the gateway link and logs: connections never take
    /// the last ones.
    package var openFilesReserve = 128
    /// Largest HTTP/2 frame accepted, in bytes (SETTINGS_MAX_FRAME_SIZE, 16,384 to 16,777,215).
    package var frameBytesMax = 16_384
    /// HTTP/2 flow-control window per stream and connection, in bytes (SETTINGS_INITIAL_WINDOW_SIZE).
    package var windowBytes = 65_535

    package init() {}

    /// Reads the keys above from a `limits:` map (their names are in docs/operations.md); values
    /// out of range are reported on `limits` as usual.
    package mutating func read(_ limits: MapReader) {
        func int(_ key: String, _ range: ClosedRange<Int64>, _ target: inout Int) {
            if let value = limits.integer(key, in: range, required: false) { target = Int(value) }
        }
        int("connections_max", 1...1_000_000, &connectionsMax)
        int("connections_per_peer_max", 1...1_000_000, &connectionsPerPeerMax)
        int("handshake_timeout_ms", 100...600_000, &handshakeTimeoutMilliseconds)
        int("idle_timeout_ms", 1_000...86_400_000, &idleTimeoutMilliseconds)
        int("streams_per_connection_max", 1...10_000, &streamsPerConnectionMax)
        int("request_timeout_ms", 100...3_600_000, &requestTimeoutMilliseconds)
        int("open_files_reserve", 16...1_000_000, &openFilesReserve)
        int("http2_frame_bytes_max", 16_384...16_777_215, &frameBytesMax)
        int("http2_window_bytes", 65_535...2_147_483_647, &windowBytes)
    }
}

/// The files of a TLS listener.
package struct ServerTLSFiles: Sendable, Equatable {
    package var certificatePath: String
    package var privateKeyPath: String
    /// When set, every client must present a certificate issued by this CA (mutual TLS).
    package var clientCAPath: String?

    package init(certificatePath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }
}

/// The process's open-file limit.
package enum OpenFiles {
    /// Raises the soft open-file limit to the hard one (as far as the system lets) and returns
    /// both, as the process now has them.
    package static func raiseLimit() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        #if canImport(Glibc)
            let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
            let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return (Int.max, Int.max) }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        func int(_ value: rlim_t) -> Int { value >= rlim_t(Int.max) ? Int.max : Int(value) }
        return (int(limit.rlim_cur), int(limit.rlim_max))
    }
}

/// A gRPC server transport whose every connection passes our gate: a cap per listener and per
/// peer address, a deadline for the handshake and for each request, an advertised stream limit,
/// explicit HTTP/2 frame and window sizes, and (for TLS) our own cipher suites.
///
/// The transport is the stock `HTTP2ServerTransport.Posix`, in plaintext mode: TLS is our own
/// `NIOSSLServerHandler`, put first in each accepted connection's pipeline by the transport's
/// connection callback, so that we choose the TLS 1.2 suites (the transport offers no setting for
/// them). The peer certificate reaches the services as before (the transport reads it from the
/// first TLS handler of the pipeline).
package enum GuardedListener {
    /// TLS 1.2 suites offered: ECDHE with AES-GCM or ChaCha20-Poly1305 only (no CBC, no SHA-1 MAC,
    /// no static RSA). TLS 1.3 keeps its own suites, which are all AEAD.
    package static let tls12CipherSuites: [NIOTLSCipher] = [
        .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]

    /// A transport listening on `host:port` (`name` names the server in errors and logs) that
    /// accepts requests of up to `requestBytesMax` and enforces `limits`. It logs the open-file
    /// limit and the connection cap it leads to.
    package static func transport(
        name: String, host: String, port: Int, tls: ServerTLSFiles?, requestBytesMax: Int, limits: ConnectionLimits,
        logger: Logger, onHandshakeFailure: (@Sendable (_ address: String, _ error: String) -> Void)? = nil
    ) throws -> HTTP2ServerTransport.Posix {
        let files = OpenFiles.raiseLimit()
        let available = files.soft == Int.max ? Int.max : files.soft - limits.openFilesReserve
        guard available >= 1 else {
            throw NodeFailure(
                "the open-file limit (\(files.soft)) leaves no descriptor for connections after "
                    + "limits.open_files_reserve (\(limits.openFilesReserve)): raise it (ulimit -n, LimitNOFILE=)")
        }
        let cap = min(limits.connectionsMax, available)
        logger.info(
            "\(name) connection limits",
            metadata: [
                "open_files_limit": "\(files.soft)", "open_files_hard_limit": "\(files.hard)",
                "connections_max": "\(cap)", "connections_per_peer_max": "\(limits.connectionsPerPeerMax)",
            ])
        let gate = ConnectionGate(
            name: name, totalMax: cap, perPeerMax: limits.connectionsPerPeerMax, logger: logger)
        let ssl = try tls.map { try sslContext($0) }
        let handshakeTimeout = TimeAmount.milliseconds(Int64(limits.handshakeTimeoutMilliseconds))
        let requestTimeout = TimeAmount.milliseconds(Int64(limits.requestTimeoutMilliseconds))
        let requestTimeoutMilliseconds = limits.requestTimeoutMilliseconds

        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = requestBytesMax
        config.http2.maxConcurrentStreams = limits.streamsPerConnectionMax
        config.http2.maxFrameSize = limits.frameBytesMax
        config.http2.targetWindowSize = limits.windowBytes
        config.connection.maxIdleTime = .milliseconds(limits.idleTimeoutMilliseconds)
        // The transport calls these for every accepted connection and every new stream; they are
        // its only hooks into the pipeline.
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            channel.eventLoop.makeCompletedFuture {
                let pipeline = channel.pipeline.syncOperations
                // Behind the HTTP/2 handler, the first frame it passes on is the client's SETTINGS:
                // TLS and the HTTP/2 preface are done.
                try pipeline.addHandler(
                    GreetingDeadlineHandler(timeout: handshakeTimeout),
                    position: .after(try pipeline.handler(type: NIOHTTP2Handler.self)))
                if let ssl {
                    let handler = NIOSSLServerHandler(context: ssl)
                    try pipeline.addHandler(handler, position: .first)
                    if let onHandshakeFailure {
                        try pipeline.addHandler(
                            HandshakeFailureHandler(report: onHandshakeFailure), position: .after(handler))
                    }
                }
                try pipeline.addHandler(AdmissionHandler(gate: gate), position: .first)
            }
        }
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    RequestDeadlineHandler(
                        timeout: requestTimeout,
                        message:
                            "the request was not received within request_timeout_ms (\(requestTimeoutMilliseconds))"
                    ),
                    position: .first)
            }
        }
        let address: GRPCNIOTransportCore.SocketAddress =
            host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
        return HTTP2ServerTransport.Posix(address: address, transportSecurity: .plaintext, config: config)
    }

    /// The TLS context of a listener: TLS 1.2 with `tls12CipherSuites` or TLS 1.3, ALPN h2, and
    /// client certificates required and checked against the CA when `clientCAPath` is set.
    package static func sslContext(_ files: ServerTLSFiles) throws -> NIOSSLContext {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(files.certificatePath).map {
                NIOSSLCertificateSource.certificate($0)
            }
            let key = try NIOSSLPrivateKey(file: files.privateKeyPath, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain, privateKey: .privateKey(key))
            configuration.minimumTLSVersion = .tlsv12
            configuration.cipherSuiteValues = tls12CipherSuites
            configuration.applicationProtocols = ["grpc-exp", "h2"]
            if let ca = files.clientCAPath {
                configuration.trustRoots = .file(ca)
                configuration.certificateVerification = .noHostnameVerification
            }
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw NodeFailure(
                "cannot set up TLS with \(files.certificatePath) and \(files.privateKeyPath)"
                    + (files.clientCAPath.map { " (client CA \($0))" } ?? "") + ": \(error)")
        }
    }
}

/// Counts a listener's open connections, in all and per peer address, and refuses those over
/// either cap; refusals are logged at most once per `reportSeconds`.
package final class ConnectionGate: Sendable {
    private struct State {
        var total = 0
        var perPeer: [String: Int] = [:]
        var refused = 0
        var lastReport: NIODeadline?
    }

    private let state = Mutex(State())
    private let name: String
    private let totalMax: Int
    private let perPeerMax: Int
    private let logger: Logger
    static let reportSeconds: Int64 = 10

    init(name: String, totalMax: Int, perPeerMax: Int, logger: Logger) {
        self.name = name
        self.totalMax = totalMax
        self.perPeerMax = perPeerMax
        self.logger = logger
    }

    /// Takes a place for a connection from `peer`, or says why there is none.
    func admit(_ peer: String) -> Bool {
        let now = NIODeadline.now()
        let (admitted, report) = state.withLock { state -> (Bool, Int?) in
            let fromPeer = state.perPeer[peer, default: 0]
            if state.total < totalMax && fromPeer < perPeerMax {
                state.total += 1
                state.perPeer[peer] = fromPeer + 1
                return (true, nil)
            }
            state.refused += 1
            if let last = state.lastReport, now - last < .seconds(Self.reportSeconds) { return (false, nil) }
            state.lastReport = now
            defer { state.refused = 0 }
            return (false, state.refused)
        }
        if let report {
            logger.warning(
                "\(name) refused connections over its caps",
                metadata: [
                    "refused": "\(report)", "last_peer": "\(peer)", "connections_max": "\(totalMax)",
                    "connections_per_peer_max": "\(perPeerMax)",
                ])
        }
        return admitted
    }

    /// Gives back the place of a closed connection from `peer`.
    func release(_ peer: String) {
        state.withLock { state in
            state.total -= 1
            let left = state.perPeer[peer, default: 1] - 1
            state.perPeer[peer] = left > 0 ? left : nil
        }
    }
}

/// First in every connection's pipeline: takes a place at the gate when the connection becomes
/// active (or closes it at once), and gives it back when it closes.
final class AdmissionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let gate: ConnectionGate
    private var peer: String?
    private var refused = false

    init(gate: ConnectionGate) {
        self.gate = gate
    }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.remoteAddress?.ipAddress ?? "unknown"
        if gate.admit(address) {
            peer = address
            context.fireChannelActive()
        } else {
            refused = true
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let peer {
            gate.release(peer)
            self.peer = nil
        }
        // The handlers behind never saw the connection become active.
        if !refused { context.fireChannelInactive() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !refused { context.fireChannelRead(data) }
    }
}

/// Behind the TLS handler: reports a failed handshake (a client certificate of another CA, none
/// where one is required, a protocol the listener refuses) with the peer's address, then removes
/// itself once the handshake has succeeded.
final class HandshakeFailureHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let report: @Sendable (String, String) -> Void
    private var reported = false

    init(report: @escaping @Sendable (String, String) -> Void) {
        self.report = report
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !reported, let failure = error as? NIOSSLError, case .handshakeFailed = failure {
            reported = true
            let address = context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
            report(address, "\(failure)")
        }
        context.fireErrorCaught(error)
    }
}

/// Closes a connection that has not finished its TLS and HTTP/2 handshakes (preface and first
/// SETTINGS) within the timeout; placed behind the HTTP/2 handler, its first read is that SETTINGS
/// frame.
final class GreetingDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var greeted = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelActive(context: ChannelHandlerContext) {
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) { bound.value.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !greeted {
            greeted = true
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}

/// First in every stream's pipeline: a call that has not delivered its whole request (its end of
/// stream) within the timeout, and has not been answered, is answered DEADLINE_EXCEEDED and its
/// stream closed, so that a held stream costs memory only for a bounded time.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let timeout: TimeAmount
    private let message: String
    private var deadline: Scheduled<Void>?
    private var settled = false

    init(timeout: TimeAmount, message: String) {
        self.timeout = timeout
        self.message = message
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            handler.expire(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        settle()
    }

    private func settle() {
        settled = true
        deadline?.cancel()
        deadline = nil
    }

    private func expire(context: ChannelHandlerContext) {
        guard !settled else { return }
        settle()
        let headers: HPACKHeaders = [
            ":status": "200", "content-type": "application/grpc",
            "grpc-status": "\(4)",  // DEADLINE_EXCEEDED
            "grpc-message": message,  // printable ASCII without '%': nothing to escape
        ]
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !settled {
            switch unwrapInboundIn(data) {
            case .headers(let headers) where headers.endStream: settle()
            case .data(let data) where data.endStream: settle()
            default: break
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The server has begun its answer: the call is no longer waiting for its request.
        if !settled { settle() }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle()
        context.fireChannelInactive()
    }
}
