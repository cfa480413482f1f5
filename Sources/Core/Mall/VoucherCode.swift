/// What a voucher's code says, signed by the network's voucher key (docs/member-api.md, "Voucher
/// codes"). A till verifies it with the public keys its edge pulled, without the gateway.
package struct VoucherClaim: Sendable, Equatable {
    /// The layout's version (the first byte).
    package static let version: UInt8 = 1
    /// Which of the network's voucher keys signed it (1 to 255).
    package var keyID: UInt8
    /// The voucher's id: time-ordered, so it also says when the voucher was issued.
    package var voucherID: TransactionID
    /// The catalog item it was bought as; its terms say where it may be used.
    package var item: ItemID
    /// The first instant it is no longer valid, to the minute.
    package var validUntil: Timestamp

    package init(keyID: UInt8, voucherID: TransactionID, item: ItemID, validUntil: Timestamp) {
        self.keyID = keyID
        self.voucherID = voucherID
        self.item = item
        // Minutes are what the code carries: a claim made with milliseconds reads back the same.
        self.validUntil = Timestamp(milliseconds: validUntil.milliseconds / 60_000 * 60_000)
    }

    /// The bytes the signature covers: version, key id, voucher id (16 bytes), valid-until minutes
    /// since 1970 (4 bytes), item id length and ASCII, all big-endian.
    package var signedBytes: [UInt8] {
        var bytes: [UInt8] = [Self.version, keyID]
        let id = voucherID.value
        for shift in stride(from: 120, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: id >> shift)) }
        let minutes = UInt32(clamping: max(0, validUntil.milliseconds / 60_000))
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: minutes >> shift)) }
        let item = Array(item.rawValue.utf8)
        bytes.append(UInt8(item.count))
        bytes += item
        return bytes
    }
}

/// Why a text is not a voucher code.
package enum VoucherCodeError: Error, Equatable, Sendable {
    /// Not the `CV` prefix and base32 of a known layout.
    case malformed
    /// Shorter than its layout says (a partial scan).
    case truncated
    case unknownVersion(UInt8)
}

/// A voucher's code as printed in a QR code: `CV` followed by Crockford base32 (digits and
/// capital letters: QR's alphanumeric mode) of the claim's bytes and their 64-byte Ed25519
/// signature. About 160 characters for a 12-character item id.
package struct VoucherCode: Sendable, Equatable {
    package static let prefix = "CV"
    package static let signatureLength = 64
    /// The longest code text accepted.
    package static let textLengthMax = 256

    package var claim: VoucherClaim
    package var signature: [UInt8]

    package init(claim: VoucherClaim, signature: [UInt8]) {
        precondition(signature.count == Self.signatureLength, "an Ed25519 signature is 64 bytes")
        self.claim = claim
        self.signature = signature
    }

    /// The code's text.
    package var text: String { Self.prefix + CrockfordBase32.encode(claim.signedBytes + signature) }

    /// Reads a code's text (either case). It says nothing of the signature: `VoucherSeal` checks it.
    package static func parse(_ text: String) -> Result<VoucherCode, VoucherCodeError> {
        guard text.count <= textLengthMax, text.uppercased().hasPrefix(prefix),
            let bytes = CrockfordBase32.decode(String(text.dropFirst(prefix.count)))
        else { return .failure(.malformed) }
        guard let version = bytes.first else { return .failure(.truncated) }
        guard version == VoucherClaim.version else { return .failure(.unknownVersion(version)) }
        guard bytes.count >= 23 else { return .failure(.truncated) }
        let itemLength = Int(bytes[22])
        guard bytes.count >= 23 + itemLength + signatureLength else { return .failure(.truncated) }
        guard bytes.count == 23 + itemLength + signatureLength, bytes[1] != 0,
            let item = ItemID(String(decoding: bytes[23..<(23 + itemLength)], as: UTF8.self))
        else { return .failure(.malformed) }
        var id: UInt128 = 0
        for byte in bytes[2..<18] { id = id << 8 | UInt128(byte) }
        var minutes: UInt32 = 0
        for byte in bytes[18..<22] { minutes = minutes << 8 | UInt32(byte) }
        let claim = VoucherClaim(
            keyID: bytes[1], voucherID: TransactionID(value: id), item: item,
            validUntil: Timestamp(milliseconds: Int64(minutes) * 60_000))
        return .success(VoucherCode(claim: claim, signature: Array(bytes[(23 + itemLength)...])))
    }
}

extension CrockfordBase32 {
    private static let symbols = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// Any bytes as base32 digits, 5 bits each, most significant first; the last digit is padded
    /// with zero bits.
    package static func encode(_ bytes: [UInt8]) -> String {
        var text: [UInt8] = []
        text.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                text.append(symbols[Int((buffer >> UInt32(bits)) & 0x1F)])
            }
        }
        if bits > 0 { text.append(symbols[Int((buffer << UInt32(5 - bits)) & 0x1F)]) }
        return String(decoding: text, as: UTF8.self)
    }

    /// The bytes of `encode`'s text (either case); nil for a character outside the alphabet or
    /// padding bits that are not zero.
    package static func decode(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for character in text.utf8 {
            var value = character
            if value >= UInt8(ascii: "a") && value <= UInt8(ascii: "z") { value -= 0x20 }
            guard let digit = symbols.firstIndex(of: value) else { return nil }
            buffer = buffer << 5 | UInt32(digit)
            bits += 5
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
            buffer &= (1 << UInt32(bits)) - 1
        }
        guard buffer == 0 else { return nil }
        return bytes
    }
}
