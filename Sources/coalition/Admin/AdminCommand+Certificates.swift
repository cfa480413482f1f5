import ArgumentParser
import Foundation
import GRPCCore
import Wire

/// `coalition admin certificates revoke|list`: one certificate revoked by serial number.
extension AdminCommand {
    struct Certificates: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a certificate by serial number, and list the revoked ones.",
            subcommands: [Revoke.self, List.self])

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke one certificate (its holder is refused with CERTIFICATE_REVOKED).",
                discussion: "The serial is the one `coalition ca issue` printed (hexadecimal bytes with colons).")
            @OptionGroup var connection: Connection
            @Argument(help: "The certificate's serial number.") var serial: String
            @Option(help: "Why (1-200 characters); recorded with your operator name.") var reason: String

            func run() async throws {
                var request = Coalition_Ops_V1_RevokeCertificateRequest()
                request.requestID = "CERT-\(UUID().uuidString.prefix(12))"
                request.serial = serial
                request.reason = reason
                let response = try await connection.withOps { try await $0.revokeCertificate(request) }
                try connection.show(response) {
                    response.alreadyRevoked
                        ? "certificate \(response.certificate.serial) was already revoked by \(response.certificate.revokedBy): \(response.certificate.reason)"
                        : "certificate \(response.certificate.serial) revoked"
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "The revoked certificates, newest first.")
            @OptionGroup var connection: Connection

            func run() async throws {
                let response = try await connection.withOps {
                    try await $0.listRevokedCertificates(Coalition_Ops_V1_ListRevokedCertificatesRequest())
                }
                try connection.show(response) {
                    Table.render(
                        ["serial", "revoked at (UTC)", "by", "reason"],
                        response.certificates.map {
                            [
                                $0.serial,
                                Date(timeIntervalSince1970: Double($0.revokedAtMs) / 1_000).ISO8601Format(),
                                $0.revokedBy, $0.reason,
                            ]
                        })
                }
            }
        }
    }
}
