import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwiftProtobuf
import Synchronization
import Wire

/// The edge's side of sync (DESIGN §5): a push loop sending the outbox in bounded batches, a pull
/// loop applying the gateway's changes page by page, online authorisation with a deadline, and
/// recovery of the site's own transactions into a lost or old database.
///
/// Every failure is retried with bounded exponential backoff; the loops never wait for a new local
/// write to resume.
package final class SyncClient: Sendable {
    let link: GatewayLink
    let site: SiteID
    let database: EdgeDatabase
    let clock: any WallClock
    /// What the retry loops wait with (a test may pass a clock of its own).
    let sleeper: any Clock<Duration>
    let logger: Logger
    let clients: [GRPCClient<HTTP2ClientTransport.Posix>]
    let sync: SyncCalls
    let program: @Sendable () -> ActiveProgram
    let activate: @Sendable (ActiveProgram) -> Void

    /// A client over mutual TLS to the gateway the link names.
    package convenience init(
        link: GatewayLink, site: SiteID, database: EdgeDatabase, clock: any WallClock,
        sleeper: any Clock<Duration> = ContinuousClock(), logger: Logger,
        program: @escaping @Sendable () -> ActiveProgram, activate: @escaping @Sendable (ActiveProgram) -> Void
    ) throws {
        let ca = link.caCertificatePath
        // One client per gateway address; calls move to the next one when the link fails.
        let clients = try link.addresses.map { address in
            GRPCClient(
                transport: try .http2NIOPosix(
                    target: Self.target(host: address.host, port: address.port),
                    transportSecurity: .mTLS(
                        certificateChain: [.file(path: link.certificatePath, format: .pem)],
                        privateKey: .file(path: link.privateKeyPath, format: .pem)
                    ) { tls in
                        tls.trustRoots = .certificates([.file(path: ca, format: .pem)])
                    }))
        }
        self.init(
            link: link, site: site, database: database, clock: clock, sleeper: sleeper, logger: logger,
            program: program, activate: activate,
            calls: SyncCalls.failover(clients.map { SyncCalls(client: Coalition_Sync_V1_Sync.Client(wrapping: $0)) }),
            connections: clients)
    }

    /// A client making its calls through `calls` (the simulation's in-process link); `connections`
    /// are the gRPC clients whose connections `runConnections()` runs, if any.
    package init(
        link: GatewayLink, site: SiteID, database: EdgeDatabase, clock: any WallClock,
        sleeper: any Clock<Duration> = ContinuousClock(), logger: Logger,
        program: @escaping @Sendable () -> ActiveProgram, activate: @escaping @Sendable (ActiveProgram) -> Void,
        calls: SyncCalls, connections: [GRPCClient<HTTP2ClientTransport.Posix>] = []
    ) {
        self.link = link
        self.site = site
        self.database = database
        self.clock = clock
        self.sleeper = sleeper
        self.logger = logger
        self.program = program
        self.activate = activate
        self.sync = calls
        self.clients = connections
    }

    /// IP literals are dialled as addresses (no SNI; the gateway certificate carries the IP);
    /// names through DNS (SNI and certificate verification use the name).
    static func target(host: String, port: Int) -> any ResolvableTarget {
        if host.contains(":") { return .ipv6(address: host, port: port) }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) { return .ipv4(address: host, port: port) }
        return .dns(host: host, port: port)
    }

    /// Runs the clients' connections until `shutDown()` or cancellation.
    package func runConnections() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for client in clients {
                group.addTask { try await client.runConnections() }
            }
        }
    }

    package func shutDown() {
        for client in clients { client.beginGracefulShutdown() }
    }

    func options(_ milliseconds: Int) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = .milliseconds(milliseconds)
        return options
    }

    // MARK: Online authorisation

    /// The authoriser for the edge's redemptions: the gateway's answer within the deadline, else
    /// `.unavailable` (the offline steps decide).
    package var authorizer: RedeemAuthorizer {
        RedeemAuthorizer(
            authorize: { [sync, link, logger] request in
                var message = Coalition_Sync_V1_AuthorizeRedeemRequest()
                message.protocolVersion = 1
                message.requestID = request.requestID.rawValue
                message.memberID = request.member.description
                message.merchantID = request.merchant.rawValue
                message.points = request.points.value
                message.transactionID = request.transaction.description
                message.unacknowledgedPoints = request.unacknowledged.points.value
                message.acknowledgedSequence = UInt64(max(0, request.unacknowledged.afterSequence))
                var options = CallOptions.defaults
                options.timeout = .milliseconds(link.authorizeDeadlineMilliseconds)
                // A link known to be down fails at once instead of holding the till for the deadline.
                options.waitForReady = false
                do {
                    let response = try await sync.authorizeRedeem(message, options)
                    if response.approved { return .approved(holdID: response.holdID) }
                    // A member the centre has not heard of yet is decided offline.
                    if response.reason == .unknownMember { return .unavailable }
                    return .declined(
                        .insufficientPoints,
                        response.message.isEmpty ? "The centre declined the redemption." : response.message)
                } catch {
                    logger.debug("online authorisation unavailable", metadata: ["error": "\(error)"])
                    return .unavailable
                }
            },
            release: { [sync, link, logger] hold in
                var message = Coalition_Sync_V1_ReleaseHoldRequest()
                message.protocolVersion = 1
                message.holdID = hold
                var options = CallOptions.defaults
                options.timeout = .milliseconds(link.callTimeoutMilliseconds)
                do {
                    _ = try await sync.releaseHold(message, options)
                } catch {
                    // The hold then expires on its own at the gateway (limits.hold_ms).
                    logger.notice("could not release a hold", metadata: ["hold": "\(hold)", "error": "\(error)"])
                }
            },
            requestAllowance: { [sync, link] ask in
                var message = Coalition_Sync_V1_RequestAllowanceRequest()
                message.protocolVersion = 1
                message.requestID = ask.requestID.rawValue
                message.memberID = ask.member.description
                message.trigger = ask.trigger.rawValue
                var options = CallOptions.defaults
                options.timeout = .milliseconds(link.authorizeDeadlineMilliseconds)
                options.waitForReady = false
                do {
                    return try await sync.requestAllowance(message, options)
                } catch let error as RPCError
                    where [.unavailable, .deadlineExceeded, .unimplemented, .cancelled].contains(error.code)
                {
                    throw ServiceError(
                        .unavailable, "the centre cannot be reached: no allowance can be granted offline",
                        reason: "OFFLINE")
                } catch let error as RPCError {
                    // The gateway's refusal, passed on as it said it.
                    throw ServiceError(
                        error.code, error.message,
                        reason: error.metadata[stringValues: ServiceError.reasonKey].first(where: { _ in true }))
                }
            })
    }
}
