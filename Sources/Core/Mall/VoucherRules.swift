/// Where a voucher stands, as the ledger (or an edge's replica of it) knows.
package enum VoucherStatus: String, Sendable, Equatable {
    case issued, used, cancelled
}

/// Why a till may not honour a voucher. Each has a stable name (`reason`) for the
/// `coalition-reason` trailing metadata.
package enum VoucherRefusal: Error, Equatable, Sendable {
    case malformed(VoucherCodeError)
    /// Signed by a key the node does not know, or not by the key it names: forged or re-signed.
    case forged
    case unknownItem(String)
    case expired(validUntil: Timestamp)
    /// The merchant's site is of a format the voucher is not for.
    case wrongFormat(Format)
    /// The voucher names merchants, and not this one.
    case wrongMerchant(MerchantID)
    case used
    case cancelled

    package var reason: String {
        switch self {
        case .malformed: "VOUCHER_MALFORMED"
        case .forged: "VOUCHER_FORGED"
        case .unknownItem: "UNKNOWN_ITEM"
        case .expired: "VOUCHER_EXPIRED"
        case .wrongFormat: "VOUCHER_WRONG_FORMAT"
        case .wrongMerchant: "VOUCHER_WRONG_MERCHANT"
        case .used: "VOUCHER_USED"
        case .cancelled: "VOUCHER_CANCELLED"
        }
    }

    /// A sentence for the cashier.
    package var message: String {
        switch self {
        case .malformed(.truncated): "the voucher code is incomplete: scan it again"
        case .malformed(.unknownVersion(let version)): "the voucher code is of an unknown layout (\(version))"
        case .malformed: "this is not a voucher code"
        case .forged: "the voucher's signature is not the network's"
        case .unknownItem(let item): "the voucher is for '\(item)', which the program no longer lists"
        case .expired(let until): "the voucher expired at \(until.milliseconds) (Unix ms)"
        case .wrongFormat(let format): "the voucher cannot be used at a \(format) site"
        case .wrongMerchant(let merchant): "the voucher cannot be used at \(merchant)"
        case .used: "the voucher has been used"
        case .cancelled: "the voucher was cancelled"
        }
    }
}

/// Vouchers of the points mall: issued with an order, honoured at a till (docs/member-api.md).
package enum VoucherRules {
    /// The vouchers an order of `item` placed at `instant` issues, one per id in `ids` (one id per
    /// unit), valid for the item's `valid_days` from then, signed by the key `keyID`.
    package static func issue(_ item: CatalogItem, at instant: Timestamp, keyID: UInt8, ids: [TransactionID])
        -> [VoucherClaim]
    {
        guard let terms = item.voucher else { return [] }
        let until = instant.adding(milliseconds: Int64(terms.validDays) * 86_400_000)
        return ids.map { VoucherClaim(keyID: keyID, voucherID: $0, item: item.id, validUntil: until) }
    }

    /// Whether a till of `merchant` may honour the voucher `claim` (its signature already checked)
    /// at `now`: the item is still in the program, the voucher has not expired, the merchant is in
    /// its scope, and it is neither used nor cancelled as far as this node knows. Returns the item.
    package static func check(
        _ claim: VoucherClaim, program: Program, merchant: MerchantID, now: Timestamp, status: VoucherStatus?
    ) -> Result<CatalogItem, VoucherRefusal> {
        guard let item = program.catalog.item(claim.item), let terms = item.voucher else {
            return .failure(.unknownItem(claim.item.rawValue))
        }
        switch status {
        case .used?: return .failure(.used)
        case .cancelled?: return .failure(.cancelled)
        case .issued?, nil: break
        }
        guard now < claim.validUntil else { return .failure(.expired(validUntil: claim.validUntil)) }
        guard let (_, site) = program.merchant(merchant) else { return .failure(.wrongMerchant(merchant)) }
        if !terms.formats.isEmpty, !terms.formats.contains(site.format) { return .failure(.wrongFormat(site.format)) }
        if !terms.merchants.isEmpty, !terms.merchants.contains(merchant) { return .failure(.wrongMerchant(merchant)) }
        return .success(item)
    }
}
