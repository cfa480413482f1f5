import Core
import Foundation

// What the ledger stores return: domain values, made into wire messages only by the services
// (`Services/WireMapping.swift`), so a second store (PostgreSQL) returns the same values and the
// protocol's shape is decided in one place.

// MARK: Sync

/// A page of changes a site pulls (`SyncLedger.pull`).
package struct PullPage: Sendable, Equatable {
    package var changes: [LedgerChange]
    /// More changes follow `nextCursor`.
    package var hasMore: Bool
    package var nextCursor: Int64
    /// The site's own transactions the gateway holds (its high-water mark when the page was read).
    package var siteHighWaterMark: Int64
    /// The site's promotion quotas, issued at the end of a pull (the sync service's, after the page).
    package var quotas: PromotionQuotaIssue? = nil
    /// The public halves of the network's voucher keys, by id.
    package var voucherKeys: [UInt8: [UInt8]] = [:]
}

/// One change in the pull feed, at the position that made it.
package struct LedgerChange: Sendable, Equatable {
    package enum Body: Sendable, Equatable {
        case member(MemberSnapshot)
        case program(version: Int64, document: Data, effectiveAt: Timestamp)
        case merge(from: MemberID, into: MemberID)
        /// A voucher that can no longer be honoured (used or cancelled).
        case voucher(id: String, status: VoucherStatus)
    }

    package var position: Int64
    package var body: Body
}

/// A member as edges replicate it.
package struct MemberSnapshot: Sendable, Equatable {
    package var id: MemberID
    package var phoneHash: Data
    package var cardNumber: String
    package var tier: String
    /// The ledger balance (not net of holds), never below zero.
    package var balance: Points
    package var birthMonth: Int?
    /// The site's transactions the snapshot includes (its high-water mark when read).
    package var includesSiteSequence: Int64
    package var lastEarnByFormat: [Format: Timestamp]
    package var streakLastDay: String
    package var streakDays: Int
    package var tierReviewDate: String
    package var enrolledAt: Timestamp
    /// Points expiring within the program's reminder window, and the first expiry.
    package var expiringPoints: Points
    package var nextExpiryAt: Timestamp?
    /// Points reserved for sites (active allowances' left), all sites together.
    package var escrowed: Points = .zero
    /// The member's active allowance at the pulling site.
    package var allowance: SiteAllowance?

    /// Takes the member's active allowances: what they reserve, and the one of `site`.
    package mutating func reserve(_ allowances: [AllowanceRecord], site: SiteID, rules: AllowanceRules?) {
        escrowed = allowances.reduce(.zero) { $0 + $1.left }
        allowance = allowances.first { $0.site == site }.map {
            SiteAllowance(
                id: $0.allowanceID, left: $0.left,
                stopAt: (rules ?? .none).edgeStop(leaseUntil: $0.leaseUntil))
        }
    }
}

/// An allowance as its site is told it: what is left, and when the site must stop spending it.
package struct SiteAllowance: Sendable, Equatable {
    package var id: String
    package var left: Points
    package var stopAt: Timestamp
}

/// A page of a site's own transactions as the gateway stored them (`SyncLedger.recover`).
package struct RecoverPage: Sendable, Equatable {
    package var highWaterMark: Int64
    package var transactions: [StoredOutboxRow]
    package var hasMore: Bool
}

/// An outbox row exactly as the site pushed it.
package struct StoredOutboxRow: Sendable, Equatable {
    package var sequence: Int64
    package var transactionID: String
    package var previousHash: Data
    package var payload: Data
    package var occurredAtMilliseconds: Int64
}

/// The gateway's answer to an online authorisation (`SyncLedger.authorize`).
package struct Authorization: Sendable, Equatable {
    package enum Refusal: Sendable, Equatable {
        /// The centre has not heard of the member (the edge decides offline).
        case unknownMember
        /// The member's available points do not cover the request.
        case insufficientPoints(requested: Points)
        /// A retry of an authorisation whose hold was released.
        case released
    }

    package var holdID: String
    package var expiresAt: Timestamp?
    /// The member's points less other holds, after this one (never below zero).
    package var available: Points
    /// Nil when approved.
    package var refusal: Refusal?

    package var approved: Bool { refusal == nil }
}

// MARK: Operations

/// A site of the latest program with the gateway's view of it.
package struct SiteStatusRecord: Sendable, Equatable {
    package var site: SiteID
    package var name: String
    package var format: Format
    package var status: String
    package var highWaterMark: Int64
    package var lastSeenAt: Timestamp?
    /// How far behind the site's newest pushed transaction is (0 when it has pushed none).
    package var syncLagMilliseconds: Int64
    package var unsyncedExposure: Points
    package var flags: [String]
    /// Points the site's `offline_risk` bears.
    package var offlineRisk: Points
}

/// A member as an operator looks them up.
package struct MemberDetail: Sendable, Equatable {
    package var id: MemberID
    package var cardNumber: String
    package var tier: String
    package var tierReviewDate: String
    package var balance: Points
    package var held: Points
    package var qualifyingPoints: Points
    package var enrolledAt: Timestamp
    package var enrolledSite: String
    package var mergedMembers: [String]
    /// Lots with points left, soonest expiry first.
    package var lots: [LotDetail]
    /// The birth month the member gave (1 to 12), if any.
    package var birthMonth: Int? = nil
    /// Points reserved for sites (active allowances' left): still the member's, not in `balance`
    /// (the account, what the member may spend anywhere).
    package var escrowed: Points = .zero
}

/// A lot with points left.
package struct LotDetail: Sendable, Equatable {
    package var lotID: String
    package var earnedAt: Timestamp
    package var expiresAt: Timestamp
    package var originalPoints: Points
    package var remainingPoints: Points
}

/// One of a member's ledger entries.
package struct HistoryEntry: Sendable, Equatable {
    package var position: Int64
    package var transactionID: String
    package var kind: String
    package var points: Points
    package var site: String
    package var merchant: String
    package var occurredAt: Timestamp
    package var postedAt: Timestamp
    package var detail: String
}

/// A published program version.
package struct ProgramSummary: Sendable, Equatable {
    package var version: Int64
    package var effectiveAt: Timestamp
    package var publishedAt: Timestamp
    package var publishedBy: String
    package var documentSHA256: String
}

/// A conflict the posting rules found, as operators list them.
package struct ConflictRecord: Sendable, Equatable {
    package var kind: String
    package var site: String?
    package var transaction: String?
    package var member: String?
    package var resolution: String
    package var points: Int64
    package var detectedAt: Timestamp
    package var detail: String
}

/// Why an operator's adjustment was not booked.
package enum AdjustmentRefusal: Error, Sendable, Equatable {
    case unknownMember(MemberID)
    /// A debit the member cannot cover: what they have available.
    case insufficient(available: Points, requested: Points)
    /// `funded_by` names a merchant the program in force does not have.
    case unknownFunder(String)
}

/// A request for an allowance.
package struct AllowanceGrantCommand: Sendable {
    package var site: SiteID
    package var member: MemberID
    package var trigger: AllowanceTrigger
    /// The points asked for (nil: the rule's most, bounded by what the member may spend).
    package var points: Points?
    /// The lease's end asked for (nil: the rule's lease from now).
    package var leaseUntil: Timestamp?
    package var requestID: RequestID
    /// The operator who asked, or nil when the site did (its trigger).
    package var operatorName: String?
    /// Why, as the operator said.
    package var reason: String

    package init(
        site: SiteID, member: MemberID, trigger: AllowanceTrigger, points: Points? = nil, leaseUntil: Timestamp? = nil,
        requestID: RequestID, operatorName: String? = nil, reason: String = ""
    ) {
        self.reason = reason
        self.site = site
        self.member = member
        self.trigger = trigger
        self.points = points
        self.leaseUntil = leaseUntil
        self.requestID = requestID
        self.operatorName = operatorName
    }

    /// The receipt that makes the request idempotent: operators' request ids are one space, each
    /// site's another.
    package var receipt: ReceiptKey {
        ReceiptKey(
            merchant: operatorName == nil ? "-site:\(site)" : "-ops", operation: .allowance,
            requestID: requestID.rawValue)
    }

    /// What the grant's ledger row says of it.
    package var detail: String {
        "\(trigger.rawValue) allowance" + (operatorName.map { " by \($0): \(reason)" } ?? "")
    }
}

/// An allowance granted, or the first grant of the same request.
package struct AllowanceGrant: Sendable, Equatable {
    package var record: AllowanceRecord
    package var alreadyGranted: Bool
    /// The grant's position in the posting log.
    package var position: Int64

    package init(record: AllowanceRecord, alreadyGranted: Bool, position: Int64) {
        self.record = record
        self.alreadyGranted = alreadyGranted
        self.position = position
    }
}

/// Quotas issued to a site in a pull's answer.
package struct PromotionQuotaIssue: Sendable, Equatable {
    package var issue: Int64
    /// The site's high-water mark the quotas count from.
    package var sequence: Int64
    package var quotas: [PromotionID: Points]

    package init(issue: Int64, sequence: Int64, quotas: [PromotionID: Points]) {
        self.issue = issue
        self.sequence = sequence
        self.quotas = quotas
    }
}

/// One site's holding in one budgeted promotion.
package struct PromotionQuotaRecord: Sendable, Equatable {
    package var promotion: PromotionID
    package var site: SiteID
    package var holding: QuotaHolding
    /// When the latest quota was issued.
    package var issuedAt: Timestamp
    /// Bonus given at the site over the program's `history_days` (what the split weighs).
    package var recentPoints: Points

    package init(
        promotion: PromotionID, site: SiteID, holding: QuotaHolding, issuedAt: Timestamp, recentPoints: Points
    ) {
        self.promotion = promotion
        self.site = site
        self.holding = holding
        self.issuedAt = issuedAt
        self.recentPoints = recentPoints
    }
}

// MARK: Settlement and jobs

/// A closed settlement period: its statements exactly as stored when it was first closed.
package struct ClosedSettlement: Sendable, Equatable {
    package var period: CivilDate
    /// The whole result as canonical JSON (sorted keys): the statement of record.
    package var json: Data
    /// One line per merchant and one for the platform.
    package var csv: Data
    /// SHA-256 of the statement object inside `json` (its canonical bytes), hex.
    package var contentHash: String
    /// True when the period had been closed before and this is the stored result.
    package var alreadyClosed: Bool
    /// When and by whom (the operator's name) it was first closed.
    package var closedAt: Timestamp
    package var closedBy: String
    /// Each merchant's own statement (`merchants/<merchant>.csv`), empty for a period closed before
    /// they existed.
    package var merchantFiles: [(name: String, content: Data)] = []

    package static func == (lhs: ClosedSettlement, rhs: ClosedSettlement) -> Bool {
        lhs.period == rhs.period && lhs.json == rhs.json && lhs.csv == rhs.csv && lhs.contentHash == rhs.contentHash
            && lhs.alreadyClosed == rhs.alreadyClosed && lhs.closedAt == rhs.closedAt && lhs.closedBy == rhs.closedBy
            && lhs.merchantFiles.map(\.name) == rhs.merchantFiles.map(\.name)
            && lhs.merchantFiles.map(\.content) == rhs.merchantFiles.map(\.content)
    }
}

/// A revoked certificate, as the operators see it.
package struct RevokedCertificateRecord: Sendable, Equatable {
    package var serial: String
    package var revokedAt: Timestamp
    package var reason: String
    package var revokedBy: String
}

/// Why a period cannot be closed.
package struct SettlementRefusal: Error, Sendable, CustomStringConvertible {
    package var description: String
}

/// What an expiry run did.
package struct ExpiryRun: Sendable, Equatable {
    package var day: CivilDate
    package var members: Int
    package var points: Points
    package var transactions: Int
    /// True when this day had been run before and nothing new was done.
    package var alreadyRun: Bool
}

/// A member with points expiring soon.
package struct ExpiryReminder: Sendable, Equatable {
    package var member: MemberID
    package var points: Points
    package var expiresAt: Timestamp
}

/// A call refused for who the caller is (docs/operations.md, "Refused calls").
package struct RefusedCall: Sendable, Equatable {
    /// Its place in the ledger's list (newest is highest); 0 before it is stored.
    package var id: Int64 = 0
    package var at: Timestamp
    /// `sync`, `ops`, or `tls` for a connection refused in its handshake.
    package var service: String
    /// The method called (`coalition.sync.v1.Sync/Push`), empty for a handshake.
    package var method: String
    /// Who the caller said it was: its certificate's identity and serial, or "no certificate".
    package var peer: String
    package var address: String
    /// A short name: `NO_CERTIFICATE`, `NOT_A_SITE`, `CERTIFICATE_REVOKED`, `SITE_REVOKED`,
    /// `SITE_UNKNOWN`, `WRONG_SITE`, `NOT_AN_OPERATOR`, `TLS_HANDSHAKE`.
    package var kind: String
    /// What the caller was told, or the handshake's error.
    package var reason: String

    package init(
        id: Int64 = 0, at: Timestamp, service: String, method: String, peer: String, address: String, kind: String,
        reason: String
    ) {
        self.id = id
        self.at = at
        self.service = service
        self.method = method
        self.peer = peer
        self.address = address
        self.kind = kind
        self.reason = reason
    }
}
