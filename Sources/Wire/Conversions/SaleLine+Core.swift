import Core

extension Coalition_Common_V1_SaleLine {
    /// The longest sku accepted, in characters.
    package static let skuLengthMax = 64

    /// This line as Core's, validated; `index` names it in errors (`lines[2].category`).
    package func core(index: Int) throws(ServiceError) -> SaleLine {
        guard sku.count <= Self.skuLengthMax else {
            throw .invalid("lines[\(index)].sku", "at most \(Self.skuLengthMax) characters")
        }
        var category: Category?
        if !self.category.isEmpty {
            guard let parsed = Category(self.category) else {
                throw .invalid("lines[\(index)].category", "'\(self.category)' \(Slug.rule)")
            }
            category = parsed
        }
        return SaleLine(sku: sku, category: category, amount: Money(minorUnits: amountMinor))
    }
}

extension Array where Element == Coalition_Common_V1_SaleLine {
    /// The lines as Core's, refusing more than `maximum` before looking at any.
    package func core(maximum: Int) throws(ServiceError) -> [SaleLine] {
        guard count <= maximum else { throw .invalid("lines", "at most \(maximum) lines (found \(count))") }
        var lines: [SaleLine] = []
        lines.reserveCapacity(count)
        for (index, line) in enumerated() { lines.append(try line.core(index: index)) }
        return lines
    }
}

extension Coalition_Common_V1_EarnBreakdown {
    /// The wire form of an earn's explanation.
    package init(_ result: EarnResult) {
        self.init()
        totalPoints = result.total.value
        eligibleAmountMinor = result.eligibleAmount.minorUnits
        components = result.components.map { component in
            var wire = Coalition_Common_V1_EarnComponent()
            wire.kind = Coalition_Common_V1_EarnComponentKind(component.kind)
            wire.ruleID = component.ruleID
            wire.points = component.points.value
            wire.description_p = component.description
            return wire
        }
    }
}

extension Coalition_Common_V1_EarnComponentKind {
    /// The wire kind of a Core component kind.
    package init(_ kind: EarnComponentKind) {
        switch kind {
        case .base: self = .base
        case .tier: self = .tier
        case .promotion: self = .promotion
        case .crossFormat: self = .crossFormat
        case .birthday: self = .birthday
        case .streak: self = .streak
        case .signup: self = .signup
        case .referral: self = .referral
        }
    }
}

extension Coalition_Common_V1_RefusalReason {
    /// The wire reason of a Core refusal.
    package init(_ refusal: Refusal) {
        switch refusal {
        case .insufficientPoints: self = .insufficientPoints
        case .belowMinimum: self = .belowMinimum
        case .overBillShare: self = .overBillShare
        case .excludedCategory: self = .excludedCategory
        case .offlineTransactionCap: self = .offlineTransactionCap
        case .offlineDailyCap: self = .offlineDailyCap
        case .offlineSiteExposure: self = .offlineSiteExposure
        case .offlineTooLong: self = .offlineTooLong
        case .notReversible: self = .notReversible
        case .storageFull: self = .storageFull
        }
    }
}
