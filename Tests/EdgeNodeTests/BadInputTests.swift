// Goal: every malformed or out-of-range request gets a status naming the problem, writes nothing
// (row counts compared before and after), and the server keeps serving.
import Core
import EdgeNode
import Foundation
import GRPCCore
import TestSupport
import Testing
import Wire

@Suite("Bad input")
struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var code: RPCError.Code
        /// Words the status message must contain (usually the field name).
        var words: String
        var call: @Sendable (EdgeHarness, String, String) async throws -> Void
        var testDescription: String { name }
    }

    static let memberPlaceholder = "MEMBER"

    static let cases: [Case] = [
        Case(name: "earn without request id", code: .invalidArgument, words: "request_id") { edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("", member: member, amount: 1_000), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn with a 65-character request id", code: .invalidArgument, words: "request_id") {
            edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn(String(repeating: "r", count: 65), member: member, amount: 1_000),
                metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn of zero", code: .invalidArgument, words: "amount_minor") { edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 0), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn of a negative amount", code: .invalidArgument, words: "amount_minor") { edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: -500), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn over the program maximum", code: .invalidArgument, words: "amount_minor") { edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 10_000_001), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn of Int64.max", code: .invalidArgument, words: "amount_minor") { edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: .max), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn with lines that do not add up", code: .invalidArgument, words: "lines") { edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 1_000, lines: [("apparel", 999)]),
                metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn with a line of zero", code: .invalidArgument, words: "lines[1].amount_minor") {
            edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 1_000, lines: [("apparel", 1_000), ("apparel", 0)]),
                metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn with a bad line category", code: .invalidArgument, words: "lines[0].category") {
            edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 1_000, lines: [("Not A Slug", 1_000)]),
                metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn with 201 lines", code: .invalidArgument, words: "lines") { edge, member, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: member, amount: 201, lines: Array(repeating: ("apparel", 1), count: 201)),
                metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn for a malformed member id", code: .invalidArgument, words: "member_id") { edge, _, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: "not-a-member", amount: 1_000), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn for an unknown member", code: .notFound, words: "member_id") { edge, _, _ in
            _ = try await edge.points.earn(
                Requests.earn("R-1", member: "01JD3X5Q7M8N9P0R1S2T3V4W5X", amount: 1_000),
                metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn for another merchant", code: .permissionDenied, words: "merchant_id") { edge, member, _ in
            var request = Requests.earn("R-1", member: member, amount: 1_000)
            request.merchantID = "mall-cafe"
            _ = try await edge.points.earn(request, metadata: edge.auth("mall-fashion"))
        },
        Case(name: "earn without a token", code: .unauthenticated, words: "authorization") { edge, member, _ in
            _ = try await edge.points.earn(Requests.earn("R-1", member: member, amount: 1_000))
        },
        Case(name: "redeem of zero points", code: .invalidArgument, words: "points") { edge, member, _ in
            _ = try await edge.points.redeem(
                Requests.redeem("P-1", member: member, bill: 1_000, points: 0), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "redeem with a zero bill", code: .invalidArgument, words: "bill_amount_minor") { edge, member, _ in
            _ = try await edge.points.redeem(
                Requests.redeem("P-1", member: member, bill: 0, points: 500), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "redeem of absurd points", code: .invalidArgument, words: "points") { edge, member, _ in
            _ = try await edge.points.redeem(
                Requests.redeem("P-1", member: member, bill: 1_000, points: .max), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "redeem more than the balance", code: .failedPrecondition, words: "points") { edge, member, _ in
            _ = try await edge.points.redeem(
                Requests.redeem("P-1", member: member, bill: 100_000, points: 20_000),
                metadata: edge.auth("mall-fashion"))
        },
        Case(name: "enrol with a bad phone", code: .invalidArgument, words: "phone") { edge, _, _ in
            _ = try await edge.points.enroll(
                Requests.enroll("E-9", phone: "13800138000"), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "enrol with a birth month of 13", code: .invalidArgument, words: "birth_month") { edge, _, _ in
            _ = try await edge.points.enroll(
                Requests.enroll("E-9", phone: "+8613900000000", birthMonth: 13), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "enrol with an unknown referrer", code: .notFound, words: "referrer_member_id") { edge, _, _ in
            _ = try await edge.points.enroll(
                Requests.enroll("E-9", phone: "+8613900000000", referrer: "01JD3X5Q7M8N9P0R1S2T3V4W5X"),
                metadata: edge.auth("mall-fashion"))
        },
        Case(name: "enrol with a 33-character card", code: .invalidArgument, words: "card_number") { edge, _, _ in
            var request = Requests.enroll("E-9", phone: "+8613900000000")
            request.cardNumber = String(repeating: "9", count: 33)
            _ = try await edge.points.enroll(request, metadata: edge.auth("mall-fashion"))
        },
        Case(name: "reverse an unknown transaction", code: .notFound, words: "original_transaction_id") { edge, _, _ in
            _ = try await edge.points.reverse(
                Requests.reverse("V-1", original: "01JD3X5Q7M8N9P0R1S2T3V4W5X"), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "reverse with a malformed id", code: .invalidArgument, words: "original_transaction_id") {
            edge, _, _ in
            _ = try await edge.points.reverse(
                Requests.reverse("V-1", original: "x"), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "refund more than the bill", code: .invalidArgument, words: "amount_minor") { edge, _, earn in
            _ = try await edge.points.reverse(
                Requests.reverse("V-1", original: earn, amount: 1_000_001), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "refund a negative amount", code: .invalidArgument, words: "amount_minor") { edge, _, earn in
            _ = try await edge.points.reverse(
                Requests.reverse("V-1", original: earn, amount: -1), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "reverse with a 201-character reason", code: .invalidArgument, words: "reason") { edge, _, earn in
            var request = Requests.reverse("V-1", original: earn)
            request.reason = String(repeating: "x", count: 201)
            _ = try await edge.points.reverse(request, metadata: edge.auth("mall-fashion"))
        },
        Case(name: "lookup without a key", code: .invalidArgument, words: "key") { edge, _, _ in
            _ = try await edge.points.lookupMember(
                Coalition_Edge_V1_LookupMemberRequest(), metadata: edge.auth("mall-fashion"))
        },
        Case(name: "history with a page of 1,000", code: .invalidArgument, words: "page_size") { edge, member, _ in
            var request = Coalition_Edge_V1_HistoryRequest()
            request.memberID = member
            request.pageSize = 1_000
            _ = try await edge.points.history(request, metadata: edge.auth("mall-fashion"))
        },
        Case(name: "history with a forged page token", code: .invalidArgument, words: "page_token") { edge, member, _ in
            var request = Coalition_Edge_V1_HistoryRequest()
            request.memberID = member
            request.pageToken = "drop table"
            _ = try await edge.points.history(request, metadata: edge.auth("mall-fashion"))
        },
        Case(name: "an oversized request", code: .resourceExhausted, words: "bytes") { edge, member, _ in
            var request = Requests.earn("R-1", member: member, amount: 1_000)
            request.lines = Array(
                repeating: {
                    var line = Coalition_Common_V1_SaleLine(); line.sku = String(repeating: "s", count: 64);
                    line.amountMinor = 1; return line
                }(), count: 1_000)
            _ = try await edge.points.earn(request, metadata: edge.auth("mall-fashion"))
        },
    ]

    @Test("each bad request gets its status and changes nothing", arguments: cases)
    func badInput(_ c: Case) async throws {
        try await EdgeFixture.withEdge { edge in
            let member = try await edge.points.enroll(
                Requests.enroll("E-1", phone: "+8613800138000"), metadata: edge.auth("mall-fashion")
            ).member.memberID
            let earn = try await edge.points.earn(
                Requests.earn("R-0", member: member, amount: 1_000_000), metadata: edge.auth("mall-fashion"))
            let before = try await edge.rowCounts()
            let message = await expectStatus(c.code) { try await c.call(edge, member, earn.transactionID) }
            #expect(message.contains(c.words), "message: \(message)")
            #expect(try await edge.rowCounts() == before)
            // And the server keeps serving.
            let balance = try await edge.points.getBalance(
                Requests.balance(member), metadata: edge.auth("mall-fashion"))
            #expect(balance.member.balancePoints == 10_200)
        }
    }
}
