import Core
import Foundation
import GRDB
import NodeSupport
import Wire

// Allowances at the edge (docs/protocol.md, "Allowances and promotion quotas"): the points the
// gateway reserved for a member at this site, spent first (atomically with the outbox row), given
// back when the stay ends or the stop instant passes.
extension EdgeLedger {
    /// How a spend of `points` is paid here: from the member's allowance first (what it has left
    /// before its stop instant), the rest as the authorisation says.
    struct SpendSplit {
        var allowance: EdgeAllowance?
        var fromAllowance: Points
        var rest: Points
    }

    static func split(_ allowance: EdgeAllowance?, points: Points) -> SpendSplit {
        let from = min(points, allowance?.usable ?? .zero)
        return SpendSplit(allowance: allowance, fromAllowance: from, rest: points - from)
    }

    /// The outbox's `authorization` of a spend: online, wholly from the allowance, or (for the
    /// part beyond the allowance) the floor limit.
    static func authorizationColumn(
        _ wire: Coalition_Common_V1_RedeemAuthorization, points: Int64, allowancePoints: Int64
    ) -> String {
        if wire == .online { return "online" }
        return allowancePoints >= points && allowancePoints > 0 ? "allowance" : "floor_limit"
    }

    /// Appends the return of what `allowance` has left (after this transaction's spend, `spent`),
    /// when anything is.
    static func appendReturn(
        _ tx: LedgerTransaction, member: MemberID, allowance: EdgeAllowance, spent: Points = .zero,
        program: Program, site: SiteID, version: Int64, now: Timestamp
    ) throws {
        let left = allowance.left - spent
        guard left > .zero, let merchant = program.site(site)?.merchants.first?.id,
            let requestID = RequestID("return-\(allowance.id)")
        else { return }
        var generator = SystemRandomNumberGenerator()
        let transaction = TransactionID(time: now, using: &generator)
        var record = Coalition_Sync_V1_AllowanceReturnRecord()
        record.memberID = member.description
        record.allowanceID = allowance.id
        record.points = left.value
        var payload = payload(
            transaction, RequestKey(merchant: merchant, operation: .allowance, requestID: requestID, content: []),
            version: version, at: now)
        payload.allowanceReturn = record
        _ = try tx.append(
            OutboxEntry(
                transactionID: transaction, kind: .allowanceReturn, merchant: merchant, member: member,
                requestID: requestID, points: .zero, amount: .zero, authorization: nil, occurredAt: now,
                // A zero change of the member's: the row is kept until a snapshot includes it (pruning).
                localDay: program.timeZone.date(of: now), payload: payload, deltas: [(member, .zero)],
                allowanceChange: (allowance.id, -left)))
    }

    /// Gives back what every allowance whose stop instant has passed still has left (once: a
    /// return already in the outbox is not repeated, even if the gateway rejected it; it reclaims
    /// the allowance after the lease and margin). Returns how many it gave back.
    package func returnEndedAllowances() async throws -> Int {
        let (version, program) = programPair
        let site = self.site
        let limits = self.limits
        let now = clock.now()
        let due: [MemberID] = try await database.pool.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT member_id FROM members m WHERE allowance_id IS NOT NULL AND allowance_stop_at_ms <= ?
                      AND NOT EXISTS (SELECT 1 FROM allowance_delta d JOIN outbox o ON o.sequence = d.sequence
                          WHERE d.allowance_id = m.allowance_id AND o.kind = 'allowance_return')
                    """, arguments: [now.milliseconds]
            ).compactMap(MemberID.init)
        }
        guard !due.isEmpty else { return 0 }
        return try await write { db in
            let tx = LedgerTransaction(db: db, limits: limits)
            var returned = 0
            for id in due {
                guard let member = try tx.member(id), let allowance = try tx.allowance(of: member, now: now),
                    allowance.left > .zero
                else { continue }
                try Self.appendReturn(
                    tx, member: member.id, allowance: allowance, program: program, site: site, version: version,
                    now: now)
                returned += 1
            }
            return returned
        }
    }

    /// Asks the gateway for an allowance for `member` on `trigger` and keeps it at once (a barrier
    /// lets the car in knowing what it may spend at the exit, whatever the link does then).
    package func requestAllowance(member: MemberID, trigger: AllowanceTrigger, requestID: RequestID) async throws
        -> Coalition_Sync_V1_RequestAllowanceResponse
    {
        let limits = self.limits
        guard
            try await database.pool.read({ db in try LedgerTransaction(db: db, limits: limits).member(member) })
                != nil
        else { throw ServiceError.notFound("member_id", "no member '\(member)' is known at this site") }
        let granted = try await authorizer.requestAllowance(
            AllowanceAsk(member: member, requestID: requestID, trigger: trigger))
        let position = Int64(clamping: granted.position)
        try await write { db in
            // The grant took the points from the member's balance at the gateway; a snapshot from
            // before it is not applied after (`allowance_position`).
            try db.execute(
                sql: """
                    UPDATE members SET allowance_id = ?, allowance_left = ?, allowance_stop_at_ms = ?,
                        allowance_position = ?, snapshot_balance = snapshot_balance - ?,
                        escrowed_points = escrowed_points + ?
                    WHERE member_id = ? AND snapshot_position < ? AND allowance_position < ?
                    """,
                arguments: [
                    granted.allowanceID, granted.points, granted.stopAtMs, position, granted.points, granted.points,
                    member.description, position, position,
                ])
        }
        return granted
    }
}
