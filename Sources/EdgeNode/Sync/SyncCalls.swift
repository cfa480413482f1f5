import GRPCCore
import Synchronization
import Wire

/// The five calls of `coalition.sync.v1.Sync` as the edge makes them. In production they go
/// through a gRPC client over mutual TLS; the deterministic simulation routes them in process to
/// the gateway's service, injecting lost answers, duplicates and cut links.
package struct SyncCalls: Sendable {
    package typealias Call<Request: Sendable, Response: Sendable> =
        @Sendable (Request, CallOptions) async throws -> Response

    package var push: Call<Coalition_Sync_V1_PushRequest, Coalition_Sync_V1_PushResponse>
    package var pull: Call<Coalition_Sync_V1_PullRequest, Coalition_Sync_V1_PullResponse>
    package var authorizeRedeem:
        Call<Coalition_Sync_V1_AuthorizeRedeemRequest, Coalition_Sync_V1_AuthorizeRedeemResponse>
    package var releaseHold: Call<Coalition_Sync_V1_ReleaseHoldRequest, Coalition_Sync_V1_ReleaseHoldResponse>
    package var recover: Call<Coalition_Sync_V1_RecoverRequest, Coalition_Sync_V1_RecoverResponse>
    package var requestAllowance:
        Call<Coalition_Sync_V1_RequestAllowanceRequest, Coalition_Sync_V1_RequestAllowanceResponse>

    package init(
        push: @escaping Call<Coalition_Sync_V1_PushRequest, Coalition_Sync_V1_PushResponse>,
        pull: @escaping Call<Coalition_Sync_V1_PullRequest, Coalition_Sync_V1_PullResponse>,
        authorizeRedeem:
            @escaping Call<Coalition_Sync_V1_AuthorizeRedeemRequest, Coalition_Sync_V1_AuthorizeRedeemResponse>,
        releaseHold: @escaping Call<Coalition_Sync_V1_ReleaseHoldRequest, Coalition_Sync_V1_ReleaseHoldResponse>,
        recover: @escaping Call<Coalition_Sync_V1_RecoverRequest, Coalition_Sync_V1_RecoverResponse>,
        requestAllowance:
            @escaping Call<Coalition_Sync_V1_RequestAllowanceRequest, Coalition_Sync_V1_RequestAllowanceResponse> = {
                _, _ in throw RPCError(code: .unimplemented, message: "no allowances on this link")
            }
    ) {
        self.requestAllowance = requestAllowance
        self.push = push
        self.pull = pull
        self.authorizeRedeem = authorizeRedeem
        self.releaseHold = releaseHold
        self.recover = recover
    }

    /// The calls of a generated client on any transport.
    package init<Transport: ClientTransport>(client: Coalition_Sync_V1_Sync.Client<Transport>) {
        self.init(
            push: { try await client.push($0, options: $1) },
            pull: { try await client.pull($0, options: $1) },
            authorizeRedeem: { try await client.authorizeRedeem($0, options: $1) },
            releaseHold: { try await client.releaseHold($0, options: $1) },
            recover: { try await client.recover($0, options: $1) },
            requestAllowance: { try await client.requestAllowance($0, options: $1) })
    }

    /// Calls that go to one of several gateways sharing a ledger: each call goes to the current
    /// one; a call that fails for the link (UNAVAILABLE, DEADLINE_EXCEEDED) moves the next calls to
    /// the next gateway, in turn. The failed call itself is not repeated here: the sync loops retry
    /// with their backoff, and an authorisation falls back to the offline rules, as with one gateway.
    package static func failover(_ gateways: [SyncCalls]) -> SyncCalls {
        precondition(!gateways.isEmpty, "no gateway to call")
        guard gateways.count > 1 else { return gateways[0] }
        let current = Failover(count: gateways.count)
        func route<Request: Sendable, Response: Sendable>(
            _ pick: @escaping @Sendable (SyncCalls) -> Call<Request, Response>
        ) -> Call<Request, Response> {
            { request, options in
                let index = current.index
                do {
                    return try await pick(gateways[index])(request, options)
                } catch let error as RPCError where error.code == .unavailable || error.code == .deadlineExceeded {
                    current.failed(index)
                    throw error
                }
            }
        }
        return SyncCalls(
            push: route(\.push), pull: route(\.pull), authorizeRedeem: route(\.authorizeRedeem),
            releaseHold: route(\.releaseHold), recover: route(\.recover), requestAllowance: route(\.requestAllowance))
    }
}

/// Which of several gateways the next call goes to.
final class Failover: Sendable {
    private let count: Int
    private let state = Mutex(0)

    init(count: Int) {
        self.count = count
    }

    var index: Int { state.withLock { $0 } }

    /// A call to `index` failed: the next calls go to the gateway after it (unless another call
    /// moved on already).
    func failed(_ index: Int) {
        state.withLock { if $0 == index { $0 = (index + 1) % count } }
    }
}
