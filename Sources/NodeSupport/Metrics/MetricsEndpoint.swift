import Hummingbird
import Logging
import NIOCore

/// `GET /metrics`: the node's series in Prometheus' text format, for a Prometheus server to
/// scrape. Unauthenticated by design (figures, no personal data): bind it to loopback or a
/// monitoring network (docs/operations.md).
package enum MetricsEndpoint {
    /// The content type of Prometheus' text exposition format.
    package static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    package static func make(
        settings: HTTPEndpointSettings, metrics: NodeMetrics, logger: Logger
    ) -> HTTPEndpoint<BasicRequestContext> {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            do {
                let bytes = try await metrics.exposition()
                return Response(
                    status: .ok, headers: [.contentType: contentType],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
            } catch {
                return Response(
                    status: .serviceUnavailable,
                    headers: [.contentType: "text/plain; charset=utf-8", .retryAfter: "1"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: "too many scrapes at once: \(error)\n")))
            }
        }
        return HTTPEndpoint(name: "metrics endpoint", settings: settings, router: router, logger: logger)
    }
}
