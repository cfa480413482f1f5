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

// Redemption in the order of DESIGN §4: online, (allowance), floor limit, refuse.
extension EdgeLedger {
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
        let (preview, unacknowledged, allowance) = try await quote(
            member: command.member, merchant: command.key.merchant, bill: command.bill, lines: command.lines,
            points: command.points, program: program)
        if let refusal = preview.refusal { throw ServiceError.refused(refusal, preview.message) }
        var generator = SystemRandomNumberGenerator()
        let transaction = TransactionID(time: clock.now(), using: &generator)
        // The member's allowance here pays first, with nobody to ask; only the rest is authorised.
        let rest = preview.points - min(preview.points, allowance)
        if rest == .zero, allowance > .zero {
            return try await writeRedemption(command, transaction: transaction, authorization: .allowance)
        }
        let online = await authorizer.authorize(
            AuthorizationRequest(
                member: command.member, merchant: command.key.merchant, points: rest,
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
        /// Wholly from the member's allowance here (nothing to authorise).
        case allowance

        var wire: Coalition_Common_V1_RedeemAuthorization {
            switch self {
            case .online: .online
            case .floorLimit: .floorLimit
            case .allowance: .allowance
            }
        }
        var hold: String { if case .online(let hold) = self { hold } else { "" } }
        var isOnline: Bool { if case .online = self { true } else { false } }
    }

    func writeRedemption(
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
            let allowance = try tx.allowance(of: member, now: now)
            let usable = allowance?.usable ?? .zero
            let today = program.timeZone.date(of: now)
            // Online, the gateway checked the global balance; offline, the local view (with the
            // member's allowance here) is the limit.
            let available = authorization.isOnline ? Points(Int64.max / 4) : known + usable
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
            let split = Self.split(allowance, points: quote.points)
            // Beyond the allowance, offline: the floor limits (an allowance spent meanwhile by
            // another till leaves more to them).
            var authorization = authorization
            if !authorization.isOnline, split.rest > .zero {
                authorization = .floorLimit
                try Self.checkOffline(
                    tx, program: program, site: site, member: member.id, points: split.rest, now: now, today: today)
            }
            var record = Coalition_Sync_V1_RedeemRecord()
            record.memberID = member.id.description
            record.billAmountMinor = command.bill.minorUnits
            record.lines = command.lines.map(Self.wireLine)
            record.points = quote.points.value
            record.valueMinor = quote.value.minorUnits
            record.authorization = authorization.wire
            record.holdID = authorization.hold
            if let allowance = split.allowance, split.fromAllowance > .zero {
                record.allowanceID = allowance.id
                record.allowancePoints = split.fromAllowance.value
            }
            var payload = Self.payload(transaction, command.key, version: version, at: now)
            payload.redeem = record
            let sequence = try tx.append(
                OutboxEntry(
                    transactionID: transaction, kind: .redeem, merchant: command.key.merchant, member: member.id,
                    requestID: command.key.requestID, points: -quote.points, amount: command.bill,
                    authorization: Self.authorizationColumn(
                        authorization.wire, points: quote.points.value, allowancePoints: split.fromAllowance.value),
                    occurredAt: now, localDay: today, payload: payload, deltas: [(member.id, -quote.points)],
                    allowancePoints: split.fromAllowance,
                    allowanceChange: split.allowance.map { ($0.id, -split.fromAllowance) }))
            var response = Coalition_Edge_V1_RedeemResponse()
            response.transactionID = transaction.description
            response.points = quote.points.value
            response.valueMinor = quote.value.minorUnits
            response.remainingDueMinor = quote.remainingDue.minorUnits
            response.balanceAfterPoints = max(0, try tx.shownBalance(of: member, now: now).value)
            response.authorization = authorization.wire
            try tx.remember(command.key, response: response, sequence: sequence)
            return response
        }
    }

    /// Refuses an offline redemption past the site's floor limits.
    static func checkOffline(
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
}
