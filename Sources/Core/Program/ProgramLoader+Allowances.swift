extension ProgramLoader {
    /// The `allowances` section (docs/rules.md, "Allowances"): the clocks' tolerance, the reclaim
    /// margin, and a rule per site format. `sites` are the program's valid sites.
    static func allowances(_ map: MapReader, sites: [Site], points pointsMax: Points) -> AllowanceRules {
        let skew = map.integer("clock_skew_max_minutes", in: 0...1_440)
        let margin = map.integer("reclaim_margin_minutes", in: 1...10_080)
        let unheard = map.integer("unheard_reclaim_hours", in: 1...8_760)
        var rules = AllowanceRules.none
        if let skew, let margin, margin <= skew {
            map.diagnostics.fail(
                map.path.key("reclaim_margin_minutes"),
                "must be more than clock_skew_max_minutes (\(skew)): the margin covers a site's clock running slow")
        }
        if let margin, let unheard, unheard * 60 <= margin {
            map.diagnostics.fail(
                map.path.key("unheard_reclaim_hours"), "must be longer than reclaim_margin_minutes (\(margin))")
        }
        if let formats = map.map("formats") {
            let known = Set(sites.map(\.format))
            for key in formats.keys {
                let path = formats.path.key(key)
                guard let format = Format(key), known.contains(format) else {
                    formats.diagnostics.fail(path, "'\(key)' is not the format of any site")
                    _ = formats.node(key, required: false)
                    continue
                }
                guard let reader = formats.map(key) else { continue }
                if let rule = allowanceRule(
                    reader, format: format, sites: sites.filter { $0.format == format }, skew: skew ?? 0,
                    pointsMax: pointsMax)
                {
                    rules.formats[format] = rule
                }
            }
            formats.finish()
        }
        map.finish()
        rules.clockSkewMaxMinutes = Int(skew ?? 0)
        rules.reclaimMarginMinutes = Int(margin ?? 0)
        rules.unheardReclaimHours = Int(unheard ?? 0)
        return rules
    }

    private static func allowanceRule(
        _ reader: MapReader, format: Format, sites: [Site], skew: Int64, pointsMax: Points
    ) -> AllowanceRule? {
        let triggerText = reader.string("trigger", lengthMax: 16)
        let trigger = triggerText.flatMap(AllowanceTrigger.init(rawValue:))
        if let triggerText, trigger == nil {
            reader.diagnostics.fail(
                reader.path.key("trigger"),
                "'\(triggerText)' is not a trigger: write one of "
                    + AllowanceTrigger.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if trigger == .entry, sites.contains(where: { $0.parking == nil }) {
            reader.diagnostics.fail(
                reader.path.key("trigger"), "'entry' needs every site of format '\(format)' to run a parking tariff")
        }
        let points = reader.integer("points_max", in: 1...pointsMax.value)
        let lease = reader.integer("lease_minutes", in: 10...43_200)
        if let lease, lease <= 2 * skew {
            reader.diagnostics.fail(
                reader.path.key("lease_minutes"),
                "must be more than twice clock_skew_max_minutes (\(skew)): a site stops spending that much early")
        }
        reader.finish()
        guard let trigger, let points, let lease else { return nil }
        return AllowanceRule(trigger: trigger, pointsMax: Points(points), leaseMinutes: Int(lease))
    }

    /// The `promotion_quotas` section (docs/rules.md, "Promotion quotas").
    static func promotionQuotas(_ map: MapReader) -> PromotionQuotaRules {
        let days = map.integer("history_days", in: 1...90)
        let floor = map.integer("floor_points", in: 0...amountMax)
        map.finish()
        var rules = PromotionQuotaRules.defaults
        if let days { rules.historyDays = Int(days) }
        if let floor { rules.floorPoints = Points(floor) }
        return rules
    }
}
