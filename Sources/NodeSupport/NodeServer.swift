import Foundation
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import UnixSignals

/// Why a node could not do what it was asked, in an operator's words.
package struct NodeFailure: Error, Sendable, CustomStringConvertible {
    package var description: String

    package init(_ description: String) {
        self.description = description
    }
}

/// Start-up and shutdown both servers share.
package enum NodeServer {
    /// The port `transport` listens on, once bound (`name` names the server in an error).
    package static func port(of transport: HTTP2ServerTransport.Posix, name: String) async throws -> Int {
        let address = try await transport.listeningAddress
        if let ipv4 = address.ipv4 { return ipv4.port }
        if let ipv6 = address.ipv6 { return ipv6.port }
        throw NodeFailure("the \(name) listens on \(address), which has no port")
    }

    /// Writes the bound port to `file` (atomically, with a newline), for the scripts and tests that
    /// start a node on port 0.
    package static func announce(port: Int, to file: String?) throws {
        guard let file else { return }
        try Data("\(port)\n".utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
    }

    /// Runs `service` until SIGTERM or SIGINT, then waits at most `shutdownMilliseconds` for it to
    /// finish the calls in flight; past that it is cancelled (and the process exits).
    package static func run(_ service: some Service, logger: Logger, shutdownMilliseconds: Int) async throws {
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .milliseconds(shutdownMilliseconds)
        configuration.maximumCancellationDuration = .milliseconds(shutdownMilliseconds)
        try await ServiceGroup(configuration: configuration).run()
    }
}
