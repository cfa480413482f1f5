import Core
import Crypto
import Foundation
import NodeSupport
import SwiftASN1
import X509

/// Who a certificate speaks for, written into it as a SAN URI.
package enum PeerIdentity: Hashable, Sendable, CustomStringConvertible {
    /// An edge node: `coalition://site/<site id>`.
    case site(SiteID)
    /// An operator of the `coalition admin` CLI: `coalition://operator/<name>`.
    case `operator`(String)
    /// The gateway itself: `coalition://gateway/<host>`.
    case gateway(String)
    /// The group's member app backend (a sales channel) calling `coalition.member.v1.Member`:
    /// `coalition://channel/<name>`.
    case channel(String)

    /// The SAN URI naming this identity.
    package var uri: String {
        switch self {
        case .site(let site): return "coalition://site/\(site)"
        case .operator(let name): return "coalition://operator/\(name)"
        case .gateway(let host): return "coalition://gateway/\(host)"
        case .channel(let name): return "coalition://channel/\(name)"
        }
    }

    package var description: String { uri }

    /// The identity a URI names, or nil for anything else.
    package init?(uri: String) {
        let prefix = "coalition://"
        guard uri.hasPrefix(prefix) else { return nil }
        let parts = uri.dropFirst(prefix.count).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[1].isEmpty, parts[1].count <= 64 else { return nil }
        let value = String(parts[1])
        switch parts[0] {
        case "site":
            guard let site = SiteID(value) else { return nil }
            self = .site(site)
        case "operator":
            guard PeerIdentity.isName(value) else { return nil }
            self = .operator(value)
        case "gateway":
            self = .gateway(value)
        case "channel":
            guard PeerIdentity.isName(value) else { return nil }
            self = .channel(value)
        default:
            return nil
        }
    }

    /// The one Coalition identity a certificate names, or nil when it names none or several.
    package init?(certificate: Certificate) {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        let identities = names.compactMap { name -> PeerIdentity? in
            if case .uniformResourceIdentifier(let uri) = name { return PeerIdentity(uri: uri) }
            return nil
        }
        guard identities.count == 1 else { return nil }
        self = identities[0]
    }

    /// Operator names: 1 to 64 characters of letters, digits, `.`, `_`, `-`.
    package static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 64
            && text.unicodeScalars.allSatisfy {
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || ".-_".unicodeScalars.contains($0))
            }
    }
}

/// The network's own certificate authority: makes the CA, and issues site, gateway and operator
/// certificates (P-256, ECDSA-SHA256). Development material is made with `coalition ca`; tests make
/// theirs in code. Production keys are never committed.
package struct CertificateAuthority: Sendable {
    package let certificate: Certificate
    package let privateKey: Certificate.PrivateKey

    /// How long issued certificates are valid by default (397 days).
    package static let leafValidityDays = 397
    /// How long the CA is valid (10 years).
    package static let caValidityDays = 3650

    /// A new CA named `name`, valid from `now`.
    package static func create(name: String = "Coalition development CA", now: Date = SystemWallClock().date) throws
        -> CertificateAuthority
    {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName {
            OrganizationName("Coalition")
            CommonName(name)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(Double(caValidityDays) * 86_400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: key)
        return CertificateAuthority(certificate: certificate, privateKey: key)
    }

    package init(certificate: Certificate, privateKey: Certificate.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// The CA certificate as PEM (what every node trusts).
    package var certificatePEM: String { get throws { try certificate.serializeAsPEM().pemString } }
    /// The CA key as PEM (keep it offline in production).
    package var privateKeyPEM: String { get throws { try privateKey.serializeAsPEM().pemString } }

    /// Loads a CA from PEM files.
    package init(certificatePEM: String, privateKeyPEM: String) throws {
        self.certificate = try Certificate(pemEncoded: certificatePEM)
        self.privateKey = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
    }

    /// An issued certificate and its key.
    package struct Issued: Sendable {
        package var certificate: Certificate
        package var privateKey: Certificate.PrivateKey

        package var certificatePEM: String { get throws { try certificate.serializeAsPEM().pemString } }
        package var privateKeyPEM: String { get throws { try privateKey.serializeAsPEM().pemString } }
        /// The serial number, as revocation lists name it.
        package var serial: String { certificate.serialNumber.description }
    }

    /// Issues a certificate for `identity`. A gateway certificate is for TLS servers and names its
    /// host as a DNS name (or IP address); site, operator and channel certificates are for TLS clients.
    package func issue(
        _ identity: PeerIdentity, now: Date = SystemWallClock().date,
        validityDays: Int = CertificateAuthority.leafValidityDays,
        notValidBefore: Date? = nil
    ) throws -> Issued {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        var names: [GeneralName] = [.uniformResourceIdentifier(identity.uri)]
        let usage: ExtendedKeyUsage
        switch identity {
        case .gateway(let host):
            if let address = Self.ipAddressBytes(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))))
            } else {
                names.append(.dnsName(host))
            }
            usage = try ExtendedKeyUsage([.serverAuth, .clientAuth])
        case .site, .operator, .channel:
            usage = try ExtendedKeyUsage([.clientAuth])
        }
        let subject = try DistinguishedName {
            OrganizationName("Coalition")
            CommonName(identity.uri)
        }
        let start = notValidBefore ?? now.addingTimeInterval(-300)
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey, notValidBefore: start,
            notValidAfter: start.addingTimeInterval(Double(validityDays) * 86_400), issuer: self.certificate.subject,
            subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                usage
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: privateKey)
        return Issued(certificate: certificate, privateKey: key)
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 literal, or nil for a host name.
    static func ipAddressBytes(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, let bytes = Optional(parts.compactMap { UInt8($0) }), bytes.count == 4 { return bytes }
        if host == "::1" { return Array(repeating: 0, count: 15) + [1] }
        return nil
    }
}
