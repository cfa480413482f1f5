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

// Car park exits: the quote and the payment (a redemption when paid in points).
extension EdgeLedger {
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
            let (quote, balance, _, _) = try Self.priceStay(tx, stay, program: program, site: site, now: now)
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
        let preview: (stored: Data?, points: Points, unacknowledged: Unacknowledged) = try await database.pool.read {
            db in
            let tx = LedgerTransaction(db: db, limits: limits)
            if let stored = try tx.storedAnswer(key) { return (stored, .zero, .none) }
            let (quote, balance, _, allowance) = try Self.priceStay(tx, stay, program: program, site: site, now: now)
            let payment = try Self.payment(stay, quote: quote, points: points, balance: balance, program: program)
            // The member's allowance here pays first, with nobody to ask; only the rest is authorised.
            let usable = allowance?.usable ?? .zero
            return (
                nil, payment.points - min(payment.points, usable),
                try stay.member.map { try tx.unacknowledged($0) } ?? .none
            )
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
    static func payment(
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

    func writeParking(
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
            let (quote, balance, row, allowance) = try Self.priceStay(
                tx, stay, program: program, site: site, now: now)
            // Online, the gateway checked the global balance and holds the points; offline, the
            // local view (with the member's allowance here) is the limit.
            let available = authorization.isOnline ? Points(Int64.max / 4) : balance
            let payment = try Self.payment(stay, quote: quote, points: points, balance: available, program: program)
            let today = program.timeZone.date(of: now)
            var response = Coalition_Edge_V1_ParkingPayResponse()
            response.feeMinor = quote.fee.minorUnits
            response.points = payment.points.value
            response.pointsValueMinor = payment.pointsValue.minorUnits
            response.amountDueMinor = payment.amountDue.minorUnits
            response.openBarrier = payment.amountDue == .zero
            response.balanceAfterPoints = max(0, balance.value)
            let split = row.map { _ in Self.split(allowance, points: payment.points) }
            guard let member = stay.member, payment.points > .zero || quote.freeMinutesApplied > 0 else {
                // Nothing to book: a non-member, or a member who used neither points nor free
                // minutes. The stay is over: the member's allowance here goes back.
                if let member = stay.member, let allowance = split?.allowance {
                    try Self.appendReturn(
                        tx, member: member, allowance: allowance, program: program, site: site, version: version,
                        now: now)
                }
                return response
            }
            let fromAllowance = split?.fromAllowance ?? .zero
            let rest = payment.points - fromAllowance
            var authorization = authorization
            if !authorization.isOnline, rest > .zero {
                authorization = .floorLimit
                try Self.checkOffline(
                    tx, program: program, site: site, member: member, points: rest, now: now, today: today)
            } else if !authorization.isOnline, payment.points > .zero {
                authorization = .allowance
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
            if let allowance = split?.allowance, fromAllowance > .zero {
                record.allowanceID = allowance.id
                record.allowancePoints = fromAllowance.value
            }
            var payload = Self.payload(transaction, key, version: version, at: now)
            payload.parking = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .parking, merchant: key.merchant, member: member,
                    requestID: key.requestID, points: -payment.points, amount: quote.fee,
                    authorization: paidWithPoints
                        ? Self.authorizationColumn(
                            authorization.wire, points: payment.points.value, allowancePoints: fromAllowance.value)
                        : nil,
                    freeMinutes: quote.freeMinutesApplied, occurredAt: now, localDay: today, payload: payload,
                    deltas: [(member, -payment.points)], allowancePoints: fromAllowance,
                    allowanceChange: split?.allowance.map { ($0.id, -fromAllowance) }))
            // The stay is over: what the member's allowance here has left goes back.
            if let allowance = split?.allowance {
                try Self.appendReturn(
                    tx, member: member, allowance: allowance, spent: fromAllowance, program: program, site: site,
                    version: version, now: now)
            }
            response.transactionID = transaction.description
            response.authorization = record.authorization
            response.balanceAfterPoints = max(0, try row.map { try tx.shownBalance(of: $0, now: now) }?.value ?? 0)
            try tx.remember(key, response: response, sequence: sequence)
            return response
        }
    }

    static func priceStay(
        _ tx: LedgerTransaction, _ stay: ParkingStay, program: Program, site: SiteID, now: Timestamp
    ) throws -> (ParkingQuote, Points, member: MemberRow?, allowance: EdgeAllowance?) {
        var tier: TierID?
        var used = 0
        var balance = Points.zero
        var row: MemberRow?
        var allowance: EdgeAllowance?
        if let id = stay.member {
            guard let member = try tx.member(id) else {
                throw ServiceError.notFound("member_id", "no member '\(id)' is known at this site")
            }
            row = member
            tier = member.tier
            used = try tx.freeMinutesUsed(member: id, on: program.timeZone.date(of: stay.exit))
            // What the member may spend here: the balance and the allowance here.
            allowance = try tx.allowance(of: member, now: now)
            balance = try tx.balance(of: member).balance + (allowance?.usable ?? .zero)
        }
        do {
            let quote = try ParkingCalculator.quote(
                program: program,
                input: ParkingInput(
                    site: site, entry: stay.entry, exit: stay.exit, tier: tier, freeMinutesUsedToday: used))
            return (quote, balance, row, allowance)
        } catch {
            if error.code == .unknownReference, error.field == "site" {
                throw ServiceError(.failedPrecondition, "this site has no car park tariff in the program")
            }
            throw ServiceError(error, fields: ["exit_at": "exit_at_ms", "entry_at": "entry_at_ms"])
        }
    }
}
