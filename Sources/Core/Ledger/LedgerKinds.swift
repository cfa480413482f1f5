/// The kinds of ledger transaction (DESIGN §3), as stored and listed.
package enum TransactionKind: String, Sendable, Hashable, CaseIterable {
    case enroll, earn, redeem, reverse, parking, adjust, expire
    /// An order of the points mall (the member app), booked by the gateway.
    case order
    /// A voucher of the points mall honoured at a till.
    case voucherUse = "voucher_use"
    /// A lottery draw of the points mall: its cost, and its points prize if any.
    case draw
    /// Points of a member reserved for one site (`member` → `escrow(site)`), and given back by
    /// the site or reclaimed by the gateway (`escrow(site)` → `member`).
    case allowanceGrant = "allowance_grant"
    case allowanceReturn = "allowance_return"
    case allowanceReclaim = "allowance_reclaim"
}

/// What a receipt asked for: with the merchant and the request id it is the receipt's key (the
/// same receipt number may carry the earn and the redemption of one bill).
package enum ReceiptOperation: String, Sendable, Hashable, CaseIterable {
    case enroll, earn, redeem, reverse
    case parkingPay = "parking-pay"
    /// An operator's adjustment (its receipts are the operator's request ids).
    case adjust
    /// A voucher honoured at a till.
    case voucherRedeem = "voucher-redeem"
    /// An allowance granted (its receipts are the site's or the operator's request ids).
    case allowance
}

/// A conflict the gateway found and resolved by a written rule (DESIGN §6); operators list them.
package enum ConflictKind: String, Sendable, Hashable, CaseIterable {
    case duplicateReceipt = "duplicate_receipt"
    case rejected
    case offlineOverdraw = "offline_overdraw"
    case refundAfterSpend = "refund_after_spend"
    case pointsMismatch = "points_mismatch"
    case memberStateMismatch = "member_state_mismatch"
    case promotionBudget = "promotion_budget"
    case programVersion = "program_version"
    case clockSkew = "clock_skew"
    case memberMerge = "member_merge"
    case protocolViolation = "protocol_violation"
    /// A voucher honoured at a till after another use of it was posted (two offline sites).
    case voucherDoubleUse = "voucher_double_use"
    /// A voucher honoured at a till after its order was cancelled, before the site pulled that.
    case voucherCancelled = "voucher_cancelled"
    /// A voucher honoured at a till after it expired (the site's clock said otherwise).
    case voucherExpired = "voucher_expired"
    /// A spend that named more of an allowance than it had (or an allowance not the site's or
    /// the member's): the excess was posted as a floor-limit redemption.
    case allowanceOverspent = "allowance_overspent"
    /// A spend of an allowance already returned or reclaimed: posted as a floor-limit redemption.
    case allowanceReclaimed = "allowance_reclaimed"
}

/// A mark on a site that stays until an operator clears it.
package enum SiteFlag: String, Sendable, Hashable, CaseIterable {
    case offlineOverdraw = "offline_overdraw"
    case refundAfterSpend = "refund_after_spend"
    case pointsMismatch = "points_mismatch"
    case memberStateMismatch = "member_state_mismatch"
    case programVersion = "program_version"
    case clockSkew = "clock_skew"
    case protocolViolation = "protocol_violation"
    /// The site spent more of an allowance than it had, or one that was not its own.
    case allowanceOverspent = "allowance_overspent"
}

/// Why a pushed transaction was not posted (it keeps its sequence; the chain goes on).
package enum RejectionReason: String, Sendable, Hashable, CaseIterable {
    case duplicateReceipt = "duplicate_receipt"
    case unknownMember = "unknown_member"
    case unknownOriginal = "unknown_original"
    case alreadyReversed = "already_reversed"
    case notReversible = "not_reversible"
    case duplicateMember = "duplicate_member"
    case merchantNotAtSite = "merchant_not_at_site"
    case malformed
    /// A voucher use naming a voucher the ledger never issued, or another item than it was for.
    case unknownVoucher = "unknown_voucher"
    /// An allowance return naming an allowance not the site's and the member's, or giving back more
    /// than it has left.
    case allowanceReturn = "allowance_return"
}
