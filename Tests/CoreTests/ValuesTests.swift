// Goal: the number types and identifiers behave exactly at their boundaries — every rounding mode,
// every accepted and refused rate text, slug and id form.
import Core
import TestSupport
import Testing

@Suite("Rounding")
struct RoundingTests {
    @Test(
        "floor, ceiling and half-even at every boundary, for both signs",
        arguments: [
            // (numerator, denominator, floor, ceiling, halfEven)
            (7, 2, 3, 4, 4),  // 3.5: half-even goes to 4
            (5, 2, 2, 3, 2),  // 2.5: half-even goes to 2
            (-5, 2, -3, -2, -2),  // -2.5: half-even goes to -2
            (-7, 2, -4, -3, -4),  // -3.5: half-even goes to -4
            (24, 10, 2, 3, 2),  // 2.4
            (25, 10, 2, 3, 2),  // 2.5
            (26, 10, 2, 3, 3),  // 2.6
            (35, 10, 3, 4, 4),  // 3.5
            (6, 3, 2, 2, 2),  // exact
            (0, 7, 0, 0, 0),
            (-1, 3, -1, 0, 0),
        ] as [(Int128, Int128, Int128, Int128, Int128)]
    )
    func modes(_ n: Int128, _ d: Int128, _ floor: Int128, _ ceiling: Int128, _ halfEven: Int128) {
        #expect(Rounding.floor(n, d) == floor)
        #expect(Rounding.ceiling(n, d) == ceiling)
        #expect(Rounding.halfEven(n, d) == halfEven)
    }
}

@Suite("Exact decimal rates")
struct RateTests {
    @Test(
        "parses decimal text exactly",
        arguments: [
            ("1", 1_000_000), ("0.5", 500_000), ("1.25", 1_250_000), ("0.000001", 1), ("-0.5", -500_000),
            ("1000000", 1_000_000_000_000), ("0.10", 100_000), ("007", 7_000_000),
        ] as [(String, Int64)]
    )
    func parses(_ text: String, _ micros: Int64) {
        #expect(Rate(parsing: text)?.micros == micros)
    }

    @Test(
        "refuses anything that is not an exact decimal of at most six places",
        arguments: ["", ".5", "1.", "1e3", "0.0000001", "abc", "1.2.3", " 1", "+1", "1000001", "１", "0,5", "-"]
    )
    func refuses(_ text: String) {
        #expect(Rate(parsing: text) == nil)
    }

    @Test("prints the shortest exact text", arguments: ["1", "0.5", "1.25", "0.000001", "-0.5", "12.3456"])
    func roundTrips(_ text: String) {
        #expect(Rate(parsing: text)?.description == text)
    }

    @Test("multiplies without floating point, rounding as asked")
    func multiplies() {
        let half = Rate(parsing: "0.5")!
        #expect(half.floorTimes(3) == 1)
        #expect(half.floorTimes(-3) == -2)
        #expect(half.halfEvenTimes(3) == 2)  // 1.5 -> 2
        #expect(half.halfEvenTimes(5) == 2)  // 2.5 -> 2
        let tenth = Rate(parsing: "0.1")!
        #expect(tenth.floorTimes(99) == 9)
        // The largest amounts the program allows do not overflow.
        #expect(Rate(parsing: "1000")!.floorTimes(1_000_000_000_000) == 1_000_000_000_000_000)
    }
}

@Suite("Identifiers")
struct IdentifierTests {
    @Test(
        "slugs",
        arguments: [
            ("mall-01", true), ("a", true), ("0", true), (String(repeating: "a", count: 32), true),
            (String(repeating: "a", count: 33), false), ("", false), ("-mall", false), ("Mall", false),
            ("mall_01", false), ("mall 01", false), ("café", false), ("mall-", true),
        ])
    func slugs(_ text: String, _ valid: Bool) {
        #expect((SiteID(text) != nil) == valid)
        #expect((MerchantID(text) != nil) == valid)
    }

    @Test("time-ordered ids round-trip through text and keep their time")
    func timeOrderedRoundTrip() {
        var generator = SeededGenerator(seed: 42)
        let time = Timestamp(milliseconds: 1_795_000_000_000)
        let id = MemberID(time: time, using: &generator)
        let text = id.description
        #expect(text.count == 26)
        #expect(MemberID(text) == id)
        #expect(MemberID(text.lowercased()) == id)
        #expect(id.time == time)
    }

    @Test("text order is time order")
    func sortsByTime() {
        var generator = SeededGenerator(seed: 7)
        let ids = (0..<200).map {
            TransactionID(time: Timestamp(milliseconds: 1_700_000_000_000 + Int64($0)), using: &generator)
        }
        #expect(ids.map(\.description).sorted() == ids.map(\.description))
        #expect(ids.sorted() == ids)
    }

    @Test(
        "refuses malformed id text",
        arguments: [
            "", "0123456789ABCDEFGHJKMNPQR", "0123456789ABCDEFGHJKMNPQRST", "0123456789ABCDEFGHJKMNPQRU",
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "0123456789ABCDEFGHJKMNPQR!",
        ])
    func refusesBadIDs(_ text: String) {
        #expect(MemberID(text) == nil)
    }

    @Test(
        "request ids",
        arguments: [
            ("R-0001", true), ("a", true), (String(repeating: "x", count: 64), true),
            (String(repeating: "x", count: 65), false), ("", false), ("has space", false), ("tab\t", false),
            ("收据", false),
        ])
    func requestIDs(_ text: String, _ valid: Bool) {
        #expect((RequestID(text) != nil) == valid)
    }
}
