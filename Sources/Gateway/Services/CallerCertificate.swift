import GRPCCore
import GRPCNIOTransportHTTP2
import Wire
import X509

/// Who a call of the Ops or Member service comes from: the identity its client certificate names,
/// of the one role the service accepts, and not revoked.
enum CallerCertificate {
    /// The name `accept` reads from the caller's certificate identity (an operator's, a channel's).
    /// Throws UNAUTHENTICATED without a certificate, PERMISSION_DENIED (`NOT_AN_<ROLE>`) for a
    /// certificate of another role, and PERMISSION_DENIED (`CERTIFICATE_REVOKED`) for a revoked one.
    static func require(
        _ context: ServerContext, role: String, calls: String, isRevoked: (String) async throws -> Bool,
        accept: (PeerIdentity) -> String?
    ) async throws -> String {
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = transport.peerCertificate
        else {
            throw ServiceError(
                .unauthenticated, "a certificate of the role \(role) issued by the network's CA is required",
                reason: "NO_CERTIFICATE")
        }
        guard let name = PeerIdentity(certificate: certificate).flatMap(accept) else {
            let article = "aeiou".contains(role.first ?? "x") ? "an" : "a"
            throw ServiceError(
                .permissionDenied, "\(calls) calls need \(article) \(role) certificate",
                reason: "NOT_\(article.uppercased())_\(role.uppercased())")
        }
        if try await isRevoked(certificate.serialNumber.description) {
            throw ServiceError(
                .permissionDenied, "the \(role) certificate has been revoked", reason: "CERTIFICATE_REVOKED")
        }
        return name
    }
}
