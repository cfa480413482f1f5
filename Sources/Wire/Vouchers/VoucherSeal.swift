import Core
import Crypto
import Foundation

/// The network's voucher keys: Ed25519 (swift-crypto). The gateway signs a voucher's claim with
/// its current private key; any edge verifies a code with the public keys it pulled, by the key id
/// the code names, so keys can rotate while older vouchers stay valid.
package enum VoucherSeal {
    /// The code of `claim`, signed with `key` (whose id the claim names).
    package static func sign(_ claim: VoucherClaim, with key: Curve25519.Signing.PrivateKey) throws -> VoucherCode {
        let signature = try key.signature(for: claim.signedBytes)
        return VoucherCode(claim: claim, signature: Array(signature))
    }

    /// Whether `code` was signed by the key of its id among `keys` (raw 32-byte public keys).
    package static func verify(_ code: VoucherCode, keys: [UInt8: [UInt8]]) -> Bool {
        guard let raw = keys[code.claim.keyID],
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { return false }
        return key.isValidSignature(code.signature, for: code.claim.signedBytes)
    }

    /// A new private key, as the hex text of its 32 raw bytes (a voucher key file's content).
    package static func newKeyText() -> String {
        Curve25519.Signing.PrivateKey().rawRepresentation.map { String(format: "%02x", $0) }.joined() + "\n"
    }

    /// The private key in a voucher key file's text (64 hex digits, surrounding space ignored).
    package static func privateKey(fromText text: String) throws -> Curve25519.Signing.PrivateKey {
        guard let bytes = Hex.bytes(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
            throw VoucherKeyError("a voucher key file holds 64 hex digits (32 bytes of an Ed25519 private key)")
        }
        return try Curve25519.Signing.PrivateKey(rawRepresentation: bytes)
    }
}

/// A voucher key that cannot be used.
package struct VoucherKeyError: Error, Sendable, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }

    /// The id is registered with another key (a new key needs a new id, so older codes still verify).
    package static func idTaken(_ id: UInt8) -> VoucherKeyError {
        VoucherKeyError(
            "voucher key id \(id) is registered with another key: give a new key a new voucher_key_id (1 to 255)")
    }
}
