extension ProgramLoader {
    /// The most lotteries a program may hold, and prizes a lottery.
    package static let lotteriesMax = 50
    package static let prizesMax = 20

    /// `lotteries`: the points mall's lotteries (docs/rules.md, "Lotteries"). Absent means none.
    static func lotteries(_ map: MapReader, timeZone: ProgramTimeZone?, catalog: Catalog) -> Lotteries {
        let cap = map.integer("prize_value_max_minor", in: 0...amountMax, required: false) ?? 5_000_000
        var items: [Lottery] = []
        if let list = map.list("items", required: false) {
            if list.count > lotteriesMax {
                map.diagnostics.fail(map.path.key("items"), "lists more than \(lotteriesMax) lotteries")
            }
            var seen: Set<LotteryID> = []
            for entry in list.prefix(lotteriesMax) {
                guard let reader = MapReader(entry.node, at: entry.path, diagnostics: map.diagnostics),
                    let lottery = Self.lottery(reader, timeZone: timeZone, catalog: catalog)
                else { continue }
                guard seen.insert(lottery.id).inserted else {
                    map.diagnostics.fail(entry.path.key("id"), "lottery '\(lottery.id)' is listed twice")
                    continue
                }
                items.append(lottery)
            }
        }
        map.finish()
        return Lotteries(prizeValueMax: Money(minorUnits: cap), items: items)
    }

    private static func lottery(_ map: MapReader, timeZone: ProgramTimeZone?, catalog: Catalog) -> Lottery? {
        let id = map.slug("id", as: LotteryID.self)
        let name = map.string("name")
        let cost = map.integer("cost_points", in: 1...amountMax)
        let daily = map.integer("per_member_daily_max", in: 1...1_000)
        let start = Self.localTime(map, "start")
        let end = Self.localTime(map, "end")
        var prizes: [Prize] = []
        if let list = map.list("prizes", required: true) {
            if list.isEmpty || list.count > prizesMax {
                map.diagnostics.fail(map.path.key("prizes"), "lists 1 to \(prizesMax) prizes")
            }
            var seen: Set<PrizeID> = []
            for entry in list.prefix(prizesMax) {
                guard let reader = MapReader(entry.node, at: entry.path, diagnostics: map.diagnostics),
                    let prize = Self.prize(reader, catalog: catalog)
                else { continue }
                guard seen.insert(prize.id).inserted else {
                    map.diagnostics.fail(entry.path.key("id"), "prize '\(prize.id)' is listed twice")
                    continue
                }
                prizes.append(prize)
            }
            let total = prizes.reduce(0) { $0 + $1.parts }
            if total > LotteryDraw.parts {
                map.diagnostics.fail(
                    map.path.key("prizes"),
                    "the prizes' chances add up to \(total) parts per million, more than 1000000")
            }
        }
        map.finish()
        if let start, let end, end <= start {
            map.diagnostics.fail(map.path.key("end"), "the lottery ends (\(end)) before or when it starts (\(start))")
            return nil
        }
        guard let id, let name, let cost, let daily, let start, let end, let timeZone, !prizes.isEmpty else {
            return nil
        }
        return Lottery(
            id: id, name: name, cost: Points(cost), perMemberDailyMax: daily, start: timeZone.instant(of: start),
            end: timeZone.instant(of: end), prizes: prizes)
    }

    private static func prize(_ map: MapReader, catalog: Catalog) -> Prize? {
        let id = map.slug("id", as: PrizeID.self)
        let name = map.string("name")
        let parts = map.integer("chance_ppm", in: 1...LotteryDraw.parts)
        let stock = map.integer("stock", in: 0...amountMax)
        let points = map.integer("points", in: 1...amountMax, required: false)
        let item = map.slug("item", as: ItemID.self, required: false)
        var kind: Prize.Kind?
        switch (points, item) {
        case (let points?, nil): kind = .points(Points(points))
        case (nil, let item?):
            if let found = catalog.item(item) {
                if found.voucher == nil {
                    map.diagnostics.fail(map.path.key("item"), "item '\(item)' issues no voucher: a prize must")
                } else {
                    kind = .item(item)
                }
            } else {
                map.diagnostics.fail(map.path.key("item"), "unknown catalog item '\(item)'")
            }
        default:
            map.diagnostics.fail(map.path, "a prize is either points or a catalog item: write one of points, item")
        }
        map.finish()
        guard let id, let name, let parts, let stock, let kind else { return nil }
        return Prize(id: id, name: name, kind: kind, parts: parts, stock: stock)
    }

    /// No prize may be worth more than `lotteries.prize_value_max_minor` (the legal cap).
    static func checkPrizeValues(
        _ lotteries: Lotteries, catalog: Catalog, settlement: SettlementRules, sites: [Site],
        _ diagnostics: DocumentDiagnostics
    ) {
        for (index, lottery) in lotteries.items.enumerated() {
            for (prizeIndex, prize) in lottery.prizes.enumerated() {
                let value = LotteryDraw.value(prize, catalog: catalog, settlement: settlement, sites: sites)
                if value > lotteries.prizeValueMax {
                    diagnostics.fail(
                        DocumentPath.root.key("lotteries").key("items").index(index).key("prizes").index(prizeIndex),
                        "prize '\(prize.id)' is worth \(value) minor units, over the cap for sales-promotion lotteries "
                            + "(lotteries.prize_value_max_minor, \(lotteries.prizeValueMax))")
                }
            }
        }
    }
}
