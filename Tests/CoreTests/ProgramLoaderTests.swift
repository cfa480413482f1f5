// Goal: a valid program loads with every value as written, and every kind of mistake an operator
// can make is reported with the key path where it is and a sentence that says what is wrong.
import Core
import Testing

@Suite("Program loader")
struct ProgramLoaderTests {
    @Test("the fixture loads with its values as written")
    func loadsFixture() throws {
        let program = Fixture.program
        #expect(program.id == "fixture-group")
        #expect(program.currency.minorPerMajor == 100)
        #expect(program.sites.map(\.id.rawValue) == ["mall-01", "hotel-01", "park-01"])
        #expect(program.merchant(Fixture.grocer)?.site.id.rawValue == "mall-01")
        #expect(program.earn.categoryRates[Category("grocery")!] == Rate(parsing: "0.5"))
        #expect(program.earn.promotions.count == 2)
        #expect(program.earn.promotions[0].start == Fixture.at("2026-11-28T00:00"))
        #expect(program.earn.promotions[1].budget == Points(300_000))
        #expect(program.tiers.tiers.map(\.threshold.value) == [0, 5000, 20000])
        #expect(program.redeem.maximumBillShare == Rate(parsing: "0.5"))
        #expect(program.site(SiteID("park-01")!)?.parking?.dailyCap == Money(minorUnits: 6000))
        // The hotel overrides one offline key and inherits the rest.
        let hotel = try #require(program.site(SiteID("hotel-01")!))
        #expect(hotel.offline.pointsPerTransactionMax == Points(20000))
        #expect(hotel.offline.pointsPerMemberPerDayMax == Points(10000))
        #expect(program.merchant(Fixture.jeweller)?.merchant.settlementPrices?.issuePrice == Rate(parsing: "1.5"))
    }

    /// One mistake each: the change to the fixture, the path reported, and words of the message.
    static let mistakes: [(change: String, value: DocumentNode?, path: String, words: String)] = [
        (
            "earn.promotions.1.filter.merchants", ["nobody"], "earn.promotions[1].filter.merchants",
            "unknown merchant 'nobody'"
        ),
        ("tiers.levels.2.threshold", 5000, "tiers.levels[2].threshold", "overlapping tier thresholds"),
        ("tiers.levels.2.threshold", 4000, "tiers.levels[2].threshold", "overlapping tier thresholds"),
        ("earn.base_rates.mall", "-1", "earn.base_rates.mall", "must not be negative"),
        ("earn.category_rates.grocery", "-0.5", "earn.category_rates.grocery", "must not be negative"),
        (
            "earn.promotions.0.end", "2026-11-27", "earn.promotions[0].end",
            "ends (2026-11-27T00:00) before or when it starts"
        ),
        ("earn.promotions.0.end", "2026-11-28", "earn.promotions[0].end", "before or when it starts"),
        ("earn.bse_rates", ["mall": "1"], "earn.bse_rates", "unknown key"),
        ("redeem.minimum_points", nil, "redeem.minimum_points", "is required"),
        ("sites.0.id", "Mall 01", "sites[0].id", "is not a valid id"),
        ("sites.1.id", "mall-01", "sites[1].id", "site 'mall-01' is listed twice"),
        ("sites.1.merchants.0.id", "mall-fashion", "sites[1].merchants[0].id", "already listed at site 'mall-01'"),
        ("time_zone", "Mars/Olympus", "time_zone", "unknown time zone"),
        ("earn.base_rates.hotel", nil, "sites[1].format", "no rate in earn.base_rates"),
        ("settlement.format_prices.parking", nil, "sites[2].format", "no prices in settlement.format_prices"),
        ("tiers.levels.0.threshold", 10, "tiers.levels[0].threshold", "first tier must have threshold 0"),
        ("tiers.levels.1.multiplier", "0.9", "tiers.levels[1].multiplier", "must be at least 1"),
        ("tiers.levels.1.id", "member", "tiers.levels[1].id", "listed twice"),
        ("tiers.levels", [], "tiers.levels", "at least one tier"),
        ("redeem.maximum_bill_share", "1.5", "redeem.maximum_bill_share", "must be at most 1"),
        ("redeem.maximum_bill_share", "0", "redeem.maximum_bill_share", "must be above 0"),
        ("redeem.point_value.points", 0, "redeem.point_value.points", "between 1 and"),
        ("expiry.months", "twelve", "expiry.months", "not a whole number"),
        ("expiry.months", 0, "expiry.months", "must be between 1 and 120"),
        ("expiry.reminder_days", -1, "expiry.reminder_days", "must not be negative"),
        ("earn.promotions.0.bonus_points", 100, "earn.promotions[0]", "either multiplier or bonus_points"),
        ("earn.promotions.0.multiplier", nil, "earn.promotions[0]", "needs multiplier or bonus_points"),
        ("earn.promotions.0.multiplier", "0.5", "earn.promotions[0].multiplier", "must be at least 1"),
        ("earn.promotions.1.budget_points", 0, "earn.promotions[1].budget_points", "between 1 and"),
        ("earn.promotions.1.id", "double-saturday", "earn.promotions[1].id", "listed twice"),
        ("earn.promotions.0.filter.sites", ["mall-99"], "earn.promotions[0].filter.sites", "unknown site 'mall-99'"),
        (
            "earn.promotions.0.filter.formats", ["casino"], "earn.promotions[0].filter.formats",
            "no site has format 'casino'"
        ),
        ("earn.promotions.0.filter.formats", ["mall", "mall"], "earn.promotions[0].filter.formats[1]", "listed twice"),
        ("earn.promotions.0.start", "2026-13-01", "earn.promotions[0].start", "not a local date or time"),
        ("sites.2.parking", nil, "sites[2].parking", "is required for a site of format 'parking'"),
        ("sites.2.parking.daily_cap_minor", 500, "sites[2].parking.daily_cap_minor", "at least price_per_hour_minor"),
        ("sites.2.parking.grace_minutes", 2000, "sites[2].parking.grace_minutes", "between 0 and 1440"),
        ("sites.0.merchants", [], "sites[0].merchants", "at least one merchant"),
        ("sites.0.merchants.0.earn_rate", "1.1234567", "sites[0].merchants[0].earn_rate", "not an exact decimal"),
        ("sites", [], "sites", "at least one site"),
        ("currency.code", "cny", "currency.code", "ISO 4217"),
        ("currency.minor_unit_digits", 5, "currency.minor_unit_digits", "between 0 and 4"),
        ("limits", [1], "limits", "expected a mapping"),
        ("limits.lines_max", ["a": "b"], "limits.lines_max", "expected a single value"),
        ("program", "Harbour Group", "program", "must be 1 to 32 characters"),
        ("earn.streak.days", 1, "earn.streak.days", "between 2 and 365"),
        ("earn.cross_format.rate", "11", "earn.cross_format.rate", "must be at most 10"),
        ("earn.excluded_categories", "tobacco", "earn.excluded_categories", "expected a list"),
        ("offline_defaults.site_exposure_max_points", nil, "offline_defaults.site_exposure_max_points", "is required"),
        ("sites.1.offline.offline_minutes", 5, "sites[1].offline.offline_minutes", "unknown key"),
        ("name", "", "name", "must be 1 to 200 characters"),
        // #13 item 12: a redeem price above every issue price would fund arbitrage.
        (
            "settlement.format_prices.hotel.redeem_price", "1.6", "settlement.format_prices.hotel.redeem_price",
            "above every issue price"
        ),
        (
            "sites.0.merchants.2.settlement.redeem_price", "2", "sites[0].merchants[2].settlement.redeem_price",
            "above every issue price"
        ),
        ("settlement.redeem_above_issue", "maybe", "settlement.redeem_above_issue", "must be 'refuse'"),
        ("earn.referral_paid_at", "later", "earn.referral_paid_at", "must be 'enrolment'"),
        // #14 item 10: an out-of-range number says so.
        ("expiry.months", "1000000000000000000000000000000", "expiry.months", "is out of range"),
        ("earn.base_rates.mall", "2000000", "earn.base_rates.mall", "is out of range"),
        // #14 item 1: funders.
        ("earn.funded_by.tier", "the bank", "earn.funded_by.tier", "is not a funder"),
        ("earn.funded_by.tier", "mall-nobody", "earn.funded_by.tier", "unknown merchant 'mall-nobody'"),
        ("earn.funded_by.welcome", "platform", "earn.funded_by.welcome", "is not a kind of bonus"),
        ("earn.promotions.0.funded_by", "The Bank", "earn.promotions[0].funded_by", "is not a funder"),
    ]

    /// #14 item 1: who funds each bonus, with the documented defaults.
    @Test("bonus funders: the platform by default, a promotion its recording merchant, each as written")
    func funders() throws {
        #expect(Fixture.program.earn.funding == .defaults)
        #expect(BonusFunding.defaults.signup == .platform && BonusFunding.defaults.tier == .platform)
        #expect(Fixture.program.earn.promotions[0].fundedBy == .recordingMerchant)
        let program = try ProgramLoader.load(
            Fixture.document.setting("earn.funded_by.tier", to: "merchant")
                .setting("earn.funded_by.signup", to: "hotel-rooms")
                .setting("earn.promotions.0.funded_by", to: "platform"))
        #expect(program.earn.funding.tier == .recordingMerchant)
        #expect(program.earn.funding.signup == .merchant(Fixture.rooms))
        #expect(program.earn.funding.birthday == .platform)
        #expect(program.earn.promotions[0].fundedBy == .platform)
    }

    /// #14 item 10: one mistake does not cascade into untrue errors elsewhere.
    @Test("a site refused for one mistake still declares its id, format and merchants to the promotions")
    func noCascade() {
        let document = Fixture.document.setting("offline_defaults.offline_minutes_max", to: 999_999)
        do {
            _ = try ProgramLoader.load(document)
            Issue.record("the document loaded")
        } catch {
            #expect(!error.errors.contains { $0.message.contains("no site has format") }, "\(error)")
            #expect(!error.errors.contains { $0.message.contains("unknown merchant") }, "\(error)")
            #expect(error.errors.contains { $0.path.contains("offline_minutes_max") }, "\(error)")
        }
    }

    @Test("a redeem price above every issue price loads only when the program says it is intended")
    func redeemAboveIssueAllowed() throws {
        let document = Fixture.document.setting("settlement.format_prices.hotel.redeem_price", to: "1.6")
            .setting("settlement.redeem_above_issue", to: "allow")
        let program = try ProgramLoader.load(document)
        #expect(program.settlement.redeemAboveIssueAllowed)
        #expect(program.settlement.formatPrices[Format("hotel")!]?.redeemPrice == Rate(parsing: "1.6"))
        // At the highest issue price (1.5) it is not above: no setting needed.
        _ = try ProgramLoader.load(Fixture.document.setting("settlement.format_prices.hotel.redeem_price", to: "1.5"))
    }

    @Test("each mistake is reported at its key path", arguments: mistakes.indices)
    func reportsMistake(_ index: Int) {
        let mistake = Self.mistakes[index]
        let document = Fixture.document.setting(mistake.change, to: mistake.value)
        #expect(throws: ProgramErrors.self) { try ProgramLoader.load(document) }
        do {
            _ = try ProgramLoader.load(document)
        } catch {
            let match = error.errors.first { $0.path == mistake.path && $0.message.contains(mistake.words) }
            #expect(match != nil, "expected \(mistake.path): …\(mistake.words)…, got:\n\(error)")
        }
    }

    @Test("every mistake in a document is reported at once, not just the first")
    func reportsAll() {
        let document = Fixture.document
            .setting("expiry.months", to: 0)
            .setting("earn.base_rates.mall", to: "-1")
            .setting("tiers.levels.2.threshold", to: 10)
        do {
            _ = try ProgramLoader.load(document)
            Issue.record("the document loaded")
        } catch {
            let paths = Set(error.errors.map(\.path))
            #expect(paths.isSuperset(of: ["expiry.months", "earn.base_rates.mall", "tiers.levels[2].threshold"]))
        }
    }

    @Test("a document that is not a mapping is refused")
    func notAMapping() {
        #expect(throws: ProgramErrors.self) { try ProgramLoader.load(["a", "b"]) }
        #expect(throws: ProgramErrors.self) { try ProgramLoader.load("program") }
    }
}
