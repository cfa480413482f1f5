// Goal: the points mall's rules give the numbers a member and a merchant expect: an order is
// refused for the first reason a member would read (sale window, tier, stock, per-member limit,
// points), at the window's exact edges; the catalog is validated at its key paths; the account
// view counts earned and spent per format with refunds and cancellations; recommendations rank
// by habits and affordability, deterministically.
import Core
import Testing

@Suite("Points mall rules")
struct MallTests {
    static let catalog: DocumentNode = [
        "items": [
            [
                "id": "tea", "name": "Afternoon tea", "kind": "experience", "price_points": 8000, "stock": 3,
                "per_member_max": 2, "sale_start": "2026-11-01", "sale_end": "2026-12-01T00:00",
                "sponsor": "hotel-restaurant", "format": "hotel", "category": "dining", "settlement_price_minor": 12800,
                "voucher": ["valid_days": 90, "merchants": ["hotel-restaurant"]],
            ],
            [
                "id": "mug", "name": "Mug", "kind": "goods", "price_points": 3000, "price_minor": 990, "stock": 10,
                "sale_start": "2026-11-01", "sale_end": "2027-01-01", "sponsor": "platform",
            ],
            [
                "id": "lounge", "name": "Lounge", "kind": "experience", "price_points": 100, "stock": 5,
                "tiers": ["gold"], "sale_start": "2026-11-01", "sale_end": "2027-01-01", "sponsor": "platform",
                "format": "hotel", "category": "lodging", "settlement_price_minor": 0,
                "voucher": ["valid_days": 30, "formats": ["hotel"]],
            ],
            [
                "id": "parking", "name": "Two hours", "kind": "parking_hours", "price_points": 1200, "stock": 50,
                "sale_start": "2026-11-01", "sale_end": "2027-01-01", "sponsor": "platform", "format": "parking",
                "settlement_price_minor": 1600,
                "voucher": ["valid_days": 60, "formats": ["parking"], "parking_minutes": 120],
            ],
        ]
    ]

    static let program = try! ProgramLoader.load(Fixture.document.setting("catalog", to: catalog))
    static func item(_ id: String) -> CatalogItem { program.catalog.item(ItemID(id)!)! }

    static func inputs(
        sold: Int64 = 0, adjusted: Int64 = 0, holds: Int64 = 0, tier: TierID = Fixture.member,
        available: Int64 = 100_000
    ) -> OrderRules.Inputs {
        OrderRules.Inputs(sold: sold, adjusted: adjusted, memberHolds: holds, tier: tier, available: Points(available))
    }

    @Test("the catalog loads as written: kinds, prices, windows in the program's time zone, voucher terms")
    func loads() throws {
        #expect(Self.program.catalog.items.map(\.id.rawValue) == ["tea", "mug", "lounge", "parking"])
        let tea = Self.item("tea")
        #expect(tea.kind == .experience && tea.pricePoints == Points(8000) && tea.perMemberMax == 2)
        #expect(tea.saleStart == Fixture.at("2026-11-01T00:00") && tea.saleEnd == Fixture.at("2026-12-01T00:00"))
        #expect(tea.sponsor == .merchant(Fixture.restaurant) && tea.sponsor.account == .redeemed(Fixture.restaurant))
        #expect(tea.voucher == VoucherTerms(validDays: 90, formats: [], merchants: [Fixture.restaurant]))
        let mug = Self.item("mug")
        #expect(
            mug.voucher == nil && mug.priceMoney == Money(minorUnits: 990) && mug.sponsor.account == .platformRedeemed)
        #expect(Self.item("parking").voucher?.parkingMinutes == 120)
        #expect(Fixture.program.catalog == .empty)
    }

    static let mistakes: [(change: String, value: DocumentNode?, path: String, words: String)] = [
        ("catalog.items.0.kind", "hamper", "catalog.items[0].kind", "not a kind of item"),
        ("catalog.items.0.voucher", nil, "catalog.items[0].voucher", "is required"),
        ("catalog.items.0.settlement_price_minor", nil, "catalog.items[0].settlement_price_minor", "is required"),
        ("catalog.items.1.settlement_price_minor", 5, "catalog.items[1]", "goods issue no voucher"),
        ("catalog.items.0.sponsor", "nobody-here", "catalog.items[0].sponsor", "unknown merchant"),
        ("catalog.items.0.sponsor", "Platform!", "catalog.items[0].sponsor", "not a sponsor"),
        ("catalog.items.0.tiers", ["diamond"], "catalog.items[0].tiers", "unknown tier 'diamond'"),
        ("catalog.items.0.price_points", 0, "catalog.items[0].price_points", "between"),
        ("catalog.items.0.sale_end", "2026-10-01", "catalog.items[0].sale_end", "before or when it starts"),
        ("catalog.items.0.voucher.formats", ["mall"], "catalog.items[0].voucher.merchants", "outside formats"),
        ("catalog.items.0.voucher.parking_minutes", 60, "catalog.items[0].voucher.parking_minutes", "only parking"),
        ("catalog.items.3.voucher.parking_minutes", nil, "catalog.items[3].voucher.parking_minutes", "is required"),
        ("catalog.items.0.voucher.valid_days", 0, "catalog.items[0].voucher.valid_days", "between"),
        ("catalog.items.1.id", "tea", "catalog.items[1].id", "listed twice"),
        ("catalog.items.0.format", "casino", "catalog.items[0].format", "no site has format"),
        ("catalog.items.0.colour", "red", "catalog.items[0].colour", "unknown key"),
    ]

    @Test("each catalog mistake is reported at its key path", arguments: mistakes.indices)
    func reportsMistake(_ index: Int) {
        let mistake = Self.mistakes[index]
        let document = Fixture.document.setting("catalog", to: Self.catalog).setting(mistake.change, to: mistake.value)
        Fixture.expectRefused(document, at: mistake.path, saying: mistake.words)
    }

    @Test("the sale window is half-open: open at its first instant, closed at its last")
    func saleWindow() {
        let tea = Self.item("tea")
        let start = Fixture.at("2026-11-01T00:00")
        let end = Fixture.at("2026-12-01T00:00")
        for (instant, open) in [
            (start.adding(milliseconds: -1), false), (start, true), (end.adding(milliseconds: -1), true), (end, false),
        ] {
            let decision = OrderRules.decide(tea, quantity: 1, inputs: Self.inputs(), now: instant)
            if open {
                #expect(decision == .success(Points(8000)))
            } else {
                #expect(decision == .failure(.notOnSale(start: start, end: end)))
            }
        }
    }

    static let now = Fixture.at("2026-11-24T12:00")

    @Test(
        "an order is refused for the first reason a member reads, else costs price × quantity",
        arguments: [
            // (item, quantity, inputs, expected)
            ("tea", 1, inputs(), Result<Points, OrderRefusal>.success(Points(8000))),
            ("tea", 2, inputs(), .success(Points(16000))),
            ("tea", 3, inputs(), .failure(.memberLimit(limit: 2, held: 0))),
            ("tea", 1, inputs(holds: 2), .failure(.memberLimit(limit: 2, held: 2))),
            ("tea", 1, inputs(sold: 3), .failure(.soldOut(left: 0))),
            ("tea", 2, inputs(sold: 2), .failure(.soldOut(left: 1))),
            ("tea", 2, inputs(sold: 2, adjusted: 1), .success(Points(16000))),
            ("tea", 1, inputs(sold: 1, adjusted: -5), .failure(.soldOut(left: 0))),
            (
                "tea", 1, inputs(available: 7999),
                .failure(.insufficientPoints(available: Points(7999), needed: Points(8000)))
            ),
            ("tea", 1, inputs(available: 8000), .success(Points(8000))),
            ("tea", 1, inputs(available: -40), .failure(.insufficientPoints(available: .zero, needed: Points(8000)))),
            (
                "lounge", 1, inputs(tier: Fixture.silver),
                .failure(.tierNotAllowed(tier: Fixture.silver, allowed: [Fixture.gold]))
            ),
            ("lounge", 1, inputs(tier: Fixture.gold), .success(Points(100))),
            // Goods sell out like the rest.
            ("mug", 10, inputs(sold: 10), .failure(.soldOut(left: 0))),
        ])
    func decide(item: String, quantity: Int64, inputs: OrderRules.Inputs, expected: Result<Points, OrderRefusal>) {
        #expect(OrderRules.decide(Self.item(item), quantity: quantity, inputs: inputs, now: Self.now) == expected)
    }

    @Test("quantity and points-plus-money cost: 1 to 10 units, money per unit times units")
    func cost() {
        let mug = Self.item("mug")
        #expect(OrderRules.cost(mug, quantity: 0) == nil)
        #expect(OrderRules.cost(mug, quantity: 11) == nil)
        let three = OrderRules.cost(mug, quantity: 3)
        #expect(three?.points == Points(9000) && three?.money == Money(minorUnits: 2970))
    }

    static func entry(_ kind: TransactionKind, _ points: Int64, site: String?, merchant: String? = nil, day: String)
        -> MemberActivity
    {
        MemberActivity(
            kind: kind, points: Points(points), site: site.flatMap(SiteID.init),
            merchant: merchant.flatMap(MerchantID.init),
            occurredAt: Fixture.at(day + "T12:00"))
    }

    @Test("earned and spent per format: refunds lower earned, cancellations lower spent, orders are the mall's")
    func totals() {
        let entries = [
            Self.entry(.enroll, 200, site: "mall-01", day: "2026-01-05"),
            Self.entry(.earn, 1000, site: "mall-01", merchant: "mall-fashion", day: "2026-02-01"),
            Self.entry(.reverse, -300, site: "mall-01", merchant: "mall-fashion", day: "2026-02-02"),
            Self.entry(.earn, 500, site: "hotel-01", merchant: "hotel-rooms", day: "2026-03-01"),
            Self.entry(.redeem, -600, site: "hotel-01", merchant: "hotel-restaurant", day: "2026-03-02"),
            Self.entry(.reverse, 600, site: "hotel-01", merchant: "hotel-restaurant", day: "2026-03-02"),
            Self.entry(.parking, -400, site: "park-01", merchant: "park-operator", day: "2026-04-01"),
            Self.entry(.order, -1500, site: nil, day: "2026-05-01"),
            Self.entry(.order, -8000, site: nil, day: "2026-05-02"),
            Self.entry(.reverse, 8000, site: nil, day: "2026-05-03"),
            Self.entry(.adjust, 50, site: nil, day: "2026-06-01"),
            Self.entry(.expire, -20, site: nil, day: "2026-07-01"),
        ]
        let totals = AccountView.totalsByFormat(entries, program: Fixture.program)
        #expect(
            totals == [
                "mall": FormatTotals(earned: Points(900)), "hotel": FormatTotals(earned: Points(500)),
                "parking": FormatTotals(spent: Points(400)), "points_mall": FormatTotals(spent: Points(1500)),
                "service": FormatTotals(earned: Points(50)),
            ])
    }

    @Test("expiring points: windows of 30, 60 and 90 days include their last instant, not what expired already")
    func expiring() {
        let now = Fixture.at("2026-11-24T12:00")
        let day: Int64 = 86_400_000
        let lots: [(expiresAt: Timestamp, remaining: Points)] = [
            (now, Points(1)),  // expired already (at now)
            (now.adding(milliseconds: 30 * day), Points(10)),
            (now.adding(milliseconds: 30 * day + 1), Points(20)),
            (now.adding(milliseconds: 30 * day + 1), Points(5)),
            (now.adding(milliseconds: 90 * day), Points(40)),
            (now.adding(milliseconds: 90 * day + 1), Points(80)),
            (now.adding(milliseconds: 45 * day), Points(0)),
        ]
        let result = AccountView.expiring(lots, now: now)
        #expect(result.windows == [Points(10), Points(35), Points(75)])
        #expect(result.lots.map(\.points) == [Points(10), Points(25), Points(40)])
    }

    @Test("the next tier and the qualifying points still needed; none at the top")
    func nextTier() {
        let tiers = Fixture.program.tiers
        let fromMember = AccountView.nextTier(after: Fixture.member, qualifying: Points(1200), tiers: tiers)
        #expect(fromMember?.tier.id == Fixture.silver && fromMember?.needed == Points(3800))
        let past = AccountView.nextTier(after: Fixture.silver, qualifying: Points(25_000), tiers: tiers)
        #expect(past?.tier.id == Fixture.gold && past?.needed == .zero)
        #expect(AccountView.nextTier(after: Fixture.gold, qualifying: Points(99_999), tiers: tiers) == nil)
    }

    @Test("recommendations follow the member's formats and categories, then what the points afford")
    func recommendations() {
        let now = Fixture.at("2026-11-24T12:00")
        let entries = [
            Self.entry(.earn, 500, site: "hotel-01", merchant: "hotel-restaurant", day: "2026-11-20"),
            Self.entry(.earn, 500, site: "hotel-01", merchant: "hotel-restaurant", day: "2026-11-10"),
            Self.entry(.earn, 500, site: "park-01", merchant: "park-operator", day: "2026-11-01"),
            // Older than 90 days: not a habit any more.
            Self.entry(.earn, 500, site: "mall-01", merchant: "mall-fashion", day: "2026-07-01"),
        ]
        let habits = Recommendations.habits(entries, program: Self.program, now: now)
        #expect(habits.formats == [Format("hotel")!: 2, Format("parking")!: 1])
        #expect(habits.categories == [Category("dining")!: 2, Category("parking")!: 1])
        let ranked = Recommendations.rank(
            Self.program.catalog, left: { _ in 1 }, tier: Fixture.member, available: Points(5000), habits: habits,
            now: now, limit: 10)
        // tea: hotel 40+4, dining 30+4, 3000 short → −30 = 48; parking (no category): 40+2, affordable
        // +20 = 62; mug: affordable 20; lounge: gold only, left out.
        #expect(ranked.map(\.item.id.rawValue) == ["parking", "tea", "mug"])
        #expect(ranked.map(\.score) == [62, 48, 20])
        #expect(ranked[1].reasons.contains("3000 more points needed"))
        let none = Recommendations.rank(
            Self.program.catalog, left: { _ in 0 }, tier: Fixture.gold, available: Points(5000), habits: habits,
            now: now, limit: 10)
        #expect(none.isEmpty, "nothing left to sell is never recommended")
    }
}

/// Vouchers: issued with an order, checked at a till.
extension MallTests {
    static let voucher = VoucherRules.issue(
        item("tea"), at: Fixture.at("2026-11-24T12:00").adding(milliseconds: 30_000), keyID: 1,
        ids: [TransactionID(value: 42)])[0]

    @Test("a voucher is valid for its item's days from the order, to the minute")
    func issue() {
        #expect(Self.voucher.validUntil == Fixture.at("2027-02-22T12:00"))
        #expect(Self.voucher.item == ItemID("tea") && Self.voucher.keyID == 1)
        #expect(VoucherRules.issue(Self.item("mug"), at: Self.now, keyID: 1, ids: [TransactionID(value: 1)]).isEmpty)
        #expect(VoucherRules.issue(Self.item("tea"), at: Self.now, keyID: 1, ids: []).isEmpty)
    }

    @Test(
        "a till honours a voucher in its scope, until the instant it expires, once",
        arguments: [
            // (merchant, at, status, expected reason or nil)
            ("hotel-restaurant", "2027-02-22T11:59", nil, nil),
            ("hotel-restaurant", "2027-02-22T12:00", nil, "VOUCHER_EXPIRED"),
            ("hotel-rooms", "2026-12-01T12:00", nil, "VOUCHER_WRONG_MERCHANT"),
            ("mall-fashion", "2026-12-01T12:00", nil, "VOUCHER_WRONG_MERCHANT"),
            ("no-such-till", "2026-12-01T12:00", nil, "VOUCHER_WRONG_MERCHANT"),
            ("hotel-restaurant", "2026-12-01T12:00", VoucherStatus.used, "VOUCHER_USED"),
            ("hotel-restaurant", "2026-12-01T12:00", VoucherStatus.cancelled, "VOUCHER_CANCELLED"),
            ("hotel-restaurant", "2026-12-01T12:00", VoucherStatus.issued, nil),
        ] as [(String, String, VoucherStatus?, String?)])
    func check(merchant: String, at: String, status: VoucherStatus?, reason: String?) {
        let result = VoucherRules.check(
            Self.voucher, program: Self.program, merchant: MerchantID(merchant)!, now: Fixture.at(at), status: status)
        switch result {
        case .success(let item): #expect(reason == nil && item.id == ItemID("tea"))
        case .failure(let refusal): #expect(refusal.reason == reason)
        }
    }

    @Test("a voucher's format scope, and an item the program no longer lists")
    func scope() {
        let lounge = VoucherRules.issue(Self.item("lounge"), at: Self.now, keyID: 1, ids: [TransactionID(value: 7)])[0]
        let at = Fixture.at("2026-12-01T12:00")
        #expect(
            (try? VoucherRules.check(lounge, program: Self.program, merchant: Fixture.rooms, now: at, status: nil).get())
                != nil)
        #expect(
            VoucherRules.check(lounge, program: Self.program, merchant: Fixture.mall, now: at, status: nil)
                == .failure(.wrongFormat(Format("mall")!)))
        #expect(
            VoucherRules.check(lounge, program: Fixture.program, merchant: Fixture.rooms, now: at, status: nil)
                == .failure(.unknownItem("lounge")))
    }
}
