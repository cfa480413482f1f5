import Core
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Where a node's plain HTTP listener (`/metrics`, the console) binds, and its limits; every one is
/// a config key of the listener's map (docs/operations.md).
package struct HTTPEndpointSettings: Sendable, Equatable {
    package var host: String
    /// Port 0 picks a free port (see `portFile`).
    package var port: Int
    /// When set, the bound port is written here once listening (for scripts and tests).
    package var portFile: String?
    /// Most open connections (`connections_max`); further ones wait in the kernel's backlog.
    package var connectionsMax = 64
    /// How long a connection may stay open between requests (`idle_timeout_ms`).
    package var idleTimeoutMilliseconds = 60_000
    /// Largest request head (request line and headers together), in bytes (`header_bytes_max`);
    /// a larger one is answered 431 and the connection closed.
    package var headerBytesMax = 16_384

    package init(host: String = "127.0.0.1", port: Int, portFile: String? = nil) {
        self.host = host
        self.port = port
        self.portFile = portFile
    }

    /// Reads a listener's map (`listen: host:port`, `port_file`, and the limits above), reporting
    /// problems on it as usual; nil when the map is absent (the listener is off) or invalid.
    /// `address` parses host:port (nil when malformed); `resolve` makes a path absolute.
    package static func read(
        _ map: MapReader, address: (String) -> (String, Int)?, resolve: (String) -> String
    ) -> HTTPEndpointSettings? {
        let listen = map.string("listen", lengthMax: 300)
        let portFile = map.string("port_file", required: false, lengthMax: 4096)
        guard let listen else {
            map.finish()
            return nil
        }
        guard let (host, port) = address(listen) else {
            map.diagnostics.fail(map.path.key("listen"), "must be host:port, for example 127.0.0.1:9464")
            map.finish()
            return nil
        }
        var settings = HTTPEndpointSettings(host: host, port: port, portFile: portFile.map(resolve))
        settings.readLimits(map)
        map.finish()
        return settings
    }

    /// Reads the limit keys above from the listener's map; out-of-range values are reported on
    /// the map as usual.
    private mutating func readLimits(_ map: MapReader) {
        func int(_ key: String, _ range: ClosedRange<Int64>, _ target: inout Int) {
            if let value = map.integer(key, in: range, required: false) { target = Int(value) }
        }
        int("connections_max", 1...100_000, &connectionsMax)
        int("idle_timeout_ms", 1_000...86_400_000, &idleTimeoutMilliseconds)
        int("header_bytes_max", 1_024...1_048_576, &headerBytesMax)
    }
}

/// The port a listener bound, for those who wait for it (tests, the demo, the port file).
package final class BoundPort: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Int, any Error>])
        case bound(Int)
        case ended
    }

    private let state = Mutex(State.waiting([]))
    private let name: String

    package init(name: String) {
        self.name = name
    }

    /// The bound port; throws if the listener ended without binding.
    package var value: Int {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let resume: Result<Int, any Error>? = state.withLock { state in
                    switch state {
                    case .waiting(var list):
                        list.append(continuation)
                        state = .waiting(list)
                        return nil
                    case .bound(let port): return .success(port)
                    case .ended: return .failure(NodeFailure("the \(self.name) is not listening"))
                    }
                }
                if let resume { continuation.resume(with: resume) }
            }
        }
    }

    func bind(_ port: Int) {
        let waiting = state.withLock { state in
            guard case .waiting(let list) = state else { return [CheckedContinuation<Int, any Error>]() }
            state = .bound(port)
            return list
        }
        waiting.forEach { $0.resume(returning: port) }
    }

    func end() {
        let waiting = state.withLock { state in
            guard case .waiting(let list) = state else { return [CheckedContinuation<Int, any Error>]() }
            state = .ended
            return list
        }
        waiting.forEach { $0.resume(throwing: NodeFailure("the \(name) stopped before it listened")) }
    }
}

/// A plain HTTP/1.1 listener (Hummingbird) run as a `Service` of a node's group: `/metrics` on
/// every node, the console on the gateway. It stops with the node's graceful shutdown.
package struct HTTPEndpoint<Context: RequestContext>: Service
where Context: InitializableFromSource<ApplicationRequestContextSource> {
    package let name: String
    package let settings: HTTPEndpointSettings
    package let port: BoundPort
    private let responder: RouterResponder<Context>
    private let logger: Logger

    /// A listener serving `router`; its bound port is announced to `port` (a new one by default).
    package init(
        name: String, settings: HTTPEndpointSettings, router: Router<Context>, logger: Logger, port: BoundPort? = nil
    ) {
        self.name = name
        self.settings = settings
        responder = router.buildResponder()
        self.logger = logger
        self.port = port ?? BoundPort(name: name)
    }

    package func run() async throws {
        let settings = self.settings
        let (port, name, logger) = (self.port, self.name, self.logger)
        defer { port.end() }
        var configuration = ApplicationConfiguration(address: .hostname(settings.host, port: settings.port))
        configuration.availableConnectionsDelegate = MaximumAvailableConnections(settings.connectionsMax)
        let application = Application(
            responder: responder,
            server: .http1(
                configuration: HTTP1Channel.Configuration(
                    idleTimeout: .milliseconds(Int64(settings.idleTimeoutMilliseconds)),
                    httpDecoderConfiguration: .init(
                        maxHeaderFieldSize: settings.headerBytesMax, maxHeaderListSize: settings.headerBytesMax,
                        maxHeaderFieldCount: 100))),
            configuration: configuration,
            onServerRunning: { channel in
                guard let bound = channel.localAddress?.port else { return }
                do {
                    try NodeServer.announce(port: bound, to: settings.portFile)
                } catch {
                    logger.error("cannot write the port file", metadata: ["error": "\(error)"])
                }
                logger.info("\(name) listening", metadata: ["address": "http://\(settings.host):\(bound)"])
                port.bind(bound)
            },
            logger: logger)
        try await application.run()
    }
}
