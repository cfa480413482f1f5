import Core
import Testing

/// Voucher uses as the posting rules post them (docs/member-api.md, "Vouchers at the till"): the
/// first use of an issued voucher stands and moves no points; a use of a voucher used before (in
/// an earlier batch or earlier in the same one), cancelled, or expired when honoured is posted
/// with a conflict and the voucher's points on the site's `offline_risk`; a voucher never issued,
/// or for another item, is rejected.
@Suite("Voucher uses in the posting engine")
struct VoucherPostingTests {
    typealias Engine = PostingEngineTests
    static let member = MemberID(value: 7)

    static func voucher(_ id: String, status: VoucherStatus, validUntil: Timestamp? = nil) -> VoucherRecord {
        VoucherRecord(
            voucherID: id, item: ItemID("coffee")!, member: member, points: Points(1_500),
            validUntil: validUntil ?? Engine.now.adding(milliseconds: 86_400_000), status: status)
    }

    static func use(_ voucher: String, item: String = "coffee") -> PushedTransaction.Body {
        .voucherUse(
            PushedTransaction.VoucherUse(
                voucherID: voucher, itemID: item, settlementPriceMinor: 1_800,
                validUntilMilliseconds: Engine.now.milliseconds))
    }

    static func view() -> PostingView {
        var view = PostingView()
        view.position = 10
        for record in [
            voucher("V-ISSUED", status: .issued), voucher("V-USED", status: .used),
            voucher("V-CANCELLED", status: .cancelled),
            // Expired 2 minutes before now; the use is stated a minute before now.
            voucher("V-EXPIRED", status: .issued, validUntil: Engine.now.adding(milliseconds: -120_000)),
        ] {
            view.vouchers[record.voucherID] = record
        }
        return view
    }

    @Test("the first use stands with no points; a second in the same batch is a double use on the site's risk")
    func firstAndSecond() {
        var engine = Engine.engine(Self.view())
        let first = engine.post(Engine.pushed(Self.use("V-ISSUED"), request: "U-1", id: 1, sequence: 1))
        let second = engine.post(Engine.pushed(Self.use("V-ISSUED"), request: "U-2", id: 2, sequence: 2))
        let effects = engine.finish()
        #expect(first == PostingResult(outcome: .posted, reason: "", points: .zero))
        #expect(second == PostingResult(outcome: .postedWithConflict, reason: "voucher_double_use", points: .zero))
        #expect(effects.entries.map(\.kind) == [.voucherUse, .voucherUse])
        #expect(effects.entries[0].postings.isEmpty)
        #expect(effects.entries[0].member == nil && effects.entries[0].detail == "V-ISSUED")
        #expect(
            effects.entries[1].postings == [
                Posting(.offlineRisk(Engine.site), Points(-1_500)), Posting(.redeemed(Fixture.mall), Points(1_500)),
            ])
        #expect(effects.voucherUses.map(\.voucherID) == ["V-ISSUED"])
        #expect(effects.voucherUses.first?.position == 11)
        #expect(effects.conflicts.map(\.kind) == [.voucherDoubleUse])
        #expect(effects.conflicts.first?.member == Self.member && effects.conflicts.first?.points == Points(1_500))
        // Never the member's points.
        #expect(effects.members.isEmpty)
        #expect(effects.accountDeltas[.offlineRisk(Engine.site)] == Points(-1_500))
    }

    @Test(
        "a use of a used, cancelled or expired voucher is a conflict of its own kind, booked to the site",
        arguments: [
            ("V-USED", ConflictKind.voucherDoubleUse), ("V-CANCELLED", .voucherCancelled),
            ("V-EXPIRED", .voucherExpired),
        ])
    func conflicts(voucher: String, kind: ConflictKind) {
        var engine = Engine.engine(Self.view())
        let result = engine.post(Engine.pushed(Self.use(voucher)))
        let effects = engine.finish()
        #expect(result == PostingResult(outcome: .postedWithConflict, reason: kind.rawValue, points: .zero))
        #expect(effects.conflicts.map(\.kind) == [kind])
        #expect(effects.voucherUses.isEmpty)
        #expect(effects.accountDeltas[.offlineRisk(Engine.site)] == Points(-1_500))
        #expect(effects.accountDeltas[.redeemed(Fixture.mall)] == Points(1_500))
    }

    @Test("a prize or benefit voucher (not bought) used twice books its item's catalog price to the site")
    func notBought() {
        var view = Self.view()
        view.vouchers["V-PRIZE"] = VoucherRecord(
            voucherID: "V-PRIZE", item: ItemID("tea")!, member: Self.member, points: nil,
            validUntil: Engine.now.adding(milliseconds: 86_400_000), status: .used)
        var engine = PostingEngine(
            view: view,
            catalogue: ProgramCatalogue(versions: [
                ProgramCatalogue.Version(
                    version: 1, effectiveAt: Timestamp(milliseconds: 0), program: MallTests.program)
            ]), site: Engine.site, now: Engine.now, programGraceMilliseconds: 3_600_000,
            clockSkewMaxMilliseconds: 300_000)
        let result = engine.post(Engine.pushed(Self.use("V-PRIZE", item: "tea")))
        let effects = engine.finish()
        #expect(result.reason == "voucher_double_use")
        #expect(effects.conflicts.first?.points == Points(8_000))
        #expect(effects.accountDeltas[.offlineRisk(Engine.site)] == Points(-8_000))
        #expect(effects.members.isEmpty)
    }

    @Test("a voucher never issued, or named with another item, is rejected and marks nothing")
    func unknown() {
        for body in [Self.use("V-NOWHERE"), Self.use("V-ISSUED", item: "afternoon-tea")] {
            var engine = Engine.engine(Self.view())
            let result = engine.post(Engine.pushed(body))
            let effects = engine.finish()
            #expect(result == PostingResult(outcome: .rejected, reason: "unknown_voucher", points: .zero))
            #expect(effects.voucherUses.isEmpty && effects.accountDeltas.isEmpty)
            #expect(effects.conflicts.map(\.kind) == [.rejected])
        }
    }

    @Test("the batch's keys name the vouchers its uses read")
    func keys() {
        let keys = PostingEngine.keys(
            for: [Engine.pushed(Self.use("V-1")), Engine.pushed(Self.use("V-2"), request: "R-2", id: 2, sequence: 2)],
            catalogue: Engine.catalogue, now: Engine.now)
        #expect(keys.vouchers == ["V-1", "V-2"])
        #expect(keys.members.isEmpty)
    }
}
