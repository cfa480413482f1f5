// Goal (issue #16): a lottery draw's ticket is what anyone recomputes from the revealed seed with
// any SHA-256: the figures below come from Python's hashlib, not from this code.
import Core
import Foundation
import Testing
import Wire

@Suite("Lottery seal")
struct LotterySealTests {
    static let seed = (0..<32).map { UInt8($0) }

    @Test("tickets and the commitment match an independent SHA-256")
    func vectors() {
        #expect(
            LotterySeal.commitment(Self.seed).map { String(format: "%02x", $0) }.joined()
                == "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd")
        let tickets = (1...3).map {
            LotterySeal.ticket(
                seed: Self.seed,
                drawID: LotteryDraw.drawID(
                    LotteryID("winter-draw")!, period: CivilDate(parsing: "2026-11-24")!, number: $0))
        }
        #expect(tickets == [132_549, 90_966, 167_624])
    }

    @Test("new seeds are 32 bytes and differ")
    func seeds() {
        let a = LotterySeal.newSeed()
        let b = LotterySeal.newSeed()
        #expect(a.count == 32 && b.count == 32 && a != b)
    }
}
