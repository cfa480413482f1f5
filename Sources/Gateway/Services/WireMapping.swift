import Core
import Foundation
import GRPCCore
import Wire

// The one place where the ledger's domain values (`Storage/LedgerRecords.swift`) become the
// protocol's messages, and its domain errors gRPC statuses.

extension Coalition_Sync_V1_PullResponse {
    init(_ page: PullPage) {
        self.init()
        changes = page.changes.map(Coalition_Sync_V1_Change.init)
        hasMore_p = page.hasMore
        nextCursor = UInt64(page.nextCursor)
        siteHighWaterMark = UInt64(page.siteHighWaterMark)
        if let quotas = page.quotas {
            promotionQuotaIssue = UInt64(max(0, quotas.issue))
            promotionQuotaSequence = UInt64(max(0, quotas.sequence))
            promotionBudgets = quotas.quotas.sorted { $0.key.rawValue < $1.key.rawValue }.map { id, points in
                var budget = Coalition_Sync_V1_PromotionBudget()
                budget.promotionID = id.rawValue
                budget.pointsLeft = points.value
                return budget
            }
        }
        voucherKeys = page.voucherKeys.sorted { $0.key < $1.key }.map { id, key in
            var wire = Coalition_Sync_V1_VoucherKey()
            wire.keyID = UInt32(id)
            wire.publicKey = Data(key)
            return wire
        }
    }
}

extension Coalition_Sync_V1_Change {
    init(_ change: LedgerChange) {
        self.init()
        position = UInt64(change.position)
        switch change.body {
        case .member(let snapshot): member = Coalition_Sync_V1_MemberSnapshot(snapshot)
        case .program(let version, let document, let effectiveAt):
            var wire = Coalition_Sync_V1_ProgramVersion()
            wire.version = version
            wire.document = document
            wire.effectiveAtMs = effectiveAt.milliseconds
            program = wire
        case .merge(let from, let into):
            var wire = Coalition_Sync_V1_MemberMerge()
            wire.fromMemberID = from.description
            wire.intoMemberID = into.description
            merge = wire
        case .voucher(let id, let status):
            var wire = Coalition_Sync_V1_VoucherChange()
            wire.voucherID = id
            wire.status = status == .used ? .used : .cancelled
            voucher = wire
        }
    }
}

extension Coalition_Sync_V1_MemberSnapshot {
    init(_ snapshot: MemberSnapshot) {
        self.init()
        memberID = snapshot.id.description
        phoneHash = snapshot.phoneHash
        cardNumber = snapshot.cardNumber
        tier = snapshot.tier
        balancePoints = snapshot.balance.value
        birthMonth = Int32(snapshot.birthMonth ?? 0)
        includesSiteSequence = UInt64(snapshot.includesSiteSequence)
        lastEarnAtMsByFormat = Dictionary(
            uniqueKeysWithValues: snapshot.lastEarnByFormat.map { ($0.key.rawValue, $0.value.milliseconds) })
        streakLastDay = snapshot.streakLastDay
        streakDays = Int32(snapshot.streakDays)
        tierReviewDate = snapshot.tierReviewDate
        enrolledAtMs = snapshot.enrolledAt.milliseconds
        expiringPoints = snapshot.expiringPoints.value
        nextExpiryAtMs = snapshot.nextExpiryAt?.milliseconds ?? 0
        escrowedPoints = snapshot.escrowed.value
        if let allowance = snapshot.allowance {
            allowanceID = allowance.id
            allowanceLeftPoints = allowance.left.value
            allowanceStopAtMs = allowance.stopAt.milliseconds
        }
    }
}

extension Coalition_Sync_V1_RecoverResponse {
    init(_ page: RecoverPage) {
        self.init()
        highWaterMark = UInt64(page.highWaterMark)
        transactions = page.transactions.map { row in
            Coalition_Sync_V1_OutboxTransaction(
                sequence: row.sequence, transactionID: row.transactionID, previousHash: row.previousHash,
                payload: row.payload, occurredAtMs: row.occurredAtMilliseconds)
        }
        hasMore_p = page.hasMore
    }
}

extension Coalition_Sync_V1_AuthorizeRedeemResponse {
    init(_ authorization: Authorization) {
        self.init()
        approved = authorization.approved
        holdID = authorization.holdID
        holdExpiresAtMs = authorization.expiresAt?.milliseconds ?? 0
        availablePoints = authorization.available.value
        switch authorization.refusal {
        case nil, .released: break
        case .unknownMember:
            reason = .unknownMember
            message = "The member is not known to the centre yet."
        case .insufficientPoints(let requested):
            reason = .insufficientPoints
            message = "The member has \(authorization.available) points available, not \(requested)."
        }
    }
}

extension Coalition_Ops_V1_SiteStatus {
    init(_ record: SiteStatusRecord) {
        self.init()
        siteID = record.site.rawValue
        name = record.name
        format = record.format.rawValue
        status = record.status
        highWaterMark = UInt64(record.highWaterMark)
        lastSeenAtMs = record.lastSeenAt?.milliseconds ?? 0
        syncLagMs = record.syncLagMilliseconds
        unsyncedExposurePoints = record.unsyncedExposure.value
        flags = record.flags
        offlineRiskPoints = record.offlineRisk.value
    }
}

extension Coalition_Ops_V1_GetMemberResponse {
    init(_ detail: MemberDetail) {
        self.init()
        memberID = detail.id.description
        cardNumber = detail.cardNumber
        tier = detail.tier
        tierReviewDate = detail.tierReviewDate
        balancePoints = (detail.balance + detail.escrowed).value
        heldPoints = detail.held.value
        escrowedPoints = detail.escrowed.value
        qualifyingPoints12M = detail.qualifyingPoints.value
        enrolledAtMs = detail.enrolledAt.milliseconds
        enrolledSiteID = detail.enrolledSite
        mergedMemberIds = detail.mergedMembers
        lots = detail.lots.map { lot in
            var wire = Coalition_Ops_V1_Lot()
            wire.lotID = lot.lotID
            wire.earnedAtMs = lot.earnedAt.milliseconds
            wire.expiresAtMs = lot.expiresAt.milliseconds
            wire.originalPoints = lot.originalPoints.value
            wire.remainingPoints = lot.remainingPoints.value
            return wire
        }
    }
}

extension Coalition_Ops_V1_LedgerEntry {
    init(_ entry: HistoryEntry) {
        self.init()
        transactionID = entry.transactionID
        kind = entry.kind
        points = entry.points.value
        siteID = entry.site
        merchantID = entry.merchant
        occurredAtMs = entry.occurredAt.milliseconds
        postedAtMs = entry.postedAt.milliseconds
        detail = entry.detail
    }
}

extension Coalition_Ops_V1_ProgramSummary {
    init(_ summary: ProgramSummary) {
        self.init()
        version = summary.version
        effectiveAtMs = summary.effectiveAt.milliseconds
        publishedAtMs = summary.publishedAt.milliseconds
        publishedBy = summary.publishedBy
        documentSha256 = summary.documentSHA256
    }
}

extension Coalition_Ops_V1_RevokedCertificate {
    init(_ record: RevokedCertificateRecord) {
        self.init()
        serial = record.serial
        revokedAtMs = record.revokedAt.milliseconds
        reason = record.reason
        revokedBy = record.revokedBy
    }
}

extension ServiceError {
    init(_ refusal: AdjustmentRefusal) {
        switch refusal {
        case .unknownMember(let id): self = .notFound("member_id", "unknown member '\(id)'")
        case .insufficient(let available, let requested):
            self.init(.failedPrecondition, "points: the member has \(available) available, not \(requested)")
        case .unknownFunder(let id):
            self = .invalid("funded_by", "'\(id)' is not a merchant of the program in force, nor \"platform\"")
        }
    }
}

extension Coalition_Ops_V1_RefusedCall {
    init(_ call: RefusedCall) {
        self.init()
        id = call.id
        atMs = call.at.milliseconds
        service = call.service
        method = call.method
        peer = call.peer
        address = call.address
        kind = call.kind
        reason = call.reason
    }
}
