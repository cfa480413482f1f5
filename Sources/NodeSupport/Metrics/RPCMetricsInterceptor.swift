import CoreMetrics
import GRPCCore
import Metrics
import Synchronization

/// Counts every call a server answers and times it, by service, method and status, in the names
/// of grpc-ecosystem's Prometheus middleware (so existing dashboards and alerts fit):
/// `grpc_server_handled_total{grpc_service, grpc_method, grpc_code}` and
/// `grpc_server_handling_seconds{grpc_service, grpc_method}` (a histogram, from the call's start
/// to its last response message). One interceptor for every service of a node.
package struct RPCMetricsInterceptor: ServerInterceptor {
    private let instruments: Instruments

    package init(factory: any MetricsFactory) {
        instruments = Instruments(factory: factory)
    }

    package func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let started = ContinuousClock.now
        let method = context.descriptor
        let instruments = self.instruments
        let response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            instruments.record(method, code: Self.code(of: error), since: started)
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            instruments.record(method, code: error.code, since: started)
            return response
        case .success(var contents):
            let producer = contents.producer
            contents.producer = { writer in
                do {
                    let trailers = try await producer(writer)
                    instruments.record(method, code: nil, since: started)
                    return trailers
                } catch {
                    instruments.record(method, code: Self.code(of: error), since: started)
                    throw error
                }
            }
            return StreamingServerResponse(accepted: .success(contents))
        }
    }

    /// The status a thrown error ends the call with (as the server would send it).
    private static func code(of error: any Error) -> RPCError.Code {
        if let error = error as? RPCError { return error.code }
        if let error = error as? any RPCErrorConvertible { return error.rpcErrorCode }
        return .unknown
    }

    /// The counters and timers, made once per method and status and kept (a call records into
    /// existing instruments: a dictionary look-up, no registry work).
    private final class Instruments: Sendable {
        private struct Key: Hashable {
            let method: MethodDescriptor
            let code: String
        }

        private let factory: any MetricsFactory
        private let counters = Mutex<[Key: Counter]>([:])
        private let timers = Mutex<[MethodDescriptor: CoreMetrics.Timer]>([:])

        init(factory: any MetricsFactory) {
            self.factory = factory
        }

        /// Records one answered call; `code` nil is OK.
        func record(_ method: MethodDescriptor, code: RPCError.Code?, since started: ContinuousClock.Instant) {
            let elapsed = ContinuousClock.now - started
            let name = code.map(Self.name) ?? "OK"
            let dimensions = [("grpc_service", method.service.fullyQualifiedService), ("grpc_method", method.method)]
            let counter = counters.withLock { counters in
                let key = Key(method: method, code: name)
                if let counter = counters[key] { return counter }
                let counter = Counter(
                    label: "grpc_server_handled_total", dimensions: dimensions + [("grpc_code", name)],
                    factory: factory)
                counters[key] = counter
                return counter
            }
            let timer = timers.withLock { timers in
                if let timer = timers[method] { return timer }
                let timer = CoreMetrics.Timer(
                    label: "grpc_server_handling_seconds", dimensions: dimensions, factory: factory)
                timers[method] = timer
                return timer
            }
            counter.increment()
            timer.record(duration: elapsed)
        }

        /// A status code's name as grpc-go spells it (`OK`, `NotFound`, …).
        private static func name(_ code: RPCError.Code) -> String {
            switch code {
            case .cancelled: "Canceled"
            case .unknown: "Unknown"
            case .invalidArgument: "InvalidArgument"
            case .deadlineExceeded: "DeadlineExceeded"
            case .notFound: "NotFound"
            case .alreadyExists: "AlreadyExists"
            case .permissionDenied: "PermissionDenied"
            case .resourceExhausted: "ResourceExhausted"
            case .failedPrecondition: "FailedPrecondition"
            case .aborted: "Aborted"
            case .outOfRange: "OutOfRange"
            case .unimplemented: "Unimplemented"
            case .internalError: "Internal"
            case .unavailable: "Unavailable"
            case .dataLoss: "DataLoss"
            case .unauthenticated: "Unauthenticated"
            default: "Code\(code.rawValue)"
            }
        }
    }
}
