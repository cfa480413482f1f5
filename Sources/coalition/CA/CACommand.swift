import ArgumentParser
import Core
import Foundation
import Gateway
import NodeSupport
import Wire

/// `coalition ca …`: the network's own certificate authority (swift-certificates; no openssl).
struct CACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Make the network's CA, issue site, gateway, operator and channel certificates, and voucher keys.",
        subcommands: [Init.self, Issue.self, VoucherKey.self]
    )

    struct VoucherKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "voucher-key",
            abstract: "Make a voucher signing key (Ed25519): DIR/voucher-ID.key (mode 0600).",
            discussion:
                "The gateway signs the points mall's vouchers with it (voucher_key_file, voucher_key_id). To rotate, make a key with a new id and point the gateway at it: codes of the old id still verify."
        )

        @Option(help: "Where to write the key.") var dir: String
        @Option(help: "The key's id, 1 to 255, printed in every code it signs.") var id: Int = 1

        func run() async throws {
            guard (1...255).contains(id) else { throw ValidationError("--id: 1 to 255") }
            let path = URL(fileURLWithPath: dir).appendingPathComponent("voucher-\(id).key").path
            guard !FileManager.default.fileExists(atPath: path) else {
                throw CommandFailure("\(path) exists: a voucher key is never replaced under its id; make one with a new --id")
            }
            try PrivateFiles.write(VoucherSeal.newKeyText(), to: path)
            print("voucher key \(id) written to \(path)")
        }
    }

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a CA: DIR/ca.pem and DIR/ca.key (mode 0600).")

        @Option(help: "Where to write the CA.") var dir: String
        @Option(help: "The CA's common name.") var name: String = "Coalition development CA"
        @Flag(help: "Replace an existing CA in DIR.") var force = false

        func run() async throws {
            let url = URL(fileURLWithPath: dir)
            try PrivateFiles.folder(url.path)
            let certificate = url.appendingPathComponent("ca.pem")
            if FileManager.default.fileExists(atPath: certificate.path), !force {
                throw CommandFailure(
                    "\(certificate.path) exists; pass --force to replace the CA (every issued certificate stops working)"
                )
            }
            let ca = try CertificateAuthority.create(name: name)
            try Data(try ca.certificatePEM.utf8).write(to: certificate, options: .atomic)
            try PrivateFiles.write(try ca.privateKeyPEM, to: url.appendingPathComponent("ca.key").path)
            print("CA written to \(certificate.path) and \(url.appendingPathComponent("ca.key").path)")
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a certificate signed by DIR/ca.pem: NAME.pem and NAME.key in DIR.",
            discussion:
                "Either --role ROLE NAME (site, gateway, operator or channel) or exactly one of --site, --gateway, "
                + "--operator, --channel. The identity is written as a SAN URI (coalition://site/ID, …)."
        )

        @Option(help: "The CA's directory (ca.pem, ca.key); the certificate is written there too.") var dir: String
        @Option(help: "site, gateway, operator or channel, with the NAME argument.") var role: String?
        @Argument(help: "With --role: the site id, gateway host, operator name or channel name.") var name: String?
        @Option(help: "A site id: a certificate for that site's edge node.") var site: String?
        @Option(help: "A host name or IP address: the gateway's server certificate.") var gateway: String?
        @Option(help: "An operator's name: a certificate for `coalition admin`.") var `operator`: String?
        @Option(help: "A channel's name: a certificate for the member app backend (coalition.member.v1).")
        var channel: String?
        @Option(
            help: "The file name to write, without extension (default: the site id, gateway, operator-NAME or channel-NAME)."
        )
        var out: String?
        @Option(help: "Days of validity (1 to 3650).") var days: Int = CertificateAuthority.leafValidityDays

        /// The role and name asked for, from --role NAME or from one of the role options.
        private func chosen() throws -> (role: String, value: String) {
            let flags = [("site", site), ("gateway", gateway), ("operator", `operator`), ("channel", channel)]
                .compactMap { role, value in value.map { (role, $0) } }
            if let role {
                guard flags.isEmpty else { throw ValidationError("give either --role ROLE NAME or one role option") }
                guard ["site", "gateway", "operator", "channel"].contains(role) else {
                    throw ValidationError("--role: site, gateway, operator or channel (found '\(role.prefix(32))')")
                }
                guard let name else { throw ValidationError("--role \(role) needs the NAME argument") }
                return (role, name)
            }
            guard name == nil else { throw ValidationError("NAME is read only with --role") }
            guard flags.count == 1 else {
                throw ValidationError("give --role ROLE NAME, or exactly one of --site, --gateway, --operator, --channel")
            }
            return flags[0]
        }

        func run() async throws {
            guard (1...3650).contains(days) else { throw ValidationError("--days: 1 to 3650") }
            let (role, value) = try chosen()
            let identity: PeerIdentity
            let defaultName: String
            switch role {
            case "site":
                guard let id = SiteID(value) else { throw ValidationError("site: \(Slug.rule)") }
                identity = .site(id)
                defaultName = value
            case "gateway":
                guard !value.isEmpty, value.count <= 253 else {
                    throw ValidationError("gateway: a host name or IP address")
                }
                identity = .gateway(value)
                defaultName = "gateway"
            default:
                guard PeerIdentity.isName(value) else {
                    throw ValidationError("\(role): 1 to 64 letters, digits, '.', '_' or '-'")
                }
                identity = role == "channel" ? .channel(value) : .operator(value)
                defaultName = "\(role)-\(value)"
            }
            let url = URL(fileURLWithPath: dir)
            let ca: CertificateAuthority
            do {
                ca = try CertificateAuthority(
                    certificatePEM: String(contentsOf: url.appendingPathComponent("ca.pem"), encoding: .utf8),
                    privateKeyPEM: String(contentsOf: url.appendingPathComponent("ca.key"), encoding: .utf8))
            } catch {
                throw CommandFailure(
                    "cannot load the CA from \(dir) (run `coalition ca init --dir \(dir)` first): \(error)")
            }
            let issued = try ca.issue(identity, validityDays: days)
            let name = out ?? defaultName
            try Data(try issued.certificatePEM.utf8).write(to: url.appendingPathComponent("\(name).pem"), options: .atomic)
            try PrivateFiles.write(try issued.privateKeyPEM, to: url.appendingPathComponent("\(name).key").path)
            print("\(identity.uri): \(url.appendingPathComponent("\(name).pem").path), serial \(issued.serial)")
        }
    }
}

/// Writing key material with the right permissions.
