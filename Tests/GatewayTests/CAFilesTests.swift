// Goal (issue #12, item 7): `coalition ca init` and `ca issue`, run as the real binary, leave the
// CA's folder private (0700) and every private key readable by its owner only (0600), the key
// created so from its first byte (a temporary file renamed into place, never a file chmod-ed after
// it was written); a node refuses to start with a private key, the phone-hash key or its database
// (the edge's holds the terminal tokens) readable by others, naming the file and the fix; and the
// databases (with their WAL and shared-memory files) are created 0600.
import Foundation
import Gateway
import SwiftASN1
import TestSupport
import Testing
import X509

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Certificate authority files")
struct CAFilesTests {
    private func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test("ca init and ca issue write a private folder and owner-only keys")
    func privateKeys() async throws {
        let directory = try TemporaryDirectory()
        let folder = directory.path("certs")
        _ = try await Binary.run(["ca", "init", "--dir", folder])
        _ = try await Binary.run(["ca", "issue", "--dir", folder, "--site", "mall-01"])
        _ = try await Binary.run(["ca", "issue", "--dir", folder, "--operator", "alice"])
        let channel = try await Binary.run(["ca", "issue", "--dir", folder, "--role", "channel", "member-app"])
        #expect(channel.contains("coalition://channel/member-app"))
        #expect(try mode(folder) == 0o700)
        for key in ["ca.key", "mall-01.key", "operator-alice.key", "channel-member-app.key"] {
            #expect(try mode(folder + "/" + key) == 0o600, "\(key)")
        }
        // The channel certificate names its role, and nothing else.
        let pem = try String(contentsOfFile: folder + "/channel-member-app.pem", encoding: .utf8)
        let certificate = try Certificate(pemEncoded: pem)
        #expect(PeerIdentity(certificate: certificate) == .channel("member-app"))
        // A role and a role option together, or an unknown role, are refused.
        await #expect(throws: (any Error).self) {
            _ = try await Binary.run(["ca", "issue", "--dir", folder, "--role", "channel", "x", "--site", "mall-01"])
        }
        await #expect(throws: (any Error).self) {
            _ = try await Binary.run(["ca", "issue", "--dir", folder, "--role", "king", "x"])
        }
        // No temporary file is left behind.
        let left = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".tmp") }
        #expect(left.isEmpty)
    }

    @Test("a node refuses to start with a key or database others can read; databases are created 0600")
    func refuseReadableSecrets() async throws {
        let directory = try TemporaryDirectory()
        let folder = directory.path("certs")
        _ = try await Binary.run(["ca", "init", "--dir", folder])
        _ = try await Binary.run(["ca", "issue", "--dir", folder, "--site", "mall-01"])
        _ = try await Binary.run(["ca", "issue", "--dir", folder, "--gateway", "127.0.0.1"])
        let phoneKey = directory.path("phone.key")
        let edgeConfig = try Network.edgeConfigFile(
            directory.url.path, gatewayAddress: "127.0.0.1:1", certificates: "certs")
        let gatewayConfig = try Network.gatewayConfigFile(directory.url.path, certificates: "certs")

        /// Starts `node`, which must refuse at once naming `file` and the fix.
        func refused(_ node: String, _ config: String, naming file: String) async throws {
            let binary = try #require(Binary.path)
            let outcome = try await ChildProcess.run(binary, [node, "serve", "--config", config])
            #expect(outcome.status != 0, "\(node) started with \(file) readable by others")
            #expect(outcome.errors.contains(file) && outcome.errors.contains("chmod 600"), "\(outcome.errors)")
        }
        // Each secret in turn made readable by others.
        for (node, config, file) in [
            ("edge", edgeConfig, phoneKey), ("edge", edgeConfig, folder + "/mall-01.key"),
            ("gateway", gatewayConfig, folder + "/gateway.key"),
        ] {
            chmod(file, 0o644)
            try await refused(node, config, naming: file)
            chmod(file, 0o600)
        }
        // A terminal added creates the edge's database 0600, with its WAL and shared memory.
        _ = try await Binary.run(["edge", "terminal", "add", "--config", edgeConfig, "--merchant", "mall-fashion"])
        for file in ["mall-01.sqlite", "mall-01.sqlite-wal", "mall-01.sqlite-shm"]
        where FileManager.default.fileExists(atPath: directory.path(file)) {
            #expect(try mode(directory.path(file)) == 0o600, "\(file)")
        }
        #expect(try mode(directory.path("mall-01.sqlite")) == 0o600)
        chmod(directory.path("mall-01.sqlite"), 0o644)
        try await refused("edge", edgeConfig, naming: directory.path("mall-01.sqlite"))
        chmod(directory.path("mall-01.sqlite"), 0o600)
        // The gateway's database too, created by its first start.
        let gateway = try EdgeProcess(config: gatewayConfig, directory: directory.url.path, node: "gateway")
        _ = try await gateway.port()
        #expect(try mode(directory.path("gateway.sqlite")) == 0o600)
        gateway.signal(SIGTERM)
        #expect(try await gateway.waitForExit() == 0)
        chmod(directory.path("gateway.sqlite"), 0o640)
        try await refused("gateway", gatewayConfig, naming: directory.path("gateway.sqlite"))
    }
}

/// #14 item 19: a vendor with only the binary can make the development certificates.
@Suite("Development certificates script")
struct DevCertificatesScriptTests {
    @Test("scripts/make-dev-certs.sh uses the coalition binary it is given, without a Swift toolchain")
    func usesGivenBinary() async throws {
        let directory = try TemporaryDirectory()
        let binary = try #require(Binary.path)
        let outcome = try await ChildProcess.run(
            "/usr/bin/env",
            [
                "COALITION=\(binary)", "PATH=/usr/bin:/bin", "bash",
                Repository.root.appendingPathComponent("scripts/make-dev-certs.sh").path, directory.path("certs"),
            ])
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(outcome.errors.contains("made with \(binary)"))
        for file in ["ca.pem", "gateway.pem", "mall-01.pem", "office-01.key", "operator-alice.pem"] {
            #expect(FileManager.default.fileExists(atPath: directory.path("certs/\(file)")), "\(file)")
        }
    }
}
