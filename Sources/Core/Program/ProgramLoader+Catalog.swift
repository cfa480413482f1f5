extension ProgramLoader {
    /// The most items the catalog may list.
    package static let catalogItemsMax = 2_000

    /// What the catalog's references are checked against.
    struct CatalogReferences {
        var sites: [Site]
        var tiers: Set<TierID>
        var formats: Set<Format>
        var merchants: Set<MerchantID>
    }

    /// `catalog`: the points mall's items (docs/rules.md, "Points mall"). Absent means an empty
    /// catalog.
    static func catalog(_ map: MapReader, timeZone: ProgramTimeZone?, references: CatalogReferences) -> Catalog {
        var items: [CatalogItem] = []
        if let list = map.list("items", required: false) {
            if list.count > catalogItemsMax {
                map.diagnostics.fail(map.path.key("items"), "lists more than \(catalogItemsMax) items")
            }
            var seen: Set<ItemID> = []
            for entry in list.prefix(catalogItemsMax) {
                guard let reader = MapReader(entry.node, at: entry.path, diagnostics: map.diagnostics),
                    let item = Self.item(reader, timeZone: timeZone, references: references)
                else { continue }
                guard seen.insert(item.id).inserted else {
                    map.diagnostics.fail(entry.path.key("id"), "item '\(item.id)' is listed twice")
                    continue
                }
                items.append(item)
            }
        }
        map.finish()
        return Catalog(items: items)
    }

    private static func item(_ map: MapReader, timeZone: ProgramTimeZone?, references: CatalogReferences)
        -> CatalogItem?
    {
        let diagnostics = map.diagnostics
        let id = map.slug("id", as: ItemID.self)
        let name = map.string("name")
        let kindText = map.string("kind", lengthMax: 32)
        let kind = kindText.flatMap(ItemKind.init(rawValue:))
        if let kindText, kind == nil {
            diagnostics.fail(
                map.path.key("kind"),
                "'\(kindText)' is not a kind of item: write one of "
                    + ItemKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let price = map.integer("price_points", in: 1...amountMax)
        let money = map.integer("price_minor", in: 0...amountMax, required: false) ?? 0
        let stock = map.integer("stock", in: 0...amountMax)
        let perMember = map.integer("per_member_max", in: 1...amountMax, required: false)
        let tiers = map.slugSet("tiers", as: TierID.self)
        for tier in tiers.sorted() where !references.tiers.contains(tier) {
            diagnostics.fail(map.path.key("tiers"), "unknown tier '\(tier)'")
        }
        let start = Self.localTime(map, "sale_start")
        let end = Self.localTime(map, "sale_end")
        let sponsorText = map.string("sponsor", lengthMax: 64)
        var sponsor = sponsorText.flatMap(Sponsor.init)
        if let sponsorText, sponsor == nil {
            diagnostics.fail(map.path.key("sponsor"), "'\(sponsorText)' is not a sponsor: write platform or a merchant id")
        }
        if case .merchant(let merchant)? = sponsor, !references.merchants.contains(merchant) {
            diagnostics.fail(map.path.key("sponsor"), "unknown merchant '\(merchant)'")
            sponsor = nil
        }
        let format = map.slug("format", as: Format.self, required: false)
        if let format, !references.formats.contains(format) {
            diagnostics.fail(map.path.key("format"), "no site has format '\(format)'")
        }
        let category = map.slug("category", as: Category.self, required: false)
        let issuesVoucher = kind?.issuesVoucher ?? false
        let settlement = map.integer("settlement_price_minor", in: 0...amountMax, required: issuesVoucher)
        let voucher = map.map("voucher", required: issuesVoucher).flatMap { reader in
            Self.voucherTerms(reader, kind: kind, references: references)
        }
        if kind == .goods, map.has("voucher") || settlement != nil {
            diagnostics.fail(map.path, "goods issue no voucher: leave out voucher and settlement_price_minor")
        }
        map.finish()
        if let start, let end, end <= start {
            diagnostics.fail(map.path.key("sale_end"), "the sale ends (\(end)) before or when it starts (\(start))")
            return nil
        }
        guard let id, let name, let kind, let price, let stock, let start, let end, let sponsor, let timeZone,
            !issuesVoucher || voucher != nil
        else { return nil }
        return CatalogItem(
            id: id, name: name, kind: kind, pricePoints: Points(price), priceMoney: Money(minorUnits: money),
            stock: stock, perMemberMax: perMember, tiers: tiers, saleStart: timeZone.instant(of: start),
            saleEnd: timeZone.instant(of: end), sponsor: sponsor, format: format, category: category,
            settlementPrice: Money(minorUnits: settlement ?? 0), voucher: issuesVoucher ? voucher : nil)
    }

    private static func voucherTerms(_ map: MapReader, kind: ItemKind?, references: CatalogReferences)
        -> VoucherTerms?
    {
        let diagnostics = map.diagnostics
        let days = map.integer("valid_days", in: 1...3_660)
        let formats = map.slugSet("formats", as: Format.self)
        for format in formats.sorted() where !references.formats.contains(format) {
            diagnostics.fail(map.path.key("formats"), "no site has format '\(format)'")
        }
        let merchants = map.slugSet("merchants", as: MerchantID.self)
        for merchant in merchants.sorted() {
            guard references.merchants.contains(merchant) else {
                diagnostics.fail(map.path.key("merchants"), "unknown merchant '\(merchant)'")
                continue
            }
            // A merchant outside the formats could never honour it: a mistake, not a scope.
            if !formats.isEmpty,
                let site = references.sites.first(where: { $0.merchants.contains { $0.id == merchant } }),
                !formats.contains(site.format)
            {
                diagnostics.fail(
                    map.path.key("merchants"),
                    "merchant '\(merchant)' is at a \(site.format) site, outside formats "
                        + formats.sorted().map(\.rawValue).joined(separator: ", "))
            }
        }
        let minutes = map.integer("parking_minutes", in: 1...14_400, required: kind == .parkingHours)
        if kind != .parkingHours, minutes != nil {
            diagnostics.fail(map.path.key("parking_minutes"), "only parking_hours items pay parking time")
        }
        map.finish()
        guard let days else { return nil }
        return VoucherTerms(
            validDays: Int(days), formats: formats, merchants: merchants,
            parkingMinutes: kind == .parkingHours ? minutes.map(Int.init) : nil)
    }
}
