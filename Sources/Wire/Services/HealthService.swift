import GRPCCore
import Synchronization

/// The standard `grpc.health.v1.Health` service. "" is the whole server; each served service is
/// known by its full name. Watch sends the current status, then every change, until cancelled.
package final class HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol, Sendable {
    private typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status]
        var watchers: [Int: AsyncStream<Void>.Continuation] = [:]
        var nextWatcher = 0
    }

    /// The most concurrent Watch calls; more are RESOURCE_EXHAUSTED.
    package static let watchersMax = 100

    private let state: Mutex<State>

    /// Serving statuses start as SERVING for "" and each of `services`.
    package init(services: [String]) {
        var initial: [String: Status] = ["": .serving]
        for service in services { initial[service] = .serving }
        self.state = Mutex(State(statuses: initial))
    }

    /// Marks every service NOT_SERVING (on shutdown), tells the watchers and ends their calls, so
    /// they do not hold a graceful shutdown open.
    package func shutDown() {
        let watchers = state.withLock { state in
            for key in state.statuses.keys { state.statuses[key] = .notServing }
            return Array(state.watchers.values)
        }
        for watcher in watchers {
            watcher.yield()
            watcher.finish()
        }
    }

    package func check(
        request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext
    ) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = state.withLock({ $0.statuses[request.service] }) else {
            throw RPCError(code: .notFound, message: "service: unknown service '\(request.service.prefix(200))'")
        }
        var response = Grpc_Health_V1_HealthCheckResponse()
        response.status = status
        return response
    }

    package func watch(
        request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        let (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id: Int? = state.withLock { state in
            guard state.watchers.count < Self.watchersMax else { return nil }
            state.nextWatcher += 1
            state.watchers[state.nextWatcher] = continuation
            return state.nextWatcher
        }
        guard let id else { throw RPCError(code: .resourceExhausted, message: "too many health watchers") }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        var last: Status?
        continuation.yield()
        for await _ in changes {
            var message = Grpc_Health_V1_HealthCheckResponse()
            message.status = state.withLock { $0.statuses[request.service] } ?? .serviceUnknown
            if message.status != last {
                last = message.status
                try await response.write(message)
            }
        }
    }
}
