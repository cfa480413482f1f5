import Core
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NodeSupport
import SwiftProtobuf
import Wire
import X509

/// `coalition.sync.v1.Sync` over mutual TLS: every call is bound to the site its client
/// certificate names. A call without a certificate, with a certificate naming no site, a revoked
/// certificate or a revoked site is refused before anything is read or written.
package struct SyncService<Store: SyncLedger & AllowanceLedger & PromotionQuotaLedger>: Coalition_Sync_V1_Sync
        .ServiceProtocol
{
    /// The protocol version this gateway speaks.
    package static var protocolVersion: UInt32 { 1 }
    /// The largest outbox sequence a push may carry (2^62: a site writing a million transactions a
    /// second would reach it in 146,000 years); larger ones are refused, so no arithmetic on a
    /// sequence can overflow.
    package static var sequenceMax: UInt64 { 1 << 62 }

    private let store: Store
    private let limits: GatewayLimits
    private let logger: Logger
    private let peers: SitePeerResolver
    private let refusals: RefusalRecorder

    /// A service naming each caller by `peers` (mutual TLS unless a test links edges in process);
    /// callers refused for who they are go to `refusals`.
    package init(
        store: Store, limits: GatewayLimits, logger: Logger, peers: SitePeerResolver = .mutualTLS,
        refusals: RefusalRecorder? = nil
    ) {
        self.store = store
        self.limits = limits
        self.logger = logger
        self.peers = peers
        self.refusals = refusals ?? .logging(logger)
    }
}

/// The caller of a sync call: the site its credential names and the credential's serial number
/// (checked against the revocation list).
package struct SitePeer: Sendable {
    package let identity: PeerIdentity
    package let serial: String

    package init(identity: PeerIdentity, serial: String) {
        self.identity = identity
        self.serial = serial
    }
}

/// How a sync call's caller is named. Production reads the verified client certificate of the
/// TLS connection; the deterministic simulation, whose edges call in process, names a fixed site.
package struct SitePeerResolver: Sendable {
    package let resolve: @Sendable (ServerContext) throws -> SitePeer

    package init(resolve: @escaping @Sendable (ServerContext) throws -> SitePeer) {
        self.resolve = resolve
    }

    /// The verified client certificate of the mutual-TLS connection. The transport hides errors
    /// while reading the peer certificate; no certificate must mean refusal, never a default
    /// identity.
    package static let mutualTLS = SitePeerResolver { context in
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = transport.peerCertificate
        else {
            throw ServiceError(
                .unauthenticated, "a client certificate issued by the network's CA is required",
                reason: "NO_CERTIFICATE")
        }
        guard let identity = PeerIdentity(certificate: certificate) else {
            throw ServiceError(.permissionDenied, "the client certificate does not name a site", reason: "NOT_A_SITE")
        }
        return SitePeer(identity: identity, serial: certificate.serialNumber.description)
    }
}

extension SyncService {
    package func push(
        request: ServerRequest<Coalition_Sync_V1_PushRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Sync_V1_PushResponse> {
        try await handle(request, context) { site, message in
            try Self.checkVersion(message.protocolVersion)
            let batch = message.transactions
            guard !batch.isEmpty else { throw ServiceError.invalid("transactions", "at least one transaction") }
            guard batch.count <= limits.pushTransactionsMax else {
                throw ServiceError(
                    .resourceExhausted,
                    "transactions: at most \(limits.pushTransactionsMax) per push (found \(batch.count))")
            }
            let bytes = batch.reduce(0) { $0 + $1.payload.count }
            guard bytes <= limits.pushBytesMax else {
                throw ServiceError(
                    .resourceExhausted,
                    "transactions: at most \(limits.pushBytesMax) payload bytes per push (found \(bytes))")
            }
            guard Timestamp.wireRange.contains(message.sentAtMs) else {
                throw ServiceError.invalid(
                    "sent_at_ms", "must be between 0 and 253402300799999 (found \(message.sentAtMs))")
            }
            for (index, transaction) in batch.enumerated() {
                guard (1...Self.sequenceMax).contains(transaction.sequence) else {
                    throw ServiceError.invalid(
                        "transactions[\(index)].sequence", "must be between 1 and 2^62 (found \(transaction.sequence))")
                }
                guard index == 0 || transaction.sequence == batch[index - 1].sequence + 1 else {
                    throw ServiceError.invalid(
                        "transactions[\(index)].sequence", "sequences must be contiguous and ascending from 1")
                }
                guard TransactionID(transaction.transactionID) != nil else {
                    throw ServiceError.invalid(
                        "transactions[\(index)].transaction_id", "must be a 26-character transaction id")
                }
                guard transaction.previousHash.count == 32 else {
                    throw ServiceError.invalid("transactions[\(index)].previous_hash", "must be 32 bytes")
                }
            }
            // Each payload is decoded once, here. A site speaks only for its own merchants: a batch
            // naming another site's merchant is refused whole, before anything is written.
            let program = store.programs.latest?.program
            var items: [PushItem] = []
            items.reserveCapacity(batch.count)
            for (index, transaction) in batch.enumerated() {
                let local = try? Coalition_Sync_V1_LocalTransaction(serializedBytes: transaction.payload)
                if let local, let program {
                    guard let merchant = MerchantID(local.merchantID), let owner = program.merchant(merchant),
                        owner.site.id == site
                    else {
                        throw ServiceError(
                            .permissionDenied,
                            "transactions[\(index)]: merchant '\(local.merchantID.prefix(64))' is not at site '\(site)'",
                            reason: "WRONG_SITE")
                    }
                }
                items.append(
                    PushItem(
                        sequence: Int64(clamping: transaction.sequence), transactionID: transaction.transactionID,
                        previousHash: transaction.previousHash, payload: transaction.payload,
                        occurredAtMilliseconds: transaction.occurredAtMs,
                        pushed: PushedTransaction(
                            sequence: Int64(clamping: transaction.sequence), transactionID: transaction.transactionID,
                            local: local)))
            }
            let outcome: PushOutcome
            do {
                outcome = try await store.push(
                    site: site, batch: items, exposure: Points(max(0, message.unsyncedExposurePoints)),
                    sentAt: Timestamp(milliseconds: message.sentAtMs))
            } catch let refusal as SyncRefusal {
                logger.error("push refused", metadata: ["site.id": "\(site)", "reason": "\(refusal.message)"])
                throw ServiceError(.failedPrecondition, refusal.message, reason: refusal.reason)
            } catch let refusal as GroupCommitRefusal {
                throw ServiceError(.resourceExhausted, "the gateway's writer cannot take the push now: \(refusal)")
            }
            var response = Coalition_Sync_V1_PushResponse()
            response.highWaterMark = UInt64(outcome.highWaterMark)
            response.results = outcome.results.map { pushed in
                var result = Coalition_Sync_V1_TransactionResult()
                result.sequence = UInt64(pushed.sequence)
                result.transactionID = pushed.transactionID
                switch pushed.result.outcome {
                case .posted: result.outcome = .posted
                case .postedWithConflict: result.outcome = .postedWithConflict
                case .rejected: result.outcome = .rejected
                }
                result.reason = pushed.result.reason
                result.postedPoints = pushed.result.points.value
                return result
            }
            switch outcome.status {
            case .applied: response.status = .applied
            case .alreadyApplied: response.status = .alreadyApplied
            case .resendFrom(let sequence):
                response.status = .resendFrom
                response.resendFromSequence = UInt64(sequence)
            }
            logger.debug(
                "push",
                metadata: [
                    "site.id": "\(site)", "push.count": "\(batch.count)",
                    "push.high_water_mark": "\(outcome.highWaterMark)",
                ])
            return response
        }
    }

    package func pull(
        request: ServerRequest<Coalition_Sync_V1_PullRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Sync_V1_PullResponse> {
        try await handle(request, context) { site, message in
            try Self.checkVersion(message.protocolVersion)
            let size = message.pageSize == 0 ? min(500, limits.pullPageMax) : Int(message.pageSize)
            guard (1...limits.pullPageMax).contains(size) else {
                throw ServiceError.invalid("page_size", "must be 0 (default 500) or 1 to \(limits.pullPageMax)")
            }
            guard message.cursor <= UInt64(Int64.max) else { throw ServiceError.invalid("cursor", "out of range") }
            var page = try await store.pull(site: site, cursor: Int64(message.cursor), pageSize: size)
            // The last page carries the site's promotion quotas, issued now (docs/protocol.md,
            // "Promotion quotas").
            if !page.hasMore {
                page.quotas = try await store.issuePromotionQuotas(
                    site: site, heldIssue: Int64(clamping: message.promotionQuotaIssue),
                    appliedAt: Int64(clamping: message.promotionQuotaAppliedSequence))
            }
            // Everything the site had when it asked has been applied: evidence for the reclaim job.
            if message.sentAtMs > 0, message.outboxHeadSequence <= UInt64(max(0, page.siteHighWaterMark)),
                Timestamp.wireRange.contains(message.sentAtMs)
            {
                try await store.recordCaughtUp(site: site, sentAt: Timestamp(milliseconds: message.sentAtMs))
            }
            return Coalition_Sync_V1_PullResponse(page)
        }
    }

    package func requestAllowance(
        request: ServerRequest<Coalition_Sync_V1_RequestAllowanceRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Sync_V1_RequestAllowanceResponse> {
        try await handle(request, context) { site, message in
            try Self.checkVersion(message.protocolVersion)
            let (requestID, member) = try Self.request(message.requestID, member: message.memberID)
            guard let trigger = AllowanceTrigger(rawValue: message.trigger), trigger != .operatorOnly else {
                throw ServiceError.invalid(
                    "trigger", "\"entry\" or \"check_in\" (found '\(message.trigger.prefix(32))')")
            }
            let grant: AllowanceGrant
            do {
                grant = try await store.grantAllowance(
                    AllowanceGrantCommand(site: site, member: member, trigger: trigger, requestID: requestID))
            } catch let refusal as AllowanceLedgerRefusal {
                throw ServiceError(refusal)
            }
            var response = Coalition_Sync_V1_RequestAllowanceResponse()
            response.allowanceID = grant.record.allowanceID
            response.points = grant.record.left.value
            response.stopAtMs =
                (store.programs.latest?.program.allowances ?? .none)
                .edgeStop(leaseUntil: grant.record.leaseUntil).milliseconds
            response.position = UInt64(max(0, grant.position))
            response.alreadyGranted = grant.alreadyGranted
            return response
        }
    }

    package func authorizeRedeem(
        request: ServerRequest<Coalition_Sync_V1_AuthorizeRedeemRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Sync_V1_AuthorizeRedeemResponse> {
        try await handle(request, context) { site, message in
            try Self.checkVersion(message.protocolVersion)
            let (requestID, member) = try Self.request(message.requestID, member: message.memberID)
            guard let merchant = MerchantID(message.merchantID),
                let owner = store.programs.latest?.program.merchant(merchant), owner.site.id == site
            else {
                throw ServiceError(
                    .permissionDenied,
                    "merchant_id: '\(message.merchantID.prefix(64))' is not a merchant of site '\(site)'",
                    reason: "WRONG_SITE")
            }
            guard let transaction = TransactionID(message.transactionID) else {
                throw ServiceError.invalid("transaction_id", "must be a 26-character transaction id")
            }
            guard message.points > 0, message.points <= 1_000_000_000_000 else {
                throw ServiceError.invalid("points", "must be between 1 and 10^12 (found \(message.points))")
            }
            do {
                return Coalition_Sync_V1_AuthorizeRedeemResponse(
                    try await store.authorize(
                        site: site,
                        request: AuthorizeCommand(
                            requestID: requestID, member: member, merchant: merchant, points: Points(message.points),
                            transaction: transaction,
                            unacknowledged: Points(
                                min(max(message.unacknowledgedPoints, -1_000_000_000_000), 1_000_000_000_000)),
                            acknowledgedSequence: Int64(min(message.acknowledgedSequence, UInt64(Int64.max))))))
            } catch let refusal as SyncRefusal {
                throw ServiceError(.failedPrecondition, refusal.message, reason: refusal.reason)
            }
        }
    }

    package func releaseHold(
        request: ServerRequest<Coalition_Sync_V1_ReleaseHoldRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Sync_V1_ReleaseHoldResponse> {
        try await handle(request, context) { site, message in
            try Self.checkVersion(message.protocolVersion)
            guard !message.holdID.isEmpty, message.holdID.count <= 64 else {
                throw ServiceError.invalid("hold_id", "1 to 64 characters")
            }
            var response = Coalition_Sync_V1_ReleaseHoldResponse()
            response.released = try await store.release(site: site, hold: message.holdID)
            return response
        }
    }

    package func recover(
        request: ServerRequest<Coalition_Sync_V1_RecoverRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Sync_V1_RecoverResponse> {
        try await handle(request, context) { site, message in
            try Self.checkVersion(message.protocolVersion)
            guard message.fromSequence >= 1, message.fromSequence <= UInt64(Int64.max) else {
                throw ServiceError.invalid("from_sequence", "must be at least 1")
            }
            let count = message.maxCount == 0 ? min(500, limits.recoverPageMax) : Int(message.maxCount)
            guard (1...limits.recoverPageMax).contains(count) else {
                throw ServiceError.invalid("max_count", "must be 0 (default 500) or 1 to \(limits.recoverPageMax)")
            }
            return Coalition_Sync_V1_RecoverResponse(
                try await store.recover(site: site, from: Int64(message.fromSequence), count: count))
        }
    }

    /// A call's request id and member id, checked.
    private static func request(_ requestID: String, member: String) throws -> (RequestID, MemberID) {
        guard let request = RequestID(requestID) else { throw ServiceError.invalid("request_id", RequestID.rule) }
        guard let member = MemberID(member) else {
            throw ServiceError.invalid("member_id", "must be a 26-character member id")
        }
        return (request, member)
    }

    private static func checkVersion(_ version: UInt32) throws {
        guard version == protocolVersion else {
            throw ServiceError(
                .failedPrecondition, "protocol_version: this gateway speaks version \(protocolVersion), not \(version)",
                reason: "UNSUPPORTED_PROTOCOL")
        }
    }

    /// Binds the call to the site of its client certificate, then runs the body with every error
    /// mapped to an explicit status.
    private func handle<Input: Sendable, Output: Sendable>(
        _ request: ServerRequest<Input>, _ context: ServerContext, _ body: (SiteID, Input) async throws -> Output
    ) async throws -> ServerResponse<Output> {
        try await ServiceError.mapping {
            do {
                let site = try await identify(context)
                return ServerResponse(message: try await body(site, request.message))
            } catch let error as ServiceError where RefusalRecorder.refusesCaller(error) {
                await refusals.record(error, service: "sync", context: context)
                throw error
            }
        }
    }

    private func identify(_ context: ServerContext) async throws -> SiteID {
        let peer = try peers.resolve(context)
        guard case .site(let site) = peer.identity else {
            throw ServiceError(.permissionDenied, "the client certificate does not name a site", reason: "NOT_A_SITE")
        }
        if try await store.isRevoked(serial: peer.serial) {
            throw ServiceError(
                .permissionDenied, "the client certificate has been revoked", reason: "CERTIFICATE_REVOKED")
        }
        guard let record = try await store.siteStatus(site) else {
            throw ServiceError(.permissionDenied, "site '\(site)' is not in the program", reason: "SITE_UNKNOWN")
        }
        guard !record.revoked else {
            throw ServiceError(.permissionDenied, "site '\(site)' is revoked", reason: "SITE_REVOKED")
        }
        return site
    }
}
