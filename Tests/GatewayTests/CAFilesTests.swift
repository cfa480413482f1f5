// Goal (issue #12, item 7, first part): `coalition ca init` and `ca issue`, run as the real binary,
// leave the CA's folder private (0700) and every private key readable by its owner only (0600),
// the key created so from its first byte (a temporary file renamed into place, never a file
// chmod-ed after it was written).
import Foundation
import TestSupport
import Testing

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
        #expect(try mode(folder) == 0o700)
        for key in ["ca.key", "mall-01.key", "operator-alice.key"] {
            #expect(try mode(folder + "/" + key) == 0o600, "\(key)")
        }
        // No temporary file is left behind.
        let left = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".tmp") }
        #expect(left.isEmpty)
    }
}
