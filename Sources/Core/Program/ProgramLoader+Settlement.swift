/// The settlement part of a program file: prices, breakage, and the check that no redeem price is
/// above every issue price.
extension ProgramLoader {
    /// A redeem price above every issue price makes the platform pay out more for a point than
    /// any issuer paid for it: buying points at one merchant and spending them at another would
    /// drain the points fund. Refused unless the program says it means it.
    static func checkRedeemAboveIssue(_ settlement: SettlementRules, sites: [Site], _ diagnostics: DocumentDiagnostics)
    {
        guard !settlement.redeemAboveIssueAllowed else { return }
        let issues =
            settlement.formatPrices.values.map(\.issuePrice)
            + sites.flatMap { $0.merchants.compactMap(\.settlementPrices?.issuePrice) }
        guard let highest = issues.max() else { return }
        var redeems = settlement.formatPrices.map {
            (
                DocumentPath.root.key("settlement").key("format_prices").key($0.key.rawValue),
                $0.value.redeemPrice
            )
        }
        for (siteIndex, site) in sites.enumerated() {
            for (index, merchant) in site.merchants.enumerated() {
                guard let price = merchant.settlementPrices?.redeemPrice else { continue }
                redeems.append(
                    (
                        DocumentPath.root.key("sites").index(siteIndex).key("merchants").index(index)
                            .key("settlement"), price
                    ))
            }
        }
        for (path, price) in redeems.sorted(by: { "\($0.0)" < "\($1.0)" }) where price > highest {
            diagnostics.fail(
                path.key("redeem_price"),
                "redeem price \(price) is above every issue price (the highest is \(highest)): the platform would pay "
                    + "out more for a point than any issuer paid; set settlement.redeem_above_issue: allow if intended"
            )
        }
    }

    static func settlementPrices(_ map: MapReader) -> SettlementPrices? {
        let issue = map.rate("issue_price", maximum: Rate(integer: 1_000))
        let redeem = map.rate("redeem_price", maximum: Rate(integer: 1_000))
        map.finish()
        guard let issue, let redeem else { return nil }
        return SettlementPrices(issuePrice: issue, redeemPrice: redeem)
    }

    static func settlement(_ map: MapReader) -> SettlementRules? {
        let breakage = map.rate("breakage_price", maximum: Rate(integer: 1_000))
        let redeemAboveIssue = map.string("redeem_above_issue", required: false, lengthMax: 16) ?? "refuse"
        if redeemAboveIssue != "refuse", redeemAboveIssue != "allow" {
            map.diagnostics.fail(map.path.key("redeem_above_issue"), "must be 'refuse' (the default) or 'allow'")
        }
        var prices: [Format: SettlementPrices] = [:]
        if let formats = map.map("format_prices") {
            for key in formats.keys {
                guard let format = Format(key) else {
                    map.diagnostics.fail(formats.path.key(key), "'\(key)' is not a valid format: it \(Slug.rule)")
                    _ = formats.node(key, required: false)
                    continue
                }
                if let reader = formats.map(key), let price = Self.settlementPrices(reader) { prices[format] = price }
            }
            formats.finish()
        }
        map.finish()
        guard let breakage else { return nil }
        return SettlementRules(
            formatPrices: prices, breakagePrice: breakage, redeemAboveIssueAllowed: redeemAboveIssue == "allow")
    }
}
