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
final class LyingSite {
    let site = SiteID("office-01")!
    let merchant = MerchantID("office-management")!
    private var sequence: UInt64 = 0
    private var previousHash = Data(count: 32)
    /// A forged transaction not yet acknowledged (the gateway was down): pushed again as it is.
    private(set) var pending:
        (transaction: Coalition_Sync_V1_OutboxTransaction, member: MemberID, occurredAt: Timestamp)?
    private var requestNumber = 0

    /// Makes up an earn of `amount` for `member` at `now`.
    func forge(member: MemberID, amount: Int64, at now: Timestamp, program: Program, version: Int64) throws {
        precondition(pending == nil, "one forged transaction at a time")
        var generator = SystemRandomNumberGenerator()
        let claimed = MemberEarnState(
            tier: program.tiers.tiers.last!.id, birthMonth: program.timeZone.date(of: now).month,
            lastEarnByFormat: Dictionary(uniqueKeysWithValues: program.earn.baseRates.keys.map { ($0, now) }))
        let result = try EarnCalculator.earn(
            program: program,
            input: EarnInput(merchant: merchant, amount: Money(minorUnits: amount), occurredAt: now, member: claimed))
        requestNumber += 1
        var local = Coalition_Sync_V1_LocalTransaction()
        local.transactionID = TransactionID(time: now, using: &generator).description
        local.requestID = "lie-\(requestNumber)"
        local.merchantID = merchant.rawValue
        local.programVersion = version
        local.occurredAtMs = now.milliseconds
        var record = Coalition_Sync_V1_EarnRecord()
        record.memberID = member.description
        record.amountMinor = amount
        record.breakdown = Coalition_Common_V1_EarnBreakdown(result)
        record.tier = claimed.tier.rawValue
        record.birthMonth = Int32(claimed.birthMonth ?? 0)
        record.lastEarnAtMsByFormat = Dictionary(
            uniqueKeysWithValues: claimed.lastEarnByFormat.map { ($0.key.rawValue, $0.value.milliseconds) })
        local.earn = record
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
        self.pending = nil
        return result
    }

    /// The most an honest site could have been given for the pending earn: Core with the gateway's
    /// own record of the member (tier, birth month, last earns, streak) as it stands before the push.
    /// Nil when the gateway does not know the member.
    func honestPoints(_ store: SQLiteLedgerStore) async throws -> Int64? {
        guard let pending, let program = store.programs.latest?.program else { return nil }
        let local = try Coalition_Sync_V1_LocalTransaction(serializedBytes: pending.transaction.payload)
        let state: MemberEarnState? = try await store.database.pool.read { db in
            var id = pending.member.description
            for _ in 0..<8 {
                guard
                    let merged = try String.fetchOne(
                        db, sql: "SELECT merged_into FROM members WHERE member_id = ?", arguments: [id])
                else { break }
                id = merged
            }
            guard
                let row = try Row.fetchOne(
                    db,
                    sql:
                        "SELECT tier, birth_month, last_earn, streak_last_day, streak_days FROM members WHERE member_id = ?",
                    arguments: [id])
            else { return nil }
            return MemberEarnState(
                tier: TierID(row["tier"] as String)!, birthMonth: row["birth_month"],
                lastEarnByFormat: LastEarnEncoding.decode(row["last_earn"]),
                streak: (row["streak_last_day"] as String?).flatMap(CivilDate.init(parsing:)).map {
                    Streak(lastDay: $0, days: max(1, row["streak_days"]))
                })
        }
        guard let state else { return nil }
        return try EarnCalculator.earn(
            program: program,
            input: EarnInput(
                merchant: merchant, amount: Money(minorUnits: local.earn.amountMinor), occurredAt: pending.occurredAt,
                member: state)
        ).total.value
    }
}
