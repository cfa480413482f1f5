import GRPCCore
import SwiftProtobuf

/// Calls a service method in process the way the transport would: the request is encoded and
/// decoded again (so only what survives the wire reaches the service), and the answer's error is
/// thrown as a client would see it — an `RPCError` with the mapped status, `UNKNOWN` for anything
/// the server could not map. Used by the deterministic simulation and the sync benchmarks, which
/// link edges to a gateway without sockets.
package func callInProcess<Request: SwiftProtobuf.Message, Response: Sendable>(
    _ message: Request, metadata: Metadata = [:], method: String,
    _ handler: (ServerRequest<Request>, ServerContext) async throws -> ServerResponse<Response>
) async throws -> Response {
    let decoded = try Request(serializedBytes: try message.serializedBytes() as [UInt8])
    let context = ServerContext(
        descriptor: MethodDescriptor(fullyQualifiedService: "in-process", method: method), remotePeer: "in-process",
        localPeer: "in-process", cancellation: ServerContext.RPCCancellationHandle())
    do {
        return try await handler(ServerRequest(metadata: metadata, message: decoded), context).message
    } catch let error as any RPCErrorConvertible {
        throw RPCError(error)
    } catch {
        throw RPCError(code: .unknown, message: "\(error)")
    }
}
