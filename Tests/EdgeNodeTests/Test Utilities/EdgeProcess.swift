import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing
import TestSupport
import Wire

/// Runs `body` with a client connected to 127.0.0.1:`port`.
func withClient<Result: Sendable>(
    port: Int, _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
) async throws -> Result {
    try await withGRPCClient(
        transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
    ) { client in
        try await body(client)
    }
}
