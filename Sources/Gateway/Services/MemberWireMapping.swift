import Core
import Wire

/// Member API messages made from the ledger's records and Core's views.
extension Coalition_Member_V1_GetAccountResponse {
    init(
        _ detail: MemberDetail, program: Program, now: Timestamp, year: Int, totals: [String: FormatTotals],
        partial: Bool
    ) {
        self.init()
        memberID = detail.id.description
        balancePoints = (detail.balance + detail.escrowed).value
        heldPoints = detail.held.value
        availablePoints = max(0, (detail.balance - detail.held).value)
        escrowedPoints = detail.escrowed.value
        self.year = Int32(year)
        byFormat = totals.sorted { $0.key < $1.key }.map { format, total in
            var wire = Coalition_Member_V1_FormatActivity()
            wire.format = format
            wire.earnedPoints = total.earned.value
            wire.spentPoints = total.spent.value
            return wire
        }
        byFormatPartial = partial
        let tierID = TierID(unchecked: detail.tier)
        if let current = program.tier(tierID) { tier = Coalition_Member_V1_TierBenefits(current) }
        qualifyingPoints12M = detail.qualifyingPoints.value
        if let next = AccountView.nextTier(after: tierID, qualifying: detail.qualifyingPoints, tiers: program.tiers) {
            nextTier = Coalition_Member_V1_TierBenefits(next.tier)
            pointsToNextTier = next.needed.value
        }
        tierReviewDate = detail.tierReviewDate
        let expiring = AccountView.expiring(
            detail.lots.map { ($0.expiresAt, $0.remainingPoints) }, now: now)
        expiring30DaysPoints = expiring.windows[0].value
        expiring60DaysPoints = expiring.windows[1].value
        expiring90DaysPoints = expiring.windows[2].value
        self.expiring = expiring.lots.map { lot in
            var wire = Coalition_Member_V1_ExpiringLot()
            wire.expiresAtMs = lot.expiresAt.milliseconds
            wire.points = lot.points.value
            return wire
        }
    }
}

extension Coalition_Member_V1_TierBenefits {
    init(_ tier: Tier) {
        self.init()
        self.tier = tier.id.rawValue
        name = tier.name
        thresholdPoints = tier.threshold.value
        multiplier = tier.multiplier.description
        freeParkingMinutesPerDay = Int32(tier.freeParkingMinutesPerDay)
        benefits = tier.benefits.map(Coalition_Member_V1_TierBenefitStatus.init)
    }
}

extension Coalition_Member_V1_TierBenefitStatus {
    /// A tier's benefit as declared: its item, count and period kind (no period, no vouchers).
    init(_ benefit: TierBenefit) {
        self.init()
        benefitID = benefit.id
        itemID = benefit.item.rawValue
        count = Int32(benefit.count)
        per = benefit.per.rawValue
    }
}

extension MemberActivity {
    init(_ entry: HistoryEntry) {
        self.init(
            kind: TransactionKind(rawValue: entry.kind), points: entry.points, site: SiteID(entry.site),
            merchant: MerchantID(entry.merchant), occurredAt: entry.occurredAt)
    }
}

extension Coalition_Member_V1_HistoryEntry {
    init(_ entry: HistoryEntry, program: Program) {
        self.init()
        transactionID = entry.transactionID
        kind = entry.kind
        points = entry.points.value
        siteID = entry.site
        merchantID = entry.merchant
        format = AccountView.format(of: MemberActivity(entry), program: program) ?? ""
        occurredAtMs = entry.occurredAt.milliseconds
        postedAtMs = entry.postedAt.milliseconds
        detail = entry.detail
    }
}

extension Coalition_Member_V1_ItemKind {
    init(_ kind: ItemKind) {
        switch kind {
        case .goods: self = .goods
        case .voucher: self = .voucher
        case .experience: self = .experience
        case .parkingHours: self = .parkingHours
        }
    }
}

extension Coalition_Member_V1_CatalogItem {
    init(_ item: CatalogItem, left: Int64) {
        self.init()
        itemID = item.id.rawValue
        name = item.name
        kind = Coalition_Member_V1_ItemKind(item.kind)
        pricePoints = item.pricePoints.value
        priceMinor = item.priceMoney.minorUnits
        stockLeft = left
        perMemberMax = item.perMemberMax ?? 0
        tiers = item.tiers.sorted().map(\.rawValue)
        saleStartAtMs = item.saleStart.milliseconds
        saleEndAtMs = item.saleEnd.milliseconds
        sponsor = item.sponsor.description
        format = item.format?.rawValue ?? ""
        category = item.category?.rawValue ?? ""
        if let voucher = item.voucher {
            voucherValidDays = Int32(voucher.validDays)
            voucherFormats = voucher.formats.sorted().map(\.rawValue)
            voucherMerchants = voucher.merchants.sorted().map(\.rawValue)
            parkingMinutes = Int32(voucher.parkingMinutes ?? 0)
        }
    }
}

extension Coalition_Member_V1_Order {
    init(_ order: MallOrder) {
        self.init()
        orderID = order.orderID
        requestID = order.requestID
        memberID = order.member.description
        itemID = order.item.rawValue
        kind = Coalition_Member_V1_ItemKind(order.kind)
        quantity = order.quantity
        points = order.points.value
        moneyMinor = order.money.minorUnits
        status = order.status == .placed ? .placed : .cancelled
        placedAtMs = order.placedAt.milliseconds
        cancelledAtMs = order.cancelledAt?.milliseconds ?? 0
        vouchers = order.vouchers.map(Coalition_Member_V1_Voucher.init)
    }
}

extension Coalition_Member_V1_Voucher {
    /// A voucher as the app shows it: its id, code, validity and status.
    init(_ voucher: IssuedVoucher) {
        self.init()
        voucherID = voucher.voucherID
        code = voucher.code
        validUntilAtMs = voucher.validUntil.milliseconds
        status =
            switch voucher.status {
            case .issued: .issued
            case .used: .used
            case .cancelled: .cancelled
            }
    }
}
