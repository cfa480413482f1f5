// Goal (issue #16): a lottery anyone can audit. The gateway commits to each day's seed (its SHA-256
// published) before the day opens; draws are numbered in the day, each exactly once per request
// id, within the member's daily limit, paid like an order, the prize given within its stock (a
// prize out of stock falls through to the next one); after the day the seed is revealed and
// `coalition admin lottery verify` recomputes every draw from the outside, and names a draw whose
// record was changed. Real gateway (SQLite and PostgreSQL), member API over mutual TLS, the binary.
import Core
import Crypto
import Foundation
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Lottery draws")
struct LotteryDrawTests {
    /// A lottery where every draw wins: a coffee voucher on 60 % of tickets (one in stock), 50
    /// points on the rest: the second coffee ticket falls through to points.
    static let testLottery = """

            - id: test-draw
              name: Test draw
              cost_points: 200
              per_member_daily_max: 3
              start: 2026-11-01
              end: 2027-03-01
              prizes:
                - id: coffee
                  name: A coffee
                  item: coffee
                  chance_ppm: 600000
                  stock: 1
                - id: points-50
                  name: 50 points
                  points: 50
                  chance_ppm: 400000
                  stock: 100

        """

    static func draw(_ request: String, member: String, lottery: String = "test-draw")
        -> Coalition_Member_V1_DrawRequest
    {
        var message = Coalition_Member_V1_DrawRequest()
        message.requestID = request
        message.memberID = member
        message.lotteryID = lottery
        return message
    }

    @Test(
        "draws are committed, limited, paid, given within stock, revealed and verified", arguments: LedgerKind.allCases)
    func audit(ledger: LedgerKind) async throws {
        var program = ""
        try await MemberServiceTests.withMallNetwork(
            ledger: ledger,
            edit: { configuration in
                // A file of its own (the edge's fixture rewrites program.yaml).
                let file = configuration.programFile!
                program = file.replacingOccurrences(of: "program.yaml", with: "lottery-program.yaml")
                let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
                try? (text.trimmingCharacters(in: .newlines) + Self.testLottery).write(
                    toFile: program, atomically: true, encoding: .utf8)
                configuration.programFile = program
            }
        ) { network in
            try await Self.play(network, program: program)
        }
    }

    static func play(_ network: MemberServiceTests.MallNetwork, program: String) async throws {
        let (gateway, member, certificates, clock) = (
            network.gateway, network.member, network.certificates, network.clock
        )
        // The daily job (run at the gateway's start, and here again) commits today's and tomorrow's
        // seeds of both lotteries, once: another run commits nothing.
        _ = try await gateway.ledger.keepLotterySeeds()
        #expect(try await gateway.ledger.keepLotterySeeds().committed == 0)
        let before = try await gateway.balance(member)
        let draws = try await MemberServiceTests.withMember(
            port: gateway.port, certificates: certificates, certificate: "app"
        ) { api in
            var request = Coalition_Member_V1_GetLotteryRequest()
            request.lotteryID = "test-draw"
            let published = try await api.getLottery(request)
            #expect(published.periods.map(\.period) == ["2026-11-24", "2026-11-25"])
            #expect(published.periods.allSatisfy { $0.seed.isEmpty && $0.commitment.count == 64 })
            #expect(published.prizes.map(\.fromTicket) == [0, 600_000] && published.noPrizePpm == 0)
            var draws: [Coalition_Member_V1_DrawResponse] = []
            for index in 1...3 {
                draws.append(try await api.draw(Self.draw("D-\(index)", member: member)))
            }
            // A retry is the same draw; the request id for another lottery is refused.
            #expect(try await api.draw(Self.draw("D-1", member: member)).draw == draws[0].draw)
            await expectStatus(.alreadyExists, reason: "REQUEST_ID_REUSED") {
                _ = try await api.draw(Self.draw("D-1", member: member, lottery: "winter-draw"))
            }
            await expectStatus(.failedPrecondition, reason: "DAILY_LIMIT") {
                _ = try await api.draw(Self.draw("D-4", member: member))
            }
            await expectStatus(.notFound, reason: "UNKNOWN_LOTTERY") {
                _ = try await api.draw(Self.draw("D-5", member: member, lottery: "no-such-draw"))
            }
            await expectStatus(.invalidArgument) {
                _ = try await api.draw(Self.draw("D-6", member: member, lottery: "Not A Slug!"))
            }
            return draws.map(\.draw)
        }
        // Numbered 1, 2, 3 in the day; at most one coffee (its stock); every other draw 50 points.
        #expect(draws.map(\.number) == [1, 2, 3])
        #expect(draws.map(\.drawID) == (1...3).map { "test-draw/2026-11-24/\($0)" })
        let coffees = draws.filter { $0.prizeID == "coffee" }
        #expect(coffees.count <= 1)
        #expect(coffees.allSatisfy { !$0.voucher.code.isEmpty && $0.prizePoints == 0 })
        #expect(draws.filter { $0.prizeID == "points-50" }.allSatisfy { $0.prizePoints == 50 })
        #expect(draws.filter { $0.ticket < 600_000 }.isEmpty || coffees.count == 1)
        // Paid: 3 × 200, plus the points won; never the coffee's catalog price.
        let won = draws.reduce(0) { $0 + $1.prizePoints }
        #expect(try await gateway.balance(member) == before - 600 + won)
        // A prize voucher is the platform's to pay for when honoured.
        for coffee in coffees {
            #expect(
                try await gateway.sql.rows(
                    "SELECT sponsor FROM vouchers WHERE voucher_id = ?", [coffee.voucher.voucherID])
                    == [["platform"]])
        }

        // The member's voucher list shows a prize voucher as a prize of its draw.
        try await MemberServiceTests.withMember(port: gateway.port, certificates: certificates, certificate: "app") {
            api in
            var mine = Coalition_Member_V1_ListVouchersRequest()
            mine.memberID = member
            let listed = try await api.listVouchers(mine).vouchers
            #expect(listed.map(\.voucher.voucherID) == coffees.map(\.voucher.voucherID))
            #expect(listed.map(\.source) == coffees.map { _ in "prize" })
            #expect(listed.map(\.sourceID) == coffees.map(\.transactionID))
        }

        // The next day: the 24th's seed is revealed, and is the one committed to.
        clock.advance(milliseconds: 86_400_000)
        _ = try await gateway.ledger.keepLotterySeeds()
        let periods = try await MemberServiceTests.withMember(
            port: gateway.port, certificates: certificates, certificate: "app"
        ) { api in
            _ = try await api.draw(Self.draw("D-7", member: member))
            var request = Coalition_Member_V1_GetLotteryRequest()
            request.lotteryID = "test-draw"
            return try await api.getLottery(request).periods
        }
        let first = try #require(periods.first)
        #expect(first.period == "2026-11-24" && first.draws == 3)
        let seed = try #require(Hex.bytes(first.seed))
        #expect(Hex.string(SHA256.hash(data: seed)) == first.commitment)
        #expect(periods.map(\.period) == ["2026-11-24", "2026-11-25", "2026-11-26"])
        #expect(periods.dropFirst().allSatisfy { $0.seed.isEmpty })

        // From the outside: the binary recomputes the revealed day.
        try certificates.issue(.operator("alice"), name: "alice")
        let dir = certificates.directory
        let admin = dir + "/admin.yaml"
        try """
        gateway: 127.0.0.1:\(gateway.port)
        ca_certificate: \(certificates.path("ca.pem"))
        certificate: \(certificates.path("alice.pem"))
        private_key: \(certificates.path("alice.key"))
        """.write(toFile: admin, atomically: true, encoding: .utf8)
        let verified = try await Binary.run([
            "admin", "lottery", "verify", "--lottery", "test-draw", "--program", program, "--config", admin,
        ])
        #expect(
            verified.contains(
                "test-draw: 1 periods revealed, 3 draws recomputed, 3 prizes checked: every draw matches its seed"),
            "\(verified)")
        // The periods as the operator lists them: today's seed revealed, the next ones not yet.
        let listed = try await Binary.run(["admin", "lottery", "periods", "--lottery", "test-draw", "--config", admin])
        #expect(listed.contains("2026-11-24") && listed.contains(first.seed) && listed.contains(first.commitment))
        #expect(listed.components(separatedBy: "(not revealed yet)").count - 1 == 2, "\(listed)")
        // A record changed after the fact is named.
        try await gateway.sql.execute(
            "UPDATE lottery_draws SET prize_id = CASE WHEN prize_id = 'coffee' THEN 'points-50' ELSE 'coffee' END WHERE number = 2 AND period = '2026-11-24'"
        )
        let outcome = try await ChildProcess.run(
            try #require(Binary.path),
            ["admin", "lottery", "verify", "--lottery", "test-draw", "--program", program, "--config", admin])
        #expect(outcome.status == 1)
        #expect(outcome.output.contains("MISMATCH test-draw/2026-11-24/2: prize"), "\(outcome.output)")
    }
}
