// Goal: a voucher code carries exactly its claim, fits a QR code's alphanumeric mode, and is
// honoured only with the network's signature: a forged, truncated, re-signed or edited code is
// told apart, and a till's checks (expiry to the instant, scope, used, cancelled) refuse with the
// reason a cashier reads.
import Core
import Crypto
import Testing
import Wire

@Suite("Voucher codes")
struct VoucherCodeTests {
    static let key = Curve25519.Signing.PrivateKey()
    static let keys: [UInt8: [UInt8]] = [3: Array(key.publicKey.rawRepresentation)]
    static let claim = VoucherClaim(
        keyID: 3, voucherID: TransactionID("01JD3X5Q7M8N9P0R1S2T3V4W5X")!, item: ItemID("afternoon-tea")!,
        validUntil: Timestamp(milliseconds: 1_800_000_000_000))

    @Test("base32 of any bytes reads back, and text with bits left over is refused")
    func base32() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<90 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = CrockfordBase32.encode(bytes)
            #expect(CrockfordBase32.decode(text) == bytes)
            #expect(CrockfordBase32.decode(text.lowercased()) == bytes)
        }
        #expect(CrockfordBase32.decode("ZZ") == nil, "non-zero padding bits")
        #expect(CrockfordBase32.decode("U0") == nil, "U is not a Crockford digit")
    }

    @Test("a signed code reads back as its claim, fits QR alphanumeric mode, and verifies")
    func roundTrip() throws {
        let code = try VoucherSeal.sign(Self.claim, with: Self.key)
        let text = code.text
        #expect(text.hasPrefix("CV") && text.count < 170)
        #expect(text.allSatisfy { "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains($0) })
        let parsed = try VoucherCode.parse(text).get()
        #expect(parsed == code && parsed.claim == Self.claim)
        #expect(VoucherSeal.verify(parsed, keys: Self.keys))
        #expect(try VoucherCode.parse(text.lowercased()).get() == code)
    }

    @Test("forged, re-signed, edited, truncated and foreign codes are told apart")
    func tampering() throws {
        let text = try VoucherSeal.sign(Self.claim, with: Self.key).text
        // Another key under the same id: re-signed.
        let other = try VoucherSeal.sign(Self.claim, with: Curve25519.Signing.PrivateKey())
        #expect(!VoucherSeal.verify(other, keys: Self.keys))
        // A key id the node does not know.
        var unknown = Self.claim
        unknown.keyID = 9
        #expect(!VoucherSeal.verify(try VoucherSeal.sign(unknown, with: Self.key), keys: Self.keys))
        // A longer validity, the signature kept.
        var longer = try VoucherCode.parse(text).get()
        longer.claim.validUntil = longer.claim.validUntil.adding(milliseconds: 86_400_000)
        #expect(!VoucherSeal.verify(try VoucherCode.parse(longer.text).get(), keys: Self.keys))
        // One character changed in the signature part.
        var characters = Array(text)
        characters[characters.count - 5] = characters[characters.count - 5] == "A" ? "B" : "A"
        if case .success(let edited) = VoucherCode.parse(String(characters)) {
            #expect(!VoucherSeal.verify(edited, keys: Self.keys))
        }
        #expect(VoucherCode.parse(String(text.dropLast(8))) == .failure(.truncated))
        // A cut inside a byte leaves bits over: not a code at all.
        #expect((try? VoucherCode.parse(String(text.dropLast(12))).get()) == nil)
        #expect(VoucherCode.parse("CV") == .failure(.truncated))
        #expect(VoucherCode.parse("HELLO") == .failure(.malformed))
        #expect(VoucherCode.parse(text + "00") == .failure(.malformed))
        #expect(VoucherCode.parse(String(repeating: "CV0", count: 200)) == .failure(.malformed))
        let version2 = "CV" + CrockfordBase32.encode([2] + Array(repeating: 0, count: 100))
        #expect(VoucherCode.parse(version2) == .failure(.unknownVersion(2)))
    }
}
