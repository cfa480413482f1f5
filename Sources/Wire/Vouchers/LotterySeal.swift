import Core
import Crypto
import Foundation

/// The cryptography of lottery draws (docs/member-api.md, "Lotteries"): the gateway commits to a
/// period's secret seed by publishing its SHA-256 before the period opens; a draw's ticket is the
/// first 8 bytes of SHA-256(seed ‖ draw id) as a big-endian integer, modulo 1,000,000 (the bias of
/// the modulo is below 10⁻¹³), and `LotteryDraw.outcome` turns the ticket into a prize.
package enum LotterySeal {
    /// A new secret seed: 32 random bytes.
    package static func newSeed() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// The commitment published for a seed: its SHA-256.
    package static func commitment(_ seed: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: seed)) }

    /// The ticket (0 ..< 1,000,000) of the draw `drawID` under `seed`.
    package static func ticket(seed: [UInt8], drawID: String) -> Int64 {
        let digest = Array(SHA256.hash(data: seed + Array(drawID.utf8)))
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Int64(value % UInt64(LotteryDraw.parts))
    }
}
