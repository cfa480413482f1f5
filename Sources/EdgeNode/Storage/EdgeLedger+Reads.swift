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

// Reads served from the pool's readers: balance, lookup, history, previews.
extension EdgeLedger {
    /// Local transactions the gateway has not acknowledged yet.
    package func unacknowledgedCount() async throws -> Int {
        try await database.pool.read { db in
            let last = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM outbox") ?? 0
            let acknowledged =
                try Int64.fetchOne(db, sql: "SELECT acknowledged_sequence FROM sync_state WHERE id = 1") ?? 0
            return Int(max(0, last - acknowledged))
        }
    }

    /// The outbox as the metrics show it: transactions not acknowledged yet, when the oldest of
    /// them happened and when the gateway last answered (epoch milliseconds; nil when none).
    package struct OutboxFigures: Sendable, Equatable {
        package var unacknowledged: Int
        package var oldestUnacknowledgedAtMilliseconds: Int64?
        package var lastGatewayContactMilliseconds: Int64?
    }

    /// Reads `OutboxFigures` (three indexed look-ups).
    package func outboxFigures() async throws -> OutboxFigures {
        try await database.pool.read { db in
            let state = try Row.fetchOne(
                db, sql: "SELECT acknowledged_sequence, last_gateway_contact_ms FROM sync_state WHERE id = 1")
            let acknowledged: Int64 = state?["acknowledged_sequence"] ?? 0
            let last = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM outbox") ?? 0
            let oldest = try Int64.fetchOne(
                db, sql: "SELECT occurred_at_ms FROM outbox WHERE sequence > ? ORDER BY sequence LIMIT 1",
                arguments: [acknowledged])
            return OutboxFigures(
                unacknowledged: Int(max(0, last - acknowledged)), oldestUnacknowledgedAtMilliseconds: oldest,
                lastGatewayContactMilliseconds: state?["last_gateway_contact_ms"])
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
        let (quote, _, allowance) = try await quote(
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
                // The allowance pays first; the floor limits apply to the rest.
                let rest = quote.points - min(quote.points, allowance)
                guard rest > .zero else { return nil }
                try Self.checkOffline(
                    tx, program: program, site: site, member: member, points: rest, now: now,
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
    func quote(
        member: MemberID, merchant: MerchantID, bill: Money, lines: [SaleLine], points: Points, program: Program
    ) async throws -> (RedeemQuote, unacknowledged: Unacknowledged, allowance: Points) {
        let limits = self.limits
        let now = clock.now()
        let (balance, unacknowledged, allowance): (Points, Unacknowledged, Points) = try await database.pool.read {
            db in
            let tx = LedgerTransaction(db: db, limits: limits)
            guard let row = try tx.member(member) else {
                throw ServiceError.notFound("member_id", "no member '\(member)' is known at this site")
            }
            return (
                try tx.balance(of: row).balance, try tx.unacknowledged(member),
                try tx.allowance(of: row, now: now)?.usable ?? .zero
            )
        }
        // The member's allowance here is theirs to spend here, on top of the balance.
        let available = balance + allowance
        do {
            let quote = try RedeemCalculator.quote(
                program: program,
                input: RedeemInput(
                    merchant: merchant, bill: bill, lines: lines, requestedPoints: points, availablePoints: available))
            return (quote, unacknowledged, allowance)
        } catch {
            throw ServiceError(error, fields: Self.billFields)
        }
    }
}
