// Goal: the byte-level encoders the posting path binds with (ids, member account keys, a member's
// last earn per format) write exactly what the string encoders write, and the byte-level decoder
// reads back what was written, at the edges of their ranges.
import Core
import Foundation
import GRDB
import NodeSupport
import Testing
import Wire

@testable import Gateway

@Suite("Values bound without strings")
struct StatementBindingTests {
    /// Binds with `bind` and reads the value back as text.
    private func bound(_ bind: (inout FastStatement.Binder) -> Void) throws -> String {
        let queue = try DatabaseQueue()
        return try queue.read { db in
            var text = ""
            try FastStatement(db, sql: "SELECT ?").forEach(bind) { row in text = row.string(0) }
            return text
        }
    }

    @Test("ids and member account keys bind as their descriptions")
    func ids() throws {
        for value: UInt128 in [0, 1, UInt128.max >> 2, 0x0123_4567_89AB_CDEF_0123_4567_89AB_CDEF >> 2] {
            let member = MemberID(value: value)
            #expect(try bound { $0.add(member) } == member.description)
            #expect(try bound { $0.add(Account.member(member)) } == Account.member(member).key)
        }
        #expect(try bound { $0.add(Account.offlineRisk(SiteID("mall-01")!)) } == "offline_risk:mall-01")
    }

    @Test("a member's last earn per format binds as LastEarnEncoding writes it and decodes from bytes")
    func lastEarn() throws {
        let cases: [[Format: Timestamp]] = [
            [:],
            [Format("mall")!: Timestamp(milliseconds: 0)],
            [
                Format("mall")!: Timestamp(milliseconds: 1_796_000_000_123),
                Format("hotel")!: Timestamp(milliseconds: 7),
            ],
            [
                Format("parking")!: Timestamp(milliseconds: -1),
                Format("a")!: Timestamp(milliseconds: 999_999_999_999_999),
                Format("office")!: Timestamp(milliseconds: 10),
            ],
        ]
        for value in cases {
            let text = try bound { $0.add(lastEarn: value) }
            #expect(text == LastEarnEncoding.encode(value))
            #expect(LastEarnEncoding.decode(text) == value)
        }
        // What does not parse is skipped, as before: no format, no digits, a stray sign, too long.
        #expect(
            LastEarnEncoding.decode("=5;mall=;hotel=-;x=12a;y=1234567890123456789;park=42") == [
                Format("park")!: Timestamp(milliseconds: 42)
            ])
    }

    @Test("a JSON array of ids binds for json_each: none, one, many")
    func jsonArrays() throws {
        let queue = try DatabaseQueue()
        for count in [0, 1, 3, 600] {
            let ids = (0..<count).map { MemberID(value: UInt128($0) * 7_919 + 1) }
            let read = try queue.read { db in
                var values: [String] = []
                try FastStatement(db, sql: "SELECT value FROM json_each(?)").forEach({ $0.add(jsonArray: ids) }) {
                    values.append($0.string(0))
                }
                return values
            }
            #expect(read == ids.map(\.description))
        }
    }
}
