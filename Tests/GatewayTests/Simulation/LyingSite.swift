import Core
import Crypto
import Foundation
import GRDB
import Gateway
import SwiftProtobuf
import Wire

/// The liar of the simulation (DESIGN §11): a site with a valid certificate and a well-formed hash
/// chain that pushes earns it made up for members of other sites, stating the top tier, a birthday
/// this month and an earn at every format a moment ago, with points that match Core for those
/// claims (so no arithmetic check catches it; only the gateway's check of the member's state can).
///
/// It does not lie about streaks: a streak's length is the one input the gateway's record cannot
/// bound (docs/rules.md, "Member state an edge states").
///
/// It also pushes refunds of its own earlier earns stating another member than the earn's: a
/// reversal belongs to its original's member and merchant, so each must be refused; and it dates
/// some earns days back, which the gateway must post no earlier than its previous transaction less
/// the clock tolerance (docs/protocol.md, "Posting rules").
final class LyingSite {
    let site = SiteID("office-01")!
    let merchant = MerchantID("office-management")!
    private var sequence: UInt64 = 0
    private var previousHash = Data(count: 32)
    /// A forged transaction not yet acknowledged (the gateway was down): pushed again as it is.
    private(set) var pending:
        (transaction: Coalition_Sync_V1_OutboxTransaction, member: MemberID, occurredAt: Timestamp)?
    private var requestNumber = 0
    /// The forged earns the gateway posted: what a forged refund names.
    private(set) var postedEarns: [(transactionID: String, member: MemberID, amount: Int64)] = []
    /// True while the pending transaction is a refund naming another member than its original's.
    private(set) var pendingIsRefund = false
    /// When the gateway says this site's last transaction happened (as posted).
    var lastPostedOccurredAt: Timestamp?

    /// Makes up a refund of `original` (one of this site's posted earns) stating `member`, who is
    /// not the earn's.
    func forgeRefund(
        of original: (transactionID: String, member: MemberID, amount: Int64), stating member: MemberID,
        at now: Timestamp, version: Int64
    ) throws {
        precondition(pending == nil, "one forged transaction at a time")
        var local = header(at: now, version: version)
        var record = Coalition_Sync_V1_ReverseRecord()
        record.memberID = member.description
        record.originalTransactionID = original.transactionID
        record.amountMinor = original.amount
        record.points = -1
        local.reverse = record
        try setPending(local, member: member, at: now)
        pendingIsRefund = true
    }

    /// Makes up an earn of `amount` for `member` dated `now`, which the gateway is to post at
    /// `effective` (a back-dated earn is raised to its bound; the points it may be given are
    /// those of that time).
    func forge(
        member: MemberID, amount: Int64, at now: Timestamp, effective: Timestamp? = nil, program: Program,
        version: Int64
    ) throws {
        precondition(pending == nil, "one forged transaction at a time")
        let claimed = MemberEarnState(
            tier: program.tiers.tiers.last!.id, birthMonth: program.timeZone.date(of: now).month,
            lastEarnByFormat: Dictionary(uniqueKeysWithValues: program.earn.baseRates.keys.map { ($0, now) }))
        let result = try EarnCalculator.earn(
            program: program,
            input: EarnInput(merchant: merchant, amount: Money(minorUnits: amount), occurredAt: now, member: claimed))
        var local = header(at: now, version: version)
        var record = Coalition_Sync_V1_EarnRecord()
        record.memberID = member.description
        record.amountMinor = amount
        record.breakdown = Coalition_Common_V1_EarnBreakdown(result)
        record.tier = claimed.tier.rawValue
        record.birthMonth = Int32(claimed.birthMonth ?? 0)
        record.lastEarnAtMsByFormat = Dictionary(
            uniqueKeysWithValues: claimed.lastEarnByFormat.map { ($0.key.rawValue, $0.value.milliseconds) })
        local.earn = record
        try setPending(local, member: member, at: now)
        if let effective, let pending { self.pending = (pending.transaction, pending.member, effective) }
    }

    /// A new transaction of this site at `now`, with no body yet.
    private func header(at now: Timestamp, version: Int64) -> Coalition_Sync_V1_LocalTransaction {
        var generator = SystemRandomNumberGenerator()
        requestNumber += 1
        var local = Coalition_Sync_V1_LocalTransaction()
        local.transactionID = TransactionID(time: now, using: &generator).description
        local.requestID = "lie-\(requestNumber)"
        local.merchantID = merchant.rawValue
        local.programVersion = version
        local.occurredAtMs = now.milliseconds
        return local
    }

    private func setPending(_ local: Coalition_Sync_V1_LocalTransaction, member: MemberID, at now: Timestamp) throws {
        var transaction = Coalition_Sync_V1_OutboxTransaction()
        transaction.sequence = sequence + 1
        transaction.transactionID = local.transactionID
        transaction.previousHash = previousHash
        transaction.payload = try local.serializedBytes()
        transaction.occurredAtMs = now.milliseconds
        pending = (transaction, member, now)
    }

    /// Pushes the pending forged transaction; returns its result once the gateway has it.
    func push(_ gateway: SimulatedGateway, at now: Timestamp) async throws -> Coalition_Sync_V1_TransactionResult? {
        guard let pending else { return nil }
        var request = Coalition_Sync_V1_PushRequest()
        request.protocolVersion = 1
        request.programVersion = 1
        request.transactions = [pending.transaction]
        request.sentAtMs = now.milliseconds
        let site = self.site
        let response = try await callInProcess(request, method: "Push") {
            try await gateway.service(for: site).push(request: $0, context: $1)
        }
        guard response.status == .applied || response.status == .alreadyApplied, let result = response.results.first
        else { return nil }
        sequence = pending.transaction.sequence
        previousHash = Data(SHA256.hash(data: pending.transaction.payload))
        if !pendingIsRefund, result.outcome != .rejected {
            let local = try Coalition_Sync_V1_LocalTransaction(serializedBytes: pending.transaction.payload)
            postedEarns.append((pending.transaction.transactionID, pending.member, local.earn.amountMinor))
        }
        self.pending = nil
        pendingIsRefund = false
        return result
    }

    /// The most an honest site could have been given for the pending earn: Core with the gateway's
    /// own record of the member (tier, birth month, last earns, streak) as it stands before the push.
    /// Nil when the gateway does not know the member.
    func honestPoints(_ store: any LedgerStore, _ sql: LedgerSQL, tolerance: Int64) async throws -> Int64? {
        guard let pending, let program = store.programs.latest?.program else { return nil }
        let local = try Coalition_Sync_V1_LocalTransaction(serializedBytes: pending.transaction.payload)
        let id = try await Self.survivor(of: pending.member.description, sql)
        guard
            let row = try await sql.rows(
                "SELECT tier, birth_month, last_earn, streak_last_day, streak_days FROM members WHERE member_id = ?",
                [id]
            ).first
        else { return nil }
        let state = MemberEarnState(
            tier: TierID(row[0] ?? "")!, birthMonth: row[1].flatMap { Int($0) },
            lastEarnByFormat: LastEarnEncoding.decode(row[2] ?? ""),
            streak: (row[3] ?? nil).flatMap(CivilDate.init(parsing:)).map {
                Streak(lastDay: $0, days: max(1, Int(row[4] ?? "") ?? 1))
            })
        // A stated last earn no later than the record's (within the tolerance) is one a stale
        // replica could hold, and is kept: an earn dated back before the record's last earn at a
        // format may so have the cross-format bonus, as an honest stale edge's would.
        var stale = state
        for (format, time) in local.earn.lastEarnAtMsByFormat {
            guard let format = Format(format), let recorded = state.lastEarnByFormat[format],
                time <= recorded.milliseconds + tolerance
            else { continue }
            stale.lastEarnByFormat[format] = Timestamp(milliseconds: time)
        }
        return try [state, stale].map {
            try EarnCalculator.earn(
                program: program,
                input: EarnInput(
                    merchant: merchant, amount: Money(minorUnits: local.earn.amountMinor),
                    occurredAt: pending.occurredAt, member: $0)
            ).total.value
        }.max()
    }

    /// The member `member` was merged into at the gateway (itself when not merged).
    static func survivor(of member: String, _ sql: LedgerSQL) async throws -> String {
        var id = member
        for _ in 0..<8 {
            let row = try await sql.rows("SELECT merged_into FROM members WHERE member_id = ?", [id]).first
            guard let cell = row?.first, let merged = cell else { break }
            id = merged
        }
        return id
    }
}
