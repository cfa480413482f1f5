// Goal: the program files operators write (YAML or JSON) load into the same validated program,
// examples/program.yaml is valid and computes the business's numbers, and a broken file is
// refused with a message that says where.
import Core
import Foundation
import Testing
import Wire

@Suite("Program files")
struct ProgramDocumentParserTests {
    static let exampleURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/program.yaml")

    static func example() throws -> [UInt8] {
        Array(try Data(contentsOf: exampleURL))
    }

    @Test("examples/program.yaml is a valid program of the whole group")
    func exampleLoads() throws {
        let program = try ProgramDocumentParser.load(Self.example())
        #expect(program.id == "harbour-group")
        let formats = Set(program.sites.map(\.format.rawValue))
        #expect(formats.isSuperset(of: ["mall", "hotel", "parking", "property"]))
        let mall = try #require(program.site(SiteID("mall-01")!))
        #expect(mall.merchants.count >= 5)
        #expect(Set(mall.merchants.map(\.category)).count == mall.merchants.count)
        #expect(program.merchant(MerchantID("hotel-restaurant")!)?.site.format == Format("hotel"))
        #expect(program.site(SiteID("park-01")!)?.parking != nil)
        #expect(program.tiers.tiers.count == 3)
        #expect(program.earn.promotions.count == 2)
    }

    @Test("the example computes the business's numbers")
    func exampleNumbers() throws {
        let program = try ProgramDocumentParser.load(Self.example())
        let tuesday = program.timeZone.instant(of: CivilDateTime(parsing: "2026-11-24T12:00")!)
        func earn(_ merchant: String, _ fen: Int64, tier: String = "member") throws -> Int64 {
            try EarnCalculator.earn(
                program: program,
                input: EarnInput(
                    merchant: MerchantID(merchant)!, amount: Money(minorUnits: fen), occurredAt: tuesday,
                    member: MemberEarnState(tier: TierID(tier)!))
            ).total.value
        }
        #expect(try earn("mall-fashion", 10_000) == 100)
        #expect(try earn("mall-grocer", 10_000) == 50)
        #expect(try earn("mall-fashion", 10_000, tier: "gold") == 150)
        #expect(try earn("office-management", 10_000) == 50)
        let quote = try RedeemCalculator.quote(
            program: program,
            input: RedeemInput(
                merchant: MerchantID("mall-cafe")!, bill: Money(minorUnits: 10_000), requestedPoints: .zero,
                availablePoints: Points(100_000)))
        #expect(quote.points == Points(5000))
        #expect(quote.value == Money(minorUnits: 5000))
    }

    @Test("the same program written as JSON loads to the same program")
    func jsonEqualsYAML() throws {
        let yaml = try ProgramDocumentParser.parse(Self.example())
        let json = Array(Self.json(yaml).utf8)
        #expect(try ProgramDocumentParser.parse(json) == yaml)
        #expect(try ProgramDocumentParser.load(json) == ProgramDocumentParser.load(Self.example()))
    }

    @Test(
        "broken files are refused with a message that says where",
        arguments: [
            ("program: [unclosed", "not valid YAML or JSON: line"),
            ("", "the document is empty"),
            (Self.aliasBomb, "more than 100000 values"),
            ("a: 1\na: 2\n", "duplicated keys"),
            ("? [a, b]\n: 1\n", "a mapping key must be a plain value"),
        ])
    func refusesBrokenText(_ text: String, _ words: String) {
        #expect {
            try ProgramDocumentParser.load(Array(text.utf8))
        } throws: { error in
            (error as? ProgramErrors)?.errors.contains { $0.message.contains(words) } ?? false
        }
    }

    @Test("a file that is not UTF-8 or is over 1 MiB is refused before parsing")
    func refusesBadBytes() {
        #expect {
            try ProgramDocumentParser.load([0x70, 0xFF, 0xFE])
        } throws: { ($0 as? ProgramErrors)?.errors.first?.message.contains("UTF-8") ?? false }
        let big = [UInt8](repeating: 0x20, count: ProgramDocumentParser.documentBytesMax + 1)
        #expect {
            try ProgramDocumentParser.load(big)
        } throws: { ($0 as? ProgramErrors)?.errors.first?.message.contains("at most 1048576") ?? false }
    }

    @Test("a validation error in a YAML file names the key path")
    func validationPath() throws {
        let text = String(decoding: try Self.example(), as: UTF8.self)
            .replacingOccurrences(of: "maximum_bill_share: \"0.5\"", with: "maximum_bill_share: \"-0.5\"")
        #expect {
            try ProgramDocumentParser.load(Array(text.utf8))
        } throws: { error in
            (error as? ProgramErrors)?.errors.contains {
                $0.path == "redeem.maximum_bill_share" && $0.message.contains("negative")
            } ?? false
        }
    }

    /// Nine levels of ten aliases each: a billion values once expanded, from a few hundred bytes.
    static let aliasBomb: String = {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...9 {
            let refs = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
            lines.append("a\(level): &a\(level) [\(refs)]")
        }
        return lines.joined(separator: "\n") + "\n"
    }()

    /// Writes a document tree as JSON text (scalars as strings), to prove both formats read alike.
    static func json(_ node: DocumentNode) -> String {
        func quote(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        switch node {
        case .scalar(let text): return quote(text)
        case .null: return "null"
        case .list(let items): return "[" + items.map(json).joined(separator: ",") + "]"
        case .map(let entries):
            return "{" + entries.map { quote($0.key) + ":" + json($0.value) }.joined(separator: ",") + "}"
        }
    }
}
