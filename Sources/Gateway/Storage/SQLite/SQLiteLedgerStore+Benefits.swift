import Core
import Foundation
import GRDB

/// Tier benefits on SQLite: the job runs on the orders' writer, a batch of members per
/// transaction; a grant row per (member, benefit, period) makes a second run issue nothing.
extension SQLiteLedgerStore {
    @discardableResult
    package func grantTierBenefits(vouchers issuer: VoucherIssuer?) async throws -> Int {
        guard let issuer, let program = programs.latest?.program else { return 0 }
        let now = clock.now()
        var issued = 0
        for due in BenefitGranting.due(program, today: program.timeZone.date(of: now)) {
            guard let item = program.catalog.item(due.benefit.item) else { continue }
            // Members in id order from a cursor: each batch reads past the last one, so a tier of
            // millions is walked once a day, not from its start for every batch.
            var after = ""
            while true {
                let members = try await write { [after] db -> [String] in
                    let members = try String.fetchAll(
                        db,
                        sql: """
                            SELECT m.member_id FROM members m
                            WHERE m.tier = ? AND m.merged_into IS NULL AND m.member_id > ?
                              AND (? IS NULL OR m.birth_month = ?)
                              AND NOT EXISTS (SELECT 1 FROM benefit_grants g
                                  WHERE g.member_id = m.member_id AND g.benefit = ? AND g.period = ?)
                            ORDER BY m.member_id LIMIT ?
                            """,
                        arguments: [
                            due.tier.rawValue, after, due.birthMonth, due.birthMonth, due.key, due.period,
                            BenefitGranting.batch,
                        ])
                    var generator = SystemRandomNumberGenerator()
                    for member in members {
                        let grant = TransactionID(time: now, using: &generator).description
                        try db.execute(
                            sql: """
                                INSERT INTO benefit_grants (member_id, benefit, period, grant_id, granted_at_ms)
                                VALUES (?, ?, ?, ?, ?)
                                """,
                            arguments: [member, due.key, due.period, grant, now.milliseconds])
                        let ids = (0..<due.benefit.count).map { _ in TransactionID(time: now, using: &generator) }
                        for claim in VoucherRules.issue(item, at: now, keyID: issuer.keyID, ids: ids) {
                            try db.execute(
                                sql: """
                                    INSERT INTO vouchers (voucher_id, order_id, item_id, member_id, key_id, code,
                                        valid_until_ms, status, changed_position, sponsor)
                                    VALUES (?, ?, ?, ?, ?, ?, ?, 'issued', 0, 'platform')
                                    """,
                                arguments: [
                                    claim.voucherID.description, grant, item.id.rawValue, member, Int64(claim.keyID),
                                    try issuer.sign(claim).text, claim.validUntil.milliseconds,
                                ])
                        }
                    }
                    return members
                }
                issued += members.count * due.benefit.count
                guard members.count == BenefitGranting.batch, let last = members.last else { break }
                after = last
            }
        }
        return issued
    }

    package func benefitGrants(member: MemberID, periods: [String: String]) async throws -> [String: [IssuedVoucher]] {
        try await database.pool.read { db in
            var grants: [String: [IssuedVoucher]] = [:]
            for (benefit, period) in periods {
                guard
                    let grant = try String.fetchOne(
                        db,
                        sql: "SELECT grant_id FROM benefit_grants WHERE member_id = ? AND benefit = ? AND period = ?",
                        arguments: [member.description, benefit, period])
                else { continue }
                grants[benefit] = try Row.fetchAll(
                    db,
                    sql:
                        "SELECT voucher_id, code, valid_until_ms, status FROM vouchers WHERE order_id = ? ORDER BY voucher_id",
                    arguments: [grant]
                ).map { row in
                    IssuedVoucher(
                        voucherID: row["voucher_id"], code: row["code"],
                        validUntil: Timestamp(milliseconds: row["valid_until_ms"]),
                        status: VoucherStatus(rawValue: row["status"]) ?? .issued)
                }
            }
            return grants
        }
    }
}
