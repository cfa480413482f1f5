import GRPCCore
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

    package init(
        push: @escaping Call<Coalition_Sync_V1_PushRequest, Coalition_Sync_V1_PushResponse>,
        pull: @escaping Call<Coalition_Sync_V1_PullRequest, Coalition_Sync_V1_PullResponse>,
        authorizeRedeem:
            @escaping Call<Coalition_Sync_V1_AuthorizeRedeemRequest, Coalition_Sync_V1_AuthorizeRedeemResponse>,
        releaseHold: @escaping Call<Coalition_Sync_V1_ReleaseHoldRequest, Coalition_Sync_V1_ReleaseHoldResponse>,
        recover: @escaping Call<Coalition_Sync_V1_RecoverRequest, Coalition_Sync_V1_RecoverResponse>
    ) {
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
            recover: { try await client.recover($0, options: $1) })
    }
}
