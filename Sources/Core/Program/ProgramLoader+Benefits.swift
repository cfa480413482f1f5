extension ProgramLoader {
    /// The most benefits a tier may hold.
    package static let benefitsMax = 10

    /// A tier's `benefits` (docs/rules.md, "Tier benefits"); their items are checked once the
    /// catalog is read (`checkBenefits`).
    static func benefits(_ map: MapReader) -> [TierBenefit] {
        guard let list = map.list("benefits", required: false) else { return [] }
        if list.count > benefitsMax {
            map.diagnostics.fail(map.path.key("benefits"), "lists more than \(benefitsMax) benefits")
        }
        var benefits: [TierBenefit] = []
        for entry in list.prefix(benefitsMax) {
            guard let reader = MapReader(entry.node, at: entry.path, diagnostics: map.diagnostics) else { continue }
            let id = reader.slug("id", as: ItemID.self)
            let item = reader.slug("item", as: ItemID.self)
            let count = reader.integer("count", in: 1...10)
            let perText = reader.string("per", lengthMax: 16)
            let per = perText.flatMap(BenefitPeriod.init(rawValue:))
            if let perText, per == nil {
                reader.diagnostics.fail(
                    entry.path.key("per"),
                    "'\(perText)' is not a period: write one of "
                        + BenefitPeriod.allCases.map(\.rawValue).joined(separator: ", "))
            }
            reader.finish()
            guard let id, let item, let count, let per else { continue }
            if benefits.contains(where: { $0.id == id.rawValue }) {
                reader.diagnostics.fail(entry.path.key("id"), "benefit '\(id)' is listed twice")
                continue
            }
            benefits.append(TierBenefit(id: id.rawValue, item: item, count: Int(count), per: per))
        }
        return benefits
    }

    /// Every benefit names a catalog item that issues vouchers.
    static func checkBenefits(_ tiers: TierRules, catalog: Catalog, _ diagnostics: DocumentDiagnostics) {
        for (index, tier) in tiers.tiers.enumerated() {
            for (benefitIndex, benefit) in tier.benefits.enumerated() {
                let path = DocumentPath.root.key("tiers").key("levels").index(index).key("benefits").index(benefitIndex)
                    .key("item")
                guard let item = catalog.item(benefit.item) else {
                    diagnostics.fail(path, "unknown catalog item '\(benefit.item)'")
                    continue
                }
                if item.voucher == nil {
                    diagnostics.fail(path, "item '\(benefit.item)' issues no voucher: a benefit must")
                }
            }
        }
    }
}
