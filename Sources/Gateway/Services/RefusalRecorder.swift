import Core
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization
import Wire
import X509

/// Calls refused for who the caller is (a site certificate naming another site's merchant, an
/// unknown CA, a revoked certificate or site, a site calling Ops): each is logged at warning with
/// the peer and the reason, counted by kind, and kept in the ledger for `coalition admin audit`
/// (at most `limits.refused_calls_per_minute_max` writes a minute: a flood is counted, not
/// written).
package final class RefusalRecorder: Sendable {
    private struct State {
        var counts: [String: Int64] = [:]
        var windowStart: Int64 = .min
        var written = 0
        var unwritten: Int64 = 0
    }

    private let logger: Logger
    private let now: @Sendable () -> Timestamp
    private let perMinuteMax: Int
    private let write: (@Sendable (RefusedCall) async throws -> Void)?
    private let state = Mutex(State())

    package init(
        logger: Logger, now: @escaping @Sendable () -> Timestamp, perMinuteMax: Int,
        write: (@Sendable (RefusedCall) async throws -> Void)?
    ) {
        self.logger = logger
        self.now = now
        self.perMinuteMax = perMinuteMax
        self.write = write
    }

    /// A recorder that logs and counts only (a service built without a ledger to keep them in).
    package static func logging(_ logger: Logger) -> RefusalRecorder {
        RefusalRecorder(logger: logger, now: { Timestamp(milliseconds: 0) }, perMinuteMax: 0, write: nil)
    }

    /// Refusals since the gateway started, by kind.
    package var counts: [String: Int64] { state.withLock { $0.counts } }

    /// Refusals logged and counted but not written, over the per-minute bound.
    package var unwritten: Int64 { state.withLock { $0.unwritten } }

    package func record(
        service: String, method: String, peer: String, address: String, kind: String, reason: String
    ) async {
        let call = RefusedCall(
            at: now(), service: service, method: method, peer: peer, address: address, kind: kind, reason: reason)
        logger.warning(
            "call refused",
            metadata: [
                "service": "\(service)", "method": "\(method)", "peer": "\(peer)", "address": "\(address)",
                "kind": "\(kind)", "reason": "\(reason)",
            ])
        let admitted = state.withLock { state -> Bool in
            state.counts[kind, default: 0] += 1
            let minute = call.at.milliseconds / Timestamp.minute
            if minute != state.windowStart {
                state.windowStart = minute
                state.written = 0
            }
            guard state.written < perMinuteMax else {
                state.unwritten += 1
                return false
            }
            state.written += 1
            return true
        }
        guard admitted, let write else { return }
        do {
            try await write(call)
        } catch {
            logger.error("a refused call could not be kept in the ledger", metadata: ["error": "\(error)"])
        }
    }

    /// Records a refusal a service is about to answer (PERMISSION_DENIED or UNAUTHENTICATED),
    /// naming the caller by its certificate.
    package func record(_ error: ServiceError, service: String, context: ServerContext) async {
        await record(
            service: service, method: "\(context.descriptor.service)/\(context.descriptor.method)",
            peer: Self.peer(context), address: context.remotePeer, kind: error.reason ?? "REFUSED",
            reason: error.rpcErrorMessage)
    }

    /// Whether an error refuses the caller for who it is.
    package static func refusesCaller(_ error: ServiceError) -> Bool {
        error.rpcErrorCode == .permissionDenied || error.rpcErrorCode == .unauthenticated
    }

    /// The caller as its client certificate names it (identity and serial), or why it cannot.
    static func peer(_ context: ServerContext) -> String {
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = transport.peerCertificate
        else { return "no certificate" }
        let name = PeerIdentity(certificate: certificate).map { "\($0)" } ?? "\(certificate.subject)"
        return "\(name) (serial \(certificate.serialNumber))"
    }
}
