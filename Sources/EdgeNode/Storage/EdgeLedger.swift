import Core
import Crypto
import Foundation
import GRDB
import GRPCCore
import NodeSupport
import SwiftProtobuf
import Synchronization
import Wire

/// The program an edge computes with, and its version (0 for a local program file used before the
/// gateway published one).
package struct ActiveProgram: Sendable {
    package var version: Int64
    package var program: Program

    package init(version: Int64, program: Program) {
        self.version = version
        self.program = program
    }
}

/// How the gateway answered an online authorisation (DESIGN §4, step 1).
package enum OnlineAuthorization: Sendable {
    /// The gateway placed a hold.
    case approved(holdID: String)
    /// The gateway refused: the member does not have the points globally.
    case declined(Refusal, String)
    /// No answer within the deadline, or no gateway: go on with the offline steps.
    case unavailable
}

/// The program in force at an edge, shared by the ledger and the sync client that replaces it.
package final class ProgramHolder: Sendable {
    private let current: Mutex<ActiveProgram>

    package init(_ program: ActiveProgram) {
        current = Mutex(program)
    }

    package var program: ActiveProgram {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

/// What an online authorisation asks the gateway.
package struct AuthorizationRequest: Sendable {
    package var member: MemberID
    package var merchant: MerchantID
    package var points: Points
    package var transaction: TransactionID
    package var requestID: RequestID
    /// The member's points change from this site's transactions not yet acknowledged.
    package var unacknowledged: Points
}

/// Asks the gateway to authorise a redemption within the deadline (DESIGN §4, step 1). The sync
/// client provides it; an edge without a gateway uses `RedeemAuthorizer.noGateway`.
package struct RedeemAuthorizer: Sendable {
    package var authorize: @Sendable (AuthorizationRequest) async -> OnlineAuthorization
    /// Gives back a hold that will not be used (the redemption could not be written).
    package var release: @Sendable (String) async -> Void

    package init(
        authorize: @escaping @Sendable (AuthorizationRequest) async -> OnlineAuthorization,
        release: @escaping @Sendable (String) async -> Void
    ) {
        self.authorize = authorize
        self.release = release
    }

    /// Every redemption takes the offline path.
    package static let noGateway = RedeemAuthorizer(authorize: { _ in .unavailable }, release: { _ in })
}

/// The edge's loyalty operations: each decision is taken inside the group-commit writer against
/// the current state, written with its outbox entry, and answered after the commit. Reads (balance,
/// lookup, history, quotes) go to the pool's readers.
package final class EdgeLedger: Sendable {
    package let site: SiteID
    package let database: EdgeDatabase
    package let committer: GroupCommitter
    private let clock: any WallClock
    private let phoneKey: SymmetricKey
    private let limits: EdgeLimits
    private let programs: ProgramHolder
    private let authorizer: RedeemAuthorizer

    package init(
        site: SiteID, database: EdgeDatabase, programs: ProgramHolder, clock: any WallClock, phoneHashKey: [UInt8],
        limits: EdgeLimits, authorizer: RedeemAuthorizer = .noGateway
    ) {
        self.site = site
        self.database = database
        self.committer = GroupCommitter(
            pool: database.pool, batchMax: limits.groupCommitBatchMax, queueMax: limits.writeQueueMax)
        self.clock = clock
        self.phoneKey = SymmetricKey(data: phoneHashKey)
        self.limits = limits
        self.programs = programs
        self.authorizer = authorizer
    }

    /// The program in force.
    package var program: ActiveProgram { programs.program }

    /// The keyed hash under which a phone number is stored and looked up.
    package func phoneHash(_ phone: PhoneNumber) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(phone.rawValue.utf8), using: phoneKey))
    }

    // MARK: Commands

    package struct Enroll: Sendable {
        package var key: RequestKey
        package var phone: PhoneNumber
        package var cardNumber: String?
        package var birthMonth: Int?
        package var referrer: MemberID?

        package init(key: RequestKey, phone: PhoneNumber, cardNumber: String?, birthMonth: Int?, referrer: MemberID?) {
            self.key = key
            self.phone = phone
            self.cardNumber = cardNumber
            self.birthMonth = birthMonth
            self.referrer = referrer
        }
    }

    package func enroll(_ command: Enroll) async throws -> Coalition_Edge_V1_EnrollResponse {
        let (version, program) = programPair
        let hash = phoneHash(command.phone)
        let now = clock.now()
        let site = self.site
        let limits = self.limits
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(command.key) {
                return try Coalition_Edge_V1_EnrollResponse(serializedBytes: stored)
            }
            if let existing = try Row.fetchOne(
                db, sql: "SELECT member_id FROM members WHERE phone_hash = ?", arguments: [hash])
            {
                let id: String = existing["member_id"]
                guard let member = try tx.member(MemberID(id)!) else { preconditionFailure("member row vanished") }
                var response = Coalition_Edge_V1_EnrollResponse()
                response.member = try Self.summary(tx, member, program: program, now: now)
                response.alreadyEnrolled = true
                try tx.remember(command.key, response: response, sequence: nil)
                return response
            }
            if let card = command.cardNumber,
                try Bool.fetchOne(db, sql: "SELECT 1 FROM members WHERE card_number = ?", arguments: [card]) == true
            {
                throw ServiceError(.alreadyExists, "card_number: card '\(card)' belongs to another member")
            }
            if let referrer = command.referrer, try tx.member(referrer) == nil {
                throw ServiceError.notFound("referrer_member_id", "no member '\(referrer)' is known at this site")
            }
            var generator = SystemRandomNumberGenerator()
            let member = MemberID(time: now, using: &generator)
            let transaction = TransactionID(time: now, using: &generator)
            let bonus = EarnCalculator.enrollment(program: program, hasReferrer: command.referrer != nil)
            let status = TierCalculator.initial(program.tiers, enrolledOn: program.timeZone.date(of: now))
            try db.execute(
                sql:
                    "INSERT INTO members (member_id, phone_hash, card_number, tier, birth_month, enrolled_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [
                    member.description, hash, command.cardNumber, status.tier.rawValue, command.birthMonth,
                    now.milliseconds,
                ])

            var record = Coalition_Sync_V1_Enrollment()
            record.memberID = member.description
            record.phoneHash = hash
            record.cardNumber = command.cardNumber ?? ""
            record.birthMonth = Int32(command.birthMonth ?? 0)
            record.referrerMemberID = command.referrer?.description ?? ""
            record.signupPoints = bonus.signup.total.value
            record.referralPoints = bonus.referral.value
            var payload = Self.payload(transaction, command.key, version: version, at: now)
            payload.enrollment = record
            var deltas = [(member, bonus.signup.total)]
            if let referrer = command.referrer, bonus.referral > .zero { deltas.append((referrer, bonus.referral)) }
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .enroll, merchant: command.key.merchant, member: member,
                    requestID: command.key.requestID, points: bonus.signup.total, amount: .zero, occurredAt: now,
                    localDay: program.timeZone.date(of: now), payload: payload, deltas: deltas))
            _ = site
            guard let row = try tx.member(member) else { preconditionFailure("the new member row is missing") }
            var response = Coalition_Edge_V1_EnrollResponse()
            response.member = try Self.summary(tx, row, program: program, now: now)
            response.transactionID = transaction.description
            var breakdown = Coalition_Common_V1_EarnBreakdown(bonus.signup)
            if bonus.referral > .zero {
                var referral = Coalition_Common_V1_EarnComponent()
                referral.kind = .referral
                referral.points = bonus.referral.value
                referral.description_p = "referral bonus to \(command.referrer?.description ?? "")"
                breakdown.components.append(referral)
            }
            response.breakdown = breakdown
            try tx.remember(command.key, response: response, sequence: sequence)
            return response
        }
    }

    package struct Earn: Sendable {
        package var key: RequestKey
        package var member: MemberID
        package var amount: Money
        package var lines: [SaleLine]

        package init(key: RequestKey, member: MemberID, amount: Money, lines: [SaleLine]) {
            self.key = key
            self.member = member
            self.amount = amount
            self.lines = lines
        }
    }

    /// Core's field names in the terms of the earn and redeem requests.
    static let billFields = [
        "amount": "amount_minor", "bill": "bill_amount_minor", "merchant": "merchant_id", "tier": "member_id",
    ]

    package func earn(_ command: Earn) async throws -> Coalition_Edge_V1_EarnResponse {
        let (version, program) = programPair
        let now = clock.now()
        let limits = self.limits
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(command.key) {
                return try Coalition_Edge_V1_EarnResponse(serializedBytes: stored)
            }
            guard let member = try tx.member(command.member) else {
                throw ServiceError.notFound("member_id", "no member '\(command.member)' is known at this site")
            }
            let result: EarnResult
            do {
                result = try EarnCalculator.earn(
                    program: program,
                    input: EarnInput(
                        merchant: command.key.merchant, amount: command.amount, lines: command.lines, occurredAt: now,
                        member: member.earnState, promotionBudgetsLeft: try tx.promotionBudgetsLeft()))
            } catch let error as CalculationError {
                throw ServiceError(error, fields: Self.billFields)
            }
            if result.total > .zero || result.points(of: .base) > .zero {
                var lastEarn = member.lastEarnByFormat
                lastEarn[result.format] = now
                try db.execute(
                    sql: "UPDATE members SET last_earn = ?, streak_last_day = ?, streak_days = ? WHERE member_id = ?",
                    arguments: [
                        LastEarnEncoding.encode(lastEarn), result.streak?.lastDay.description, result.streak?.days ?? 0,
                        member.id.description,
                    ])
            }
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator)
            var record = Coalition_Sync_V1_EarnRecord()
            record.memberID = member.id.description
            record.amountMinor = command.amount.minorUnits
            record.lines = command.lines.map(Self.wireLine)
            record.breakdown = Coalition_Common_V1_EarnBreakdown(result)
            record.tier = member.tier.rawValue
            record.birthMonth = Int32(member.birthMonth ?? 0)
            record.lastEarnAtMsByFormat = Dictionary(
                uniqueKeysWithValues: member.lastEarnByFormat.map { ($0.key.rawValue, $0.value.milliseconds) })
            record.streakLastDay = member.streak?.lastDay.description ?? ""
            record.streakDays = Int32(member.streak?.days ?? 0)
            record.replicaPosition = UInt64(max(0, member.snapshotPosition))
            var payload = Self.payload(transaction, command.key, version: version, at: now)
            payload.earn = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .earn, merchant: command.key.merchant, member: member.id,
                    requestID: command.key.requestID, points: result.total, amount: command.amount, occurredAt: now,
                    localDay: program.timeZone.date(of: now), payload: payload, deltas: [(member.id, result.total)]))
            try tx.recordPromotions(PromotionBudgets.given(by: result), sequence: sequence)
            var response = Coalition_Edge_V1_EarnResponse()
            response.transactionID = transaction.description
            response.points = result.total.value
            response.breakdown = record.breakdown
            response.balanceAfterPoints = max(0, try tx.balance(of: member).balance.value)
            response.programVersion = version
            try tx.remember(command.key, response: response, sequence: sequence)
            return response
        }
    }

    package struct Redeem: Sendable {
        package var key: RequestKey
        package var member: MemberID
        package var bill: Money
        package var lines: [SaleLine]
        package var points: Points

        package init(key: RequestKey, member: MemberID, bill: Money, lines: [SaleLine], points: Points) {
            self.key = key
            self.member = member
            self.bill = bill
            self.lines = lines
            self.points = points
        }
    }

    /// A redemption decided by the order of DESIGN §4: online, (allowance), floor limit, refuse.
    package func redeem(_ command: Redeem) async throws -> Coalition_Edge_V1_RedeemResponse {
        let (_, program) = programPair
        // A retry of an answered request gets its first answer, before anything is quoted again
        // (the first redemption already spent the points) or the centre is asked for a new hold.
        let limits = self.limits
        if let stored = try await database.pool.read({ db in
            try LedgerTransaction(db: db, limits: limits).storedAnswer(command.key)
        }) {
            return try Coalition_Edge_V1_RedeemResponse(serializedBytes: stored)
        }
        // Validate and quote against the locally known balance before asking anyone.
        let (preview, unacknowledged) = try await quote(
            member: command.member, merchant: command.key.merchant, bill: command.bill, lines: command.lines,
            points: command.points, program: program)
        if let refusal = preview.refusal { throw ServiceError.refused(refusal, preview.message) }
        var generator = SystemRandomNumberGenerator()
        let transaction = TransactionID(time: clock.now(), using: &generator)
        let online = await authorizer.authorize(
            AuthorizationRequest(
                member: command.member, merchant: command.key.merchant, points: preview.points,
                transaction: transaction,
                requestID: command.key.requestID, unacknowledged: unacknowledged))
        switch online {
        case .declined(let refusal, let message):
            throw ServiceError.refused(refusal, message)
        case .approved(let hold):
            do {
                return try await writeRedemption(command, transaction: transaction, authorization: .online(hold))
            } catch {
                // Not written (a refusal, a full disk): the gateway's hold would otherwise block
                // the points until it expires.
                await authorizer.release(hold)
                throw error
            }
        case .unavailable:
            // Step 2, allowance (escrow), arrives with sync; step 3 is the floor limit.
            return try await writeRedemption(command, transaction: transaction, authorization: .floorLimit)
        }
    }

    enum Authorization: Sendable {
        case online(String)
        case floorLimit

        var column: String { if case .online = self { "online" } else { "floor_limit" } }
        var wire: Coalition_Common_V1_RedeemAuthorization { if case .online = self { .online } else { .floorLimit } }
        var hold: String { if case .online(let hold) = self { hold } else { "" } }
    }

    private func writeRedemption(
        _ command: Redeem, transaction: TransactionID, authorization: Authorization
    ) async throws -> Coalition_Edge_V1_RedeemResponse {
        let (version, program) = programPair
        let now = clock.now()
        let limits = self.limits
        let site = self.site
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(command.key) {
                return try Coalition_Edge_V1_RedeemResponse(serializedBytes: stored)
            }
            guard let member = try tx.member(command.member) else {
                throw ServiceError.notFound("member_id", "no member '\(command.member)' is known at this site")
            }
            let known = try tx.balance(of: member).balance
            let today = program.timeZone.date(of: now)
            // Online, the gateway checked the global balance; offline, the local view is the limit.
            let available = if case .online = authorization { Points(Int64.max / 4) } else { known }
            let quote: RedeemQuote
            do {
                quote = try RedeemCalculator.quote(
                    program: program,
                    input: RedeemInput(
                        merchant: command.key.merchant, bill: command.bill, lines: command.lines,
                        requestedPoints: command.points, availablePoints: available))
            } catch let error as CalculationError {
                throw ServiceError(error, fields: Self.billFields)
            }
            if let refusal = quote.refusal { throw ServiceError.refused(refusal, quote.message) }
            if case .floorLimit = authorization {
                try Self.checkOffline(
                    tx, program: program, site: site, member: member.id, points: quote.points, now: now, today: today)
            }
            var record = Coalition_Sync_V1_RedeemRecord()
            record.memberID = member.id.description
            record.billAmountMinor = command.bill.minorUnits
            record.lines = command.lines.map(Self.wireLine)
            record.points = quote.points.value
            record.valueMinor = quote.value.minorUnits
            record.authorization = authorization.wire
            record.holdID = authorization.hold
            var payload = Self.payload(transaction, command.key, version: version, at: now)
            payload.redeem = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .redeem, merchant: command.key.merchant, member: member.id,
                    requestID: command.key.requestID, points: -quote.points, amount: command.bill,
                    authorization: authorization.column, occurredAt: now, localDay: today, payload: payload,
                    deltas: [(member.id, -quote.points)]))
            var response = Coalition_Edge_V1_RedeemResponse()
            response.transactionID = transaction.description
            response.points = quote.points.value
            response.valueMinor = quote.value.minorUnits
            response.remainingDueMinor = quote.remainingDue.minorUnits
            response.balanceAfterPoints = max(0, try tx.balance(of: member).balance.value)
            response.authorization = authorization.wire
            try tx.remember(command.key, response: response, sequence: sequence)
            return response
        }
    }

    /// Refuses an offline redemption past the site's floor limits.
    private static func checkOffline(
        _ tx: LedgerTransaction, program: Program, site: SiteID, member: MemberID, points: Points, now: Timestamp,
        today: CivilDate
    ) throws {
        guard let limits = program.site(site)?.offline else {
            throw ServiceError(
                .failedPrecondition, "this site is not in the program; offline redemption is not possible")
        }
        let situation = OfflineSituation(
            points: points, memberRedeemedToday: try tx.offlineRedeemed(member: member, on: today),
            siteExposure: try tx.siteExposure(), offlineMilliseconds: try tx.offlineMilliseconds(now: now))
        if let (refusal, message) = OfflineRedemptionPolicy.check(situation, limits: limits) {
            throw ServiceError.refused(refusal, message)
        }
    }

    package struct Reverse: Sendable {
        package var key: RequestKey
        package var original: TransactionID
        package var amount: Money
        package var reason: String

        package init(key: RequestKey, original: TransactionID, amount: Money, reason: String) {
            self.key = key
            self.original = original
            self.amount = amount
            self.reason = reason
        }
    }

    package func reverse(_ command: Reverse) async throws -> Coalition_Edge_V1_ReverseResponse {
        let (version, program) = programPair
        let now = clock.now()
        let limits = self.limits
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(command.key) {
                return try Coalition_Edge_V1_ReverseResponse(serializedBytes: stored)
            }
            guard
                let original = try Row.fetchOne(
                    db,
                    sql:
                        "SELECT kind, merchant_id, member_id, points, amount_minor FROM outbox WHERE transaction_id = ?",
                    arguments: [command.original.description])
            else {
                throw ServiceError.notFound(
                    "original_transaction_id", "no transaction '\(command.original)' was made at this site")
            }
            let merchant: String = original["merchant_id"]
            guard merchant == command.key.merchant.rawValue else {
                throw ServiceError(
                    .permissionDenied, "original_transaction_id: the transaction belongs to merchant '\(merchant)'")
            }
            guard let member = try tx.member(MemberID(original["member_id"] as String)!) else {
                preconditionFailure("an outbox member has no replica row")
            }
            let kind = TransactionKind(rawValue: original["kind"])
            let originalPoints = Points(original["points"])
            let previous = try Row.fetchOne(
                db,
                sql:
                    "SELECT COALESCE(SUM(amount_minor), 0) AS amount, COALESCE(SUM(points), 0) AS points, COUNT(*) AS count FROM outbox WHERE kind = 'reverse' AND original_transaction_id = ?",
                arguments: [command.original.description])
            let refundedAmount = Money(minorUnits: previous?["amount"] ?? 0)
            let reversedPoints = Points(previous?["points"] ?? 0)
            let count: Int = previous?["count"] ?? 0
            let delta: Points
            let refunded: Money
            switch kind {
            case .earn?:
                let originalAmount = Money(minorUnits: original["amount_minor"])
                guard refundedAmount < originalAmount else {
                    throw ServiceError.refused(.notReversible, "This purchase has already been refunded in full.")
                }
                do {
                    let refund = try EarnReversal.refund(
                        EarnRefundState(
                            originalAmount: originalAmount, originalPoints: originalPoints,
                            refundedAmount: refundedAmount, reversedPoints: -reversedPoints),
                        amount: command.amount)
                    delta = -refund.points
                    refunded = refund.amount
                } catch let error as CalculationError {
                    throw ServiceError(error, fields: ["amount": "amount_minor"])
                }
            case .redeem?, .parking?:
                guard command.amount == .zero else {
                    throw ServiceError.invalid("amount_minor", "must be 0: a redemption is cancelled in full")
                }
                guard count == 0 else {
                    throw ServiceError.refused(.notReversible, "This redemption has already been cancelled.")
                }
                delta = -originalPoints
                refunded = .zero
            default:
                throw ServiceError.refused(
                    .notReversible,
                    "A transaction of kind '\(kind?.rawValue ?? "unknown")' cannot be reversed at a till.")
            }
            var generator = SystemRandomNumberGenerator()
            let transaction = TransactionID(time: now, using: &generator)
            var record = Coalition_Sync_V1_ReverseRecord()
            record.memberID = member.id.description
            record.originalTransactionID = command.original.description
            record.amountMinor = refunded.minorUnits
            record.points = delta.value
            record.reason = command.reason
            var payload = Self.payload(transaction, command.key, version: version, at: now)
            payload.reverse = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .reverse, merchant: command.key.merchant, member: member.id,
                    requestID: command.key.requestID, points: delta, amount: refunded, original: command.original,
                    occurredAt: now, localDay: program.timeZone.date(of: now), payload: payload,
                    deltas: [(member.id, delta)]))
            var response = Coalition_Edge_V1_ReverseResponse()
            response.transactionID = transaction.description
            response.points = abs(delta.value)
            response.balanceAfterPoints = max(0, try tx.balance(of: member).balance.value)
            try tx.remember(command.key, response: response, sequence: sequence)
            return response
        }
    }

    // MARK: Parking

    package struct ParkingStay: Sendable {
        package var ticket: String
        package var member: MemberID?
        package var entry: Timestamp
        package var exit: Timestamp

        package init(ticket: String, member: MemberID?, entry: Timestamp, exit: Timestamp) {
            self.ticket = ticket
            self.member = member
            self.entry = entry
            self.exit = exit
        }
    }

    package func parkingQuote(_ stay: ParkingStay) async throws -> Coalition_Edge_V1_ParkingQuoteResponse {
        let (_, program) = programPair
        let site = self.site
        let limits = self.limits
        let now = clock.now()
        return try await database.pool.read { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            let (quote, balance) = try Self.priceStay(tx, stay, program: program, site: site, now: now)
            var response = Coalition_Edge_V1_ParkingQuoteResponse()
            response.feeMinor = quote.fee.minorUnits
            response.stayMinutes = quote.stayMinutes
            response.freeMinutesApplied = quote.freeMinutesApplied
            response.chargedMinutes = quote.chargedMinutes
            response.pointsForFullFee = quote.pointsForFullFee.value
            response.balancePoints = max(0, balance.value)
            response.withinGrace = quote.withinGrace
            return response
        }
    }

    /// A barrier payment. Paying with points is a redemption, decided in the same order as
    /// `redeem`: the gateway first, within the authorisation deadline, and the site's floor limits
    /// only when the gateway does not answer.
    package func parkingPay(_ stay: ParkingStay, points: Points, key: RequestKey) async throws
        -> Coalition_Edge_V1_ParkingPayResponse
    {
        let (_, program) = programPair
        let site = self.site
        let limits = self.limits
        let now = clock.now()
        // A retry of an answered request gets its first answer before anything is priced again or
        // the centre is asked for a new hold.
        let preview: (stored: Data?, points: Points, unacknowledged: Points) = try await database.pool.read { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(key) { return (stored, .zero, .zero) }
            let (quote, balance) = try Self.priceStay(tx, stay, program: program, site: site, now: now)
            let payment = try Self.payment(stay, quote: quote, points: points, balance: balance, program: program)
            return (nil, payment.points, try stay.member.map { try tx.unacknowledged($0) } ?? .zero)
        }
        if let stored = preview.stored { return try Coalition_Edge_V1_ParkingPayResponse(serializedBytes: stored) }
        var generator = SystemRandomNumberGenerator()
        let transaction = TransactionID(time: now, using: &generator)
        guard let member = stay.member, preview.points > .zero else {
            return try await writeParking(
                stay, points: points, key: key, transaction: transaction, authorization: .floorLimit)
        }
        switch await authorizer.authorize(
            AuthorizationRequest(
                member: member, merchant: key.merchant, points: preview.points, transaction: transaction,
                requestID: key.requestID, unacknowledged: preview.unacknowledged))
        {
        case .declined(let refusal, let message):
            throw ServiceError.refused(refusal, message)
        case .approved(let hold):
            do {
                return try await writeParking(
                    stay, points: points, key: key, transaction: transaction, authorization: .online(hold))
            } catch {
                // Not written: the gateway's hold would otherwise keep the points until it expires.
                await authorizer.release(hold)
                throw error
            }
        case .unavailable:
            return try await writeParking(
                stay, points: points, key: key, transaction: transaction, authorization: .floorLimit)
        }
    }

    /// What paying `points` towards the stay's fee comes to, with `balance` the points the member
    /// may use. Refuses points for a non-member and points the member does not have.
    private static func payment(
        _ stay: ParkingStay, quote: ParkingQuote, points: Points, balance: Points, program: Program
    ) throws -> ParkingPayment {
        guard stay.member != nil || points == .zero else {
            throw ServiceError.invalid("member_id", "points can pay a fee only for a member")
        }
        do {
            switch try ParkingCalculator.pay(
                program: program, quote: quote, points: points, available: max(.zero, balance))
            {
            case .success(let paid): return paid
            case .failure(let refusal):
                throw ServiceError.refused(refusal, "The member has \(max(.zero, balance)) points, not \(points).")
            }
        } catch let error as CalculationError {
            throw ServiceError(error)
        }
    }

    private func writeParking(
        _ stay: ParkingStay, points: Points, key: RequestKey, transaction: TransactionID, authorization: Authorization
    ) async throws -> Coalition_Edge_V1_ParkingPayResponse {
        let (version, program) = programPair
        let site = self.site
        let limits = self.limits
        let now = clock.now()
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(key) {
                return try Coalition_Edge_V1_ParkingPayResponse(serializedBytes: stored)
            }
            let (quote, balance) = try Self.priceStay(tx, stay, program: program, site: site, now: now)
            // Online, the gateway checked the global balance and holds the points; offline, the
            // local view is the limit.
            let available = if case .online = authorization { Points(Int64.max / 4) } else { balance }
            let payment = try Self.payment(stay, quote: quote, points: points, balance: available, program: program)
            let today = program.timeZone.date(of: now)
            var response = Coalition_Edge_V1_ParkingPayResponse()
            response.feeMinor = quote.fee.minorUnits
            response.points = payment.points.value
            response.pointsValueMinor = payment.pointsValue.minorUnits
            response.amountDueMinor = payment.amountDue.minorUnits
            response.openBarrier = payment.amountDue == .zero
            response.balanceAfterPoints = max(0, balance.value)
            guard let member = stay.member, payment.points > .zero || quote.freeMinutesApplied > 0 else {
                // Nothing to book: a non-member, or a member who used neither points nor free minutes.
                return response
            }
            if payment.points > .zero, case .floorLimit = authorization {
                try Self.checkOffline(
                    tx, program: program, site: site, member: member, points: payment.points, now: now, today: today)
            }
            let paidWithPoints = payment.points > .zero
            var record = Coalition_Sync_V1_ParkingRecord()
            record.memberID = member.description
            record.ticketID = stay.ticket
            record.entryAtMs = stay.entry.milliseconds
            record.exitAtMs = stay.exit.milliseconds
            record.feeMinor = quote.fee.minorUnits
            record.points = payment.points.value
            record.pointsValueMinor = payment.pointsValue.minorUnits
            record.freeMinutesApplied = quote.freeMinutesApplied
            record.authorization = paidWithPoints ? authorization.wire : .unspecified
            record.holdID = paidWithPoints ? authorization.hold : ""
            var payload = Self.payload(transaction, key, version: version, at: now)
            payload.parking = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .parking, merchant: key.merchant, member: member,
                    requestID: key.requestID, points: -payment.points, amount: quote.fee,
                    authorization: paidWithPoints ? authorization.column : nil, freeMinutes: quote.freeMinutesApplied,
                    occurredAt: now, localDay: today, payload: payload, deltas: [(member, -payment.points)]))
            response.transactionID = transaction.description
            response.authorization = record.authorization
            response.balanceAfterPoints = max(0, (balance - payment.points).value)
            try tx.remember(key, response: response, sequence: sequence)
            return response
        }
    }

    private static func priceStay(
        _ tx: LedgerTransaction, _ stay: ParkingStay, program: Program, site: SiteID, now: Timestamp
    ) throws -> (ParkingQuote, Points) {
        var tier: TierID?
        var used = 0
        var balance = Points.zero
        if let id = stay.member {
            guard let member = try tx.member(id) else {
                throw ServiceError.notFound("member_id", "no member '\(id)' is known at this site")
            }
            tier = member.tier
            used = try tx.freeMinutesUsed(member: id, on: program.timeZone.date(of: stay.exit))
            balance = try tx.balance(of: member).balance
        }
        do {
            let quote = try ParkingCalculator.quote(
                program: program,
                input: ParkingInput(
                    site: site, entry: stay.entry, exit: stay.exit, tier: tier, freeMinutesUsedToday: used))
            return (quote, balance)
        } catch {
            if error.code == .unknownReference, error.field == "site" {
                throw ServiceError(.failedPrecondition, "this site has no car park tariff in the program")
            }
            throw ServiceError(error, fields: ["exit_at": "exit_at_ms", "entry_at": "entry_at_ms"])
        }
    }

    // MARK: Reads

    /// Local transactions the gateway has not acknowledged yet.
    package func unacknowledgedCount() async throws -> Int {
        try await database.pool.read { db in
            let last = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM outbox") ?? 0
            let acknowledged =
                try Int64.fetchOne(db, sql: "SELECT acknowledged_sequence FROM sync_state WHERE id = 1") ?? 0
            return Int(max(0, last - acknowledged))
        }
    }

    package enum MemberKey: Sendable {
        case phone(PhoneNumber)
        case card(String)
        case id(MemberID)
    }

    package func lookup(_ key: MemberKey) async throws -> Coalition_Common_V1_MemberSummary {
        let (_, program) = programPair
        let now = clock.now()
        let limits = self.limits
        let hash: Data? = if case .phone(let phone) = key { phoneHash(phone) } else { nil }
        return try await database.pool.read { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            let id: String?
            switch key {
            case .phone:
                id = try String.fetchOne(
                    db, sql: "SELECT member_id FROM members WHERE phone_hash = ?", arguments: [hash])
            case .card(let card):
                id = try String.fetchOne(
                    db, sql: "SELECT member_id FROM members WHERE card_number = ?", arguments: [card])
            case .id(let member): id = member.description
            }
            guard let id, let memberID = MemberID(id), let member = try tx.member(memberID) else {
                throw ServiceError(.notFound, "no member matches at this site")
            }
            return try Self.summary(tx, member, program: program, now: now)
        }
    }

    package func balance(_ id: MemberID) async throws -> Coalition_Edge_V1_GetBalanceResponse {
        let (_, program) = programPair
        let now = clock.now()
        let limits = self.limits
        return try await database.pool.read { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            guard let member = try tx.member(id) else {
                throw ServiceError.notFound("member_id", "no member '\(id)' is known at this site")
            }
            var response = Coalition_Edge_V1_GetBalanceResponse()
            response.member = try Self.summary(tx, member, program: program, now: now)
            response.pendingPoints = try tx.balance(of: member).pending.value
            response.snapshotAtMs = member.snapshotAt
            return response
        }
    }

    package func history(_ id: MemberID, pageSize: Int, before: Int64?) async throws
        -> Coalition_Edge_V1_HistoryResponse
    {
        let limits = self.limits
        return try await database.pool.read { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            guard try tx.member(id) != nil else {
                throw ServiceError.notFound("member_id", "no member '\(id)' is known at this site")
            }
            let acknowledged =
                try Int64.fetchOne(db, sql: "SELECT acknowledged_sequence FROM sync_state WHERE id = 1") ?? 0
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT o.sequence, o.transaction_id, o.kind, d.points, o.merchant_id, o.occurred_at_ms, o.amount_minor
                    FROM member_delta d JOIN outbox o ON o.sequence = d.sequence
                    WHERE d.member_id = ? AND d.sequence < ? ORDER BY d.sequence DESC LIMIT ?
                    """,
                arguments: [id.description, before ?? Int64.max, pageSize + 1])
            var response = Coalition_Edge_V1_HistoryResponse()
            for row in rows.prefix(pageSize) {
                var entry = Coalition_Edge_V1_HistoryEntry()
                entry.transactionID = row["transaction_id"]
                entry.kind = Self.kind(row["kind"])
                entry.points = row["points"]
                entry.merchantID = row["merchant_id"]
                entry.siteID = self.site.rawValue
                entry.occurredAtMs = row["occurred_at_ms"]
                entry.amountMinor = row["amount_minor"]
                let sequence: Int64 = row["sequence"]
                entry.synced = sequence <= acknowledged
                response.entries.append(entry)
            }
            if rows.count > pageSize, let last = rows.prefix(pageSize).last {
                let sequence: Int64 = last["sequence"]
                response.nextPageToken = String(sequence)
            }
            return response
        }
    }

    /// A redemption preview: what Redeem would do now, offline limits included.
    package func previewRedeem(
        member: MemberID, merchant: MerchantID, bill: Money, lines: [SaleLine], points: Points
    ) async throws -> Coalition_Edge_V1_PreviewRedeemResponse {
        let (_, program) = programPair
        let (quote, _) = try await quote(
            member: member, merchant: merchant, bill: bill, lines: lines, points: points, program: program)
        var response = Coalition_Edge_V1_PreviewRedeemResponse()
        response.maxPoints = quote.maxPoints.value
        response.allowed = quote.allowed
        if let refusal = quote.refusal {
            response.reason = Coalition_Common_V1_RefusalReason(refusal)
            response.message = quote.message
            response.remainingDueMinor = bill.minorUnits
            return response
        }
        response.points = quote.points.value
        response.valueMinor = quote.value.minorUnits
        response.remainingDueMinor = quote.remainingDue.minorUnits
        // Offline, the floor limits apply too (an online authorisation would decide instead).
        let site = self.site
        let limits = self.limits
        let now = clock.now()
        let offlineRefusal: (Refusal, String)? = try await database.pool.read { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            do {
                try Self.checkOffline(
                    tx, program: program, site: site, member: member, points: quote.points, now: now,
                    today: program.timeZone.date(of: now))
                return nil
            } catch let error as ServiceError {
                let reason = error.rpcErrorMetadata[stringValues: ServiceError.reasonKey].first(where: { _ in true })
                return (reason.flatMap(Refusal.init(rawValue:)) ?? .insufficientPoints, error.rpcErrorMessage)
            }
        }
        if let (refusal, message) = offlineRefusal {
            response.allowed = false
            response.reason = Coalition_Common_V1_RefusalReason(refusal)
            response.message = message
        }
        return response
    }

    /// A quote against the locally known balance, and the member's change the gateway has not
    /// acknowledged yet (for an online authorisation), from one read.
    private func quote(
        member: MemberID, merchant: MerchantID, bill: Money, lines: [SaleLine], points: Points, program: Program
    ) async throws -> (RedeemQuote, unacknowledged: Points) {
        let limits = self.limits
        let (available, unacknowledged): (Points, Points) = try await database.pool.read { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            guard let row = try tx.member(member) else {
                throw ServiceError.notFound("member_id", "no member '\(member)' is known at this site")
            }
            return (try tx.balance(of: row).balance, try tx.unacknowledged(member))
        }
        do {
            let quote = try RedeemCalculator.quote(
                program: program,
                input: RedeemInput(
                    merchant: merchant, bill: bill, lines: lines, requestedPoints: points, availablePoints: available))
            return (quote, unacknowledged)
        } catch {
            throw ServiceError(error, fields: Self.billFields)
        }
    }

    // MARK: Helpers

    private var programPair: (Int64, Program) {
        let current = program
        return (current.version, current.program)
    }

    /// Submits to the group committer, turning storage failures into explicit statuses.
    private func write<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await committer.submit(work)
        } catch let refusal as GroupCommitRefusal {
            switch refusal.reason {
            case .queueFull:
                throw ServiceError(.resourceExhausted, "too many requests are waiting to be written; retry shortly")
            case .closed:
                throw ServiceError(.unavailable, "the edge node is shutting down")
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            throw ServiceError(
                .resourceExhausted, "the edge's storage is full; nothing was recorded",
                reason: Refusal.storageFull.rawValue,
                cause: error)
        } catch let error as DatabaseError {
            throw ServiceError(
                .unavailable, "the edge's database failed: \(error.message ?? "\(error.resultCode)")", cause: error)
        }
    }

    private static func payload(
        _ transaction: TransactionID, _ key: RequestKey, version: Int64, at now: Timestamp
    ) -> Coalition_Sync_V1_LocalTransaction {
        var payload = Coalition_Sync_V1_LocalTransaction()
        payload.transactionID = transaction.description
        payload.requestID = key.requestID.rawValue
        payload.merchantID = key.merchant.rawValue
        payload.programVersion = version
        payload.occurredAtMs = now.milliseconds
        return payload
    }

    private static func wireLine(_ line: SaleLine) -> Coalition_Common_V1_SaleLine {
        var wire = Coalition_Common_V1_SaleLine()
        wire.sku = line.sku
        wire.category = line.category?.rawValue ?? ""
        wire.amountMinor = line.amount.minorUnits
        return wire
    }

    private static func kind(_ text: String) -> Coalition_Edge_V1_TransactionKind {
        switch TransactionKind(rawValue: text) {
        case .enroll: return .enroll
        case .earn: return .earn
        case .redeem: return .redeem
        case .reverse: return .reverse
        case .parking: return .parking
        case .adjust, .expire, nil: return .unspecified
        }
    }

    static func summary(
        _ tx: LedgerTransaction, _ member: MemberRow, program: Program, now: Timestamp
    ) throws -> Coalition_Common_V1_MemberSummary {
        var summary = Coalition_Common_V1_MemberSummary()
        summary.memberID = member.id.description
        summary.tier = member.tier.rawValue
        summary.balancePoints = max(0, try tx.balance(of: member).balance.value)
        summary.expiringPoints = member.expiringPoints.value
        summary.nextExpiryAtMs = member.nextExpiryAt
        summary.cardNumber = member.cardNumber ?? ""
        return summary
    }
}
