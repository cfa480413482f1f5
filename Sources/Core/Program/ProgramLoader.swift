/// Turns a program document into a validated `Program`, or every problem found, each with its key
/// path (`tiers.levels[2].threshold: …`). docs/rules.md describes every key.
package enum ProgramLoader: Sendable {
    /// Loads and validates `document`. Throws `ProgramErrors` listing every problem.
    package static func load(_ document: DocumentNode) throws(ProgramErrors) -> Program {
        let diagnostics = DocumentDiagnostics()
        let program = build(document, diagnostics)
        if let program, diagnostics.errors.isEmpty { return program }
        var errors = diagnostics.errors
        if errors.isEmpty { errors = [ProgramError(path: DocumentPath.root.description, message: "is not a program")] }
        throw ProgramErrors(errors: errors)
    }

    // MARK: Limits of the document itself

    /// The most sites a program may list.
    package static let sitesMax = 1_000
    /// The most merchants one site may list.
    package static let merchantsPerSiteMax = 5_000
    /// The most promotions a program may list.
    package static let promotionsMax = 500
    /// The most tiers a program may list.
    package static let tiersMax = 20
    /// The largest whole-number amount a program may state (minor units or points): 10^12.
    package static let amountMax: Int64 = 1_000_000_000_000

    // MARK: Building

    private static func build(_ document: DocumentNode, _ diagnostics: DocumentDiagnostics) -> Program? {
        guard let root = MapReader(document, at: .root, diagnostics: diagnostics) else { return nil }
        let id = root.string("program", lengthMax: 64)
        if let id, !Slug.isValid(id) { diagnostics.fail(DocumentPath.root.key("program"), "'\(id)' \(Slug.rule)") }
        let name = root.string("name")
        let currency = root.map("currency").flatMap(Self.currency)
        let timeZone = root.string("time_zone", lengthMax: 64).flatMap { text -> ProgramTimeZone? in
            guard let zone = ProgramTimeZone(identifier: text) else {
                diagnostics.fail(
                    DocumentPath.root.key("time_zone"),
                    "unknown time zone '\(text)' (use an IANA name such as Asia/Shanghai)")
                return nil
            }
            return zone
        }
        let limits = root.map("limits").flatMap(Self.limits)
        let offlineDefaults = root.map("offline_defaults").flatMap { Self.offline($0, defaults: nil) }
        let earnReader = root.map("earn")
        let redeem = root.map("redeem").flatMap(Self.redeem)
        let tiers = root.map("tiers").flatMap(Self.tiers)
        let expiry = root.map("expiry").flatMap(Self.expiry)
        let settlementReader = root.map("settlement")
        let siteItems = root.list("sites")
        let sites = siteItems.map { Self.sites($0, offlineDefaults: offlineDefaults, diagnostics) } ?? []
        // References (promotion filters) are checked against what the document declares, so that
        // a site refused for another mistake does not make them look unknown as well.
        let declared = Self.declared(siteItems ?? [])
        let siteIDs = Set(sites.map(\.id)).union(declared.sites)
        let merchantIDs = Set(sites.flatMap { $0.merchants.map(\.id) }).union(declared.merchants)
        let formats = Set(sites.map(\.format)).union(declared.formats)
        let earn = earnReader.flatMap {
            Self.earnRules($0, timeZone: timeZone, sites: siteIDs, merchants: merchantIDs, formats: formats)
        }
        let settlement = settlementReader.flatMap { Self.settlement($0) }
        let catalog =
            root.map("catalog", required: false).map { reader in
                Self.catalog(
                    reader, timeZone: timeZone,
                    references: CatalogReferences(
                        sites: sites, tiers: Set(tiers?.tiers.map(\.id) ?? []), formats: formats,
                        merchants: merchantIDs))
            } ?? .empty
        let lotteries =
            root.map("lotteries", required: false).map { reader in
                Self.lotteries(reader, timeZone: timeZone, catalog: catalog)
            } ?? .empty
        let allowances =
            root.map("allowances", required: false).map { reader in
                Self.allowances(reader, sites: sites, points: limits?.pointsPerTransactionMax ?? Points(amountMax))
            } ?? .none
        let promotionQuotas = root.map("promotion_quotas", required: false).map(Self.promotionQuotas) ?? .defaults
        root.finish()
        if let settlement {
            checkPrizeValues(lotteries, catalog: catalog, settlement: settlement, sites: sites, diagnostics)
        }
        if let tiers { checkBenefits(tiers, catalog: catalog, diagnostics) }

        // Every site's format needs a base earn rate and settlement prices.
        for (index, site) in sites.enumerated() {
            let path = DocumentPath.root.key("sites").index(index).key("format")
            if let earn, earn.baseRates[site.format] == nil {
                diagnostics.fail(path, "format '\(site.format)' has no rate in earn.base_rates")
            }
            if let settlement, settlement.formatPrices[site.format] == nil {
                diagnostics.fail(path, "format '\(site.format)' has no prices in settlement.format_prices")
            }
        }

        if let settlement { checkRedeemAboveIssue(settlement, sites: sites, diagnostics) }

        guard let id, let name, let currency, let timeZone, let limits, let earn, let redeem, let tiers,
            let expiry, let settlement, !sites.isEmpty
        else { return nil }
        return Program(
            id: id, name: name, currency: currency, timeZone: timeZone, limits: limits, sites: sites,
            earn: earn, redeem: redeem, tiers: tiers, expiry: expiry, settlement: settlement, catalog: catalog,
            lotteries: lotteries, allowances: allowances, promotionQuotas: promotionQuotas)
    }

    private static func currency(_ map: MapReader) -> Currency? {
        let code = map.string("code", lengthMax: 3)
        if let code, code.count != 3 || !code.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) {
            map.diagnostics.fail(map.path.key("code"), "'\(code)' is not an ISO 4217 code of three capital letters")
        }
        let digits = map.integer("minor_unit_digits", in: 0...4)
        map.finish()
        guard let code, let digits else { return nil }
        return Currency(code: code, minorUnitDigits: Int(digits))
    }

    private static func limits(_ map: MapReader) -> ProgramLimits? {
        let amount = map.integer("transaction_amount_max_minor", in: 1...amountMax)
        let lines = map.integer("lines_max", in: 1...1_000)
        let points = map.integer("points_per_transaction_max", in: 1...amountMax)
        map.finish()
        guard let amount, let lines, let points else { return nil }
        return ProgramLimits(
            transactionAmountMax: Money(minorUnits: amount), linesMax: Int(lines),
            pointsPerTransactionMax: Points(points))
    }

    /// Offline limits; with `defaults`, every key is optional and falls back to them.
    private static func offline(_ map: MapReader, defaults: OfflineLimits?) -> OfflineLimits? {
        let required = defaults == nil
        let perTransaction = map.integer("points_per_transaction_max", in: 0...amountMax, required: required)
        let perDay = map.integer("points_per_member_per_day_max", in: 0...amountMax, required: required)
        let exposure = map.integer("site_exposure_max_points", in: 0...amountMax, required: required)
        let minutes = map.integer("offline_minutes_max", in: 0...525_600, required: required)
        map.finish()
        if let defaults {
            return OfflineLimits(
                pointsPerTransactionMax: perTransaction.map(Points.init) ?? defaults.pointsPerTransactionMax,
                pointsPerMemberPerDayMax: perDay.map(Points.init) ?? defaults.pointsPerMemberPerDayMax,
                siteExposureMax: exposure.map(Points.init) ?? defaults.siteExposureMax,
                offlineMinutesMax: minutes.map(Int.init) ?? defaults.offlineMinutesMax)
        }
        guard let perTransaction, let perDay, let exposure, let minutes else { return nil }
        return OfflineLimits(
            pointsPerTransactionMax: Points(perTransaction), pointsPerMemberPerDayMax: Points(perDay),
            siteExposureMax: Points(exposure), offlineMinutesMax: Int(minutes))
    }

    /// The site ids, merchant ids and formats the document declares, read leniently (a site with
    /// another mistake still declares them); the mistakes themselves are reported by `sites`.
    private static func declared(_ items: [(path: DocumentPath, node: DocumentNode)]) -> (
        sites: Set<SiteID>, merchants: Set<MerchantID>, formats: Set<Format>
    ) {
        func value(_ node: DocumentNode, _ key: String) -> DocumentNode? {
            guard case .map(let entries) = node else { return nil }
            return entries.first { $0.key == key }?.value
        }
        func text(_ node: DocumentNode?) -> String? {
            if case .scalar(let text)? = node { return text }
            return nil
        }
        var result: (sites: Set<SiteID>, merchants: Set<MerchantID>, formats: Set<Format>) = ([], [], [])
        for item in items {
            if let id = text(value(item.node, "id")).flatMap(SiteID.init) { result.sites.insert(id) }
            if let format = text(value(item.node, "format")).flatMap(Format.init) { result.formats.insert(format) }
            if case .list(let merchants)? = value(item.node, "merchants") {
                for merchant in merchants {
                    if let id = text(value(merchant, "id")).flatMap(MerchantID.init) { result.merchants.insert(id) }
                }
            }
        }
        return result
    }

    private static func sites(
        _ items: [(path: DocumentPath, node: DocumentNode)], offlineDefaults: OfflineLimits?,
        _ diagnostics: DocumentDiagnostics
    ) -> [Site] {
        if items.isEmpty { diagnostics.fail(DocumentPath.root.key("sites"), "must list at least one site") }
        if items.count > sitesMax {
            diagnostics.fail(DocumentPath.root.key("sites"), "lists more than \(sitesMax) sites")
        }
        var sites: [Site] = []
        var seenSites: Set<SiteID> = []
        var seenMerchants: [MerchantID: SiteID] = [:]
        for item in items {
            guard let map = MapReader(item.node, at: item.path, diagnostics: diagnostics) else { continue }
            let id = map.slug("id", as: SiteID.self)
            let name = map.string("name")
            let format = map.slug("format", as: Format.self)
            let parking = map.map("parking", required: false).flatMap(Self.parkingTariff)
            let offlineReader = map.map("offline", required: false)
            let offline: OfflineLimits? =
                if let offlineReader {
                    offlineDefaults.flatMap { Self.offline(offlineReader, defaults: $0) }
                } else {
                    offlineDefaults
                }
            var merchants: [Merchant] = []
            if let list = map.list("merchants") {
                if list.isEmpty { diagnostics.fail(map.path.key("merchants"), "must list at least one merchant") }
                if list.count > merchantsPerSiteMax {
                    diagnostics.fail(map.path.key("merchants"), "lists more than \(merchantsPerSiteMax) merchants")
                }
                for merchantItem in list {
                    guard let merchant = self.merchant(merchantItem.node, at: merchantItem.path, site: id, diagnostics)
                    else { continue }
                    if let other = seenMerchants[merchant.id] {
                        diagnostics.fail(
                            merchantItem.path.key("id"),
                            "merchant '\(merchant.id)' is already listed at site '\(other)'; a merchant belongs to one site"
                        )
                        continue
                    }
                    seenMerchants[merchant.id] = merchant.site
                    merchants.append(merchant)
                }
            }
            map.finish()
            if let format, format.rawValue == "parking", parking == nil, !map.has("parking") {
                diagnostics.fail(map.path.key("parking"), "is required for a site of format 'parking'")
            }
            guard let id, let name, let format, let offline else { continue }
            if !seenSites.insert(id).inserted {
                diagnostics.fail(map.path.key("id"), "site '\(id)' is listed twice")
                continue
            }
            sites.append(
                Site(id: id, name: name, format: format, merchants: merchants, parking: parking, offline: offline))
        }
        return sites
    }

    private static func merchant(
        _ node: DocumentNode, at path: DocumentPath, site: SiteID?, _ diagnostics: DocumentDiagnostics
    ) -> Merchant? {
        guard let map = MapReader(node, at: path, diagnostics: diagnostics) else { return nil }
        let id = map.slug("id", as: MerchantID.self)
        let name = map.string("name")
        let category = map.slug("category", as: Category.self)
        let earnRate = map.rate("earn_rate", required: false)
        let prices = map.map("settlement", required: false).flatMap(Self.settlementPrices)
        map.finish()
        guard let id, let name, let category, let site else { return nil }
        return Merchant(
            id: id, name: name, site: site, category: category, earnRate: earnRate, settlementPrices: prices)
    }

    private static func parkingTariff(_ map: MapReader) -> ParkingTariff? {
        let grace = map.integer("grace_minutes", in: 0...1_440)
        let price = map.integer("price_per_hour_minor", in: 0...amountMax)
        let cap = map.integer("daily_cap_minor", in: 1...amountMax, required: false)
        map.finish()
        guard let grace, let price else { return nil }
        if let cap, cap < price {
            map.diagnostics.fail(
                map.path.key("daily_cap_minor"), "must be at least price_per_hour_minor (\(price)), found \(cap)")
            return nil
        }
        return ParkingTariff(
            graceMinutes: Int(grace), pricePerHour: Money(minorUnits: price),
            dailyCap: cap.map { Money(minorUnits: $0) })
    }

    private static func earnRules(
        _ map: MapReader, timeZone: ProgramTimeZone?, sites: Set<SiteID>, merchants: Set<MerchantID>,
        formats: Set<Format>
    ) -> EarnRules? {
        let diagnostics = map.diagnostics
        var baseRates: [Format: Rate] = [:]
        if let rates = map.map("base_rates") {
            for key in rates.keys {
                let path = rates.path.key(key)
                guard let format = Format(key) else {
                    diagnostics.fail(path, "'\(key)' is not a valid format: it \(Slug.rule)")
                    _ = rates.node(key, required: false)
                    continue
                }
                if let rate = rates.rate(key) { baseRates[format] = rate }
            }
            rates.finish()
        }
        var categoryRates: [Category: Rate] = [:]
        if let rates = map.map("category_rates", required: false) {
            for key in rates.keys {
                guard let category = Category(key) else {
                    diagnostics.fail(rates.path.key(key), "'\(key)' is not a valid category: it \(Slug.rule)")
                    _ = rates.node(key, required: false)
                    continue
                }
                if let rate = rates.rate(key) { categoryRates[category] = rate }
            }
            rates.finish()
        }
        let excluded = map.slugSet("excluded_categories", as: Category.self)
        let signup = map.integer("signup_points", in: 0...amountMax, required: false) ?? 0
        let referral = map.integer("referral_points", in: 0...amountMax, required: false) ?? 0
        let birthday = map.map("birthday", required: false).flatMap { Self.bonus($0, allowBudget: false).bonus }
        let streak = map.map("streak", required: false).flatMap { reader -> StreakBonus? in
            let days = reader.integer("days", in: 2...365)
            let points = reader.integer("points", in: 1...amountMax)
            reader.finish()
            guard let days, let points else { return nil }
            return StreakBonus(days: Int(days), points: Points(points))
        }
        let crossFormat = map.map("cross_format", required: false).flatMap { reader -> CrossFormatBonus? in
            let days = reader.integer("window_days", in: 1...365)
            let rate = reader.rate("rate", maximum: Rate(integer: 10))
            reader.finish()
            guard let days, let rate else { return nil }
            return CrossFormatBonus(windowDays: Int(days), rate: rate)
        }
        var promotions: [Promotion] = []
        if let items = map.list("promotions", required: false) {
            if items.count > promotionsMax {
                diagnostics.fail(map.path.key("promotions"), "lists more than \(promotionsMax) promotions")
            }
            var seen: Set<PromotionID> = []
            for item in items {
                guard
                    let promotion = Self.promotion(
                        item.node, at: item.path, timeZone: timeZone, sites: sites, merchants: merchants,
                        formats: formats, diagnostics)
                else { continue }
                if !seen.insert(promotion.id).inserted {
                    diagnostics.fail(item.path.key("id"), "promotion '\(promotion.id)' is listed twice")
                    continue
                }
                promotions.append(promotion)
            }
        }
        let timing = map.string("referral_paid_at", required: false, lengthMax: 32) ?? "enrolment"
        let referralPaidAt = ReferralTiming(rawValue: timing)
        if referralPaidAt == nil {
            diagnostics.fail(map.path.key("referral_paid_at"), "must be 'enrolment' (the default) or 'first_purchase'")
        }
        let funding = Self.bonusFunding(map, merchants: merchants)
        map.finish()
        return EarnRules(
            baseRates: baseRates, categoryRates: categoryRates, excludedCategories: excluded, promotions: promotions,
            crossFormat: crossFormat, birthday: birthday, signupPoints: Points(signup),
            referralPoints: Points(referral),
            streak: streak, referralPaidAt: referralPaidAt ?? .enrolment, funding: funding)
    }

    /// Reads `multiplier` or `bonus_points` (exactly one), and `budget_points` when allowed.
    private static func bonus(_ map: MapReader, allowBudget: Bool) -> (bonus: Bonus?, budget: Points?) {
        let hasMultiplier = map.has("multiplier")
        let hasPoints = map.has("bonus_points")
        var bonus: Bonus?
        if hasMultiplier && hasPoints {
            map.diagnostics.fail(map.path, "give either multiplier or bonus_points, not both")
            _ = map.node("multiplier", required: false)
            _ = map.node("bonus_points", required: false)
        } else if hasMultiplier {
            if let rate = map.rate("multiplier", maximum: Rate(integer: 100)) {
                if rate < .one {
                    map.diagnostics.fail(map.path.key("multiplier"), "must be at least 1 (found \(rate))")
                } else {
                    bonus = .multiplier(rate)
                }
            }
        } else if hasPoints {
            if let points = map.integer("bonus_points", in: 1...amountMax) { bonus = .points(Points(points)) }
        } else {
            map.diagnostics.fail(map.path, "needs multiplier or bonus_points")
        }
        var budget: Points?
        if allowBudget, let value = map.integer("budget_points", in: 1...amountMax, required: false) {
            budget = Points(value)
        }
        return (bonus, budget)
    }

    private static func promotion(
        _ node: DocumentNode, at path: DocumentPath, timeZone: ProgramTimeZone?, sites: Set<SiteID>,
        merchants: Set<MerchantID>, formats: Set<Format>, _ diagnostics: DocumentDiagnostics
    ) -> Promotion? {
        guard let map = MapReader(node, at: path, diagnostics: diagnostics) else { return nil }
        let id = map.slug("id", as: PromotionID.self)
        let name = map.string("name")
        let start = Self.localTime(map, "start")
        let end = Self.localTime(map, "end")
        var filter = PromotionFilter.any
        if let reader = map.map("filter", required: false) {
            filter.sites = reader.slugSet("sites", as: SiteID.self)
            filter.formats = reader.slugSet("formats", as: Format.self)
            filter.merchants = reader.slugSet("merchants", as: MerchantID.self)
            filter.categories = reader.slugSet("categories", as: Category.self)
            reader.finish()
            for site in filter.sites.sorted() where !sites.contains(site) {
                diagnostics.fail(reader.path.key("sites"), "unknown site '\(site)'")
            }
            for format in filter.formats.sorted() where !formats.contains(format) {
                diagnostics.fail(reader.path.key("formats"), "no site has format '\(format)'")
            }
            for merchant in filter.merchants.sorted() where !merchants.contains(merchant) {
                diagnostics.fail(reader.path.key("merchants"), "unknown merchant '\(merchant)'")
            }
        }
        let (bonus, budget) = self.bonus(map, allowBudget: true)
        let fundedBy = Self.funder(map, "funded_by", merchants: merchants) ?? .recordingMerchant
        map.finish()
        if let start, let end, end <= start {
            diagnostics.fail(path.key("end"), "the promotion window ends (\(end)) before or when it starts (\(start))")
            return nil
        }
        guard let id, let name, let start, let end, let bonus, let timeZone else { return nil }
        return Promotion(
            id: id, name: name, start: timeZone.instant(of: start), end: timeZone.instant(of: end), filter: filter,
            bonus: bonus, budget: budget, fundedBy: fundedBy)
    }

    static func localTime(_ map: MapReader, _ key: String) -> CivilDateTime? {
        guard let node = map.node(key, required: true),
            let text = MapReader.scalar(node, at: map.path.key(key), diagnostics: map.diagnostics)
        else { return nil }
        guard let time = CivilDateTime(parsing: text) else {
            map.diagnostics.fail(
                map.path.key(key), "'\(text)' is not a local date or time (write 2026-11-28 or 2026-11-28T18:00)")
            return nil
        }
        return time
    }

    private static func redeem(_ map: MapReader) -> RedeemRules? {
        let value = map.map("point_value")
        let points = value?.integer("points", in: 1...1_000_000)
        let money = value?.integer("money_minor", in: 1...1_000_000)
        value?.finish()
        let minimum = map.integer("minimum_points", in: 1...amountMax)
        let share = map.rate("maximum_bill_share", maximum: .one)
        if let share, share == .zero {
            map.diagnostics.fail(map.path.key("maximum_bill_share"), "must be above 0 (and at most 1)")
        }
        let excluded = map.slugSet("excluded_categories", as: Category.self)
        map.finish()
        guard let points, let money, let minimum, let share, share > .zero else { return nil }
        return RedeemRules(
            pointValuePoints: points, pointValueMoney: Money(minorUnits: money), minimumPoints: Points(minimum),
            maximumBillShare: share, excludedCategories: excluded)
    }

    private static func tiers(_ map: MapReader) -> TierRules? {
        let diagnostics = map.diagnostics
        let review = map.integer("review_months", in: 1...36)
        var tiers: [Tier] = []
        if let items = map.list("levels") {
            if items.isEmpty { diagnostics.fail(map.path.key("levels"), "must list at least one tier") }
            if items.count > tiersMax { diagnostics.fail(map.path.key("levels"), "lists more than \(tiersMax) tiers") }
            for item in items {
                guard let reader = MapReader(item.node, at: item.path, diagnostics: diagnostics) else { continue }
                let id = reader.slug("id", as: TierID.self)
                let name = reader.string("name")
                let threshold = reader.integer("threshold", in: 0...amountMax)
                let multiplier = reader.rate("multiplier", maximum: Rate(integer: 100))
                let minutes = reader.integer("free_parking_minutes_per_day", in: 0...1_440, required: false) ?? 0
                let benefits = Self.benefits(reader)
                reader.finish()
                if let multiplier, multiplier < .one {
                    diagnostics.fail(item.path.key("multiplier"), "must be at least 1 (found \(multiplier))")
                    continue
                }
                guard let id, let name, let threshold, let multiplier else { continue }
                if tiers.isEmpty, threshold != 0 {
                    diagnostics.fail(
                        item.path.key("threshold"), "the first tier must have threshold 0 (found \(threshold))")
                }
                if let previous = tiers.last, threshold <= previous.threshold.value {
                    diagnostics.fail(
                        item.path.key("threshold"),
                        "overlapping tier thresholds: '\(id)' has \(threshold), not above '\(previous.id)' with \(previous.threshold); list tiers from lowest to highest"
                    )
                }
                if tiers.contains(where: { $0.id == id }) {
                    diagnostics.fail(item.path.key("id"), "tier '\(id)' is listed twice")
                    continue
                }
                tiers.append(
                    Tier(
                        id: id, name: name, threshold: Points(threshold), multiplier: multiplier,
                        freeParkingMinutesPerDay: Int(minutes), benefits: benefits))
            }
        }
        map.finish()
        guard let review, !tiers.isEmpty else { return nil }
        return TierRules(tiers: tiers, reviewMonths: Int(review), qualifyingMonths: 12)
    }

    private static func expiry(_ map: MapReader) -> ExpiryRules? {
        let months = map.integer("months", in: 1...120)
        let reminder = map.integer("reminder_days", in: 0...365)
        map.finish()
        guard let months, let reminder else { return nil }
        return ExpiryRules(months: Int(months), reminderDays: Int(reminder))
    }
}
