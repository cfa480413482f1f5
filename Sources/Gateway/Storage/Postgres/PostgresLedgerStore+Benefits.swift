import Core
import Foundation
import Logging
import PostgresNIO

/// Tier benefits on PostgreSQL: a batch of members per transaction; a grant row per (member,
/// benefit, period), inserted before its vouchers, so two gateways running the job at once issue
/// each grant once (the second insert does nothing, and its vouchers are not made).
extension PostgresLedgerStore {
    @discardableResult
    package func grantTierBenefits(vouchers issuer: VoucherIssuer?) async throws -> Int {
        guard let issuer, let program = programs.latest?.program else { return 0 }
        let now = clockNow
        var issued = 0
        for due in BenefitGranting.due(program, today: program.timeZone.date(of: now)) {
            guard let item = program.catalog.item(due.benefit.item) else { continue }
            // Members in id order from a cursor: each batch reads past the last one, so a tier of
            // millions is walked once a day, not from its start for every batch.
            var after = ""
            while true {
                let (members, granted) = try await transaction("issuing tier benefits") { [logger] connection in
                    let members = try await connection.rows(
                        """
                        SELECT m.member_id FROM members m
                        WHERE m.tier = \(due.tier.rawValue) AND m.merged_into IS NULL AND m.member_id > \(after)
                          AND (\(due.birthMonth.map(Int64.init))::BIGINT IS NULL OR m.birth_month = \(due.birthMonth.map(Int64.init)))
                          AND NOT EXISTS (SELECT 1 FROM benefit_grants g
                              WHERE g.member_id = m.member_id AND g.benefit = \(due.key) AND g.period = \(due.period))
                        ORDER BY m.member_id LIMIT \(Int64(BenefitGranting.batch))
                        """, logger
                    ).map { try $0.text("member_id") }
                    var generator = SystemRandomNumberGenerator()
                    var granted = 0
                    for member in members {
                        let grant = TransactionID(time: now, using: &generator).description
                        let inserted = try await connection.rows(
                            """
                            INSERT INTO benefit_grants (member_id, benefit, period, grant_id, granted_at_ms)
                            VALUES (\(member), \(due.key), \(due.period), \(grant), \(now.milliseconds))
                            ON CONFLICT DO NOTHING RETURNING grant_id
                            """, logger)
                        guard !inserted.isEmpty else { continue }
                        granted += 1
                        let ids = (0..<due.benefit.count).map { _ in TransactionID(time: now, using: &generator) }
                        for claim in VoucherRules.issue(item, at: now, keyID: issuer.keyID, ids: ids) {
                            try await connection.run(
                                """
                                INSERT INTO vouchers (voucher_id, order_id, item_id, member_id, key_id, code,
                                    valid_until_ms, status, changed_position, sponsor)
                                VALUES (\(claim.voucherID.description), \(grant), \(item.id.rawValue), \(member),
                                    \(Int64(claim.keyID)), \(try issuer.sign(claim).text),
                                    \(claim.validUntil.milliseconds), 'issued', 0, 'platform')
                                """, logger)
                        }
                    }
                    return (members, granted)
                }
                issued += granted * due.benefit.count
                guard members.count == BenefitGranting.batch, let last = members.last else { break }
                after = last
            }
        }
        return issued
    }

    package func benefitGrants(member: MemberID, periods: [String: String]) async throws -> [String: [IssuedVoucher]] {
        try await reading("reading benefit grants") { connection in
            var grants: [String: [IssuedVoucher]] = [:]
            for (benefit, period) in periods {
                guard
                    let grant = try await connection.value(
                        """
                        SELECT grant_id FROM benefit_grants
                        WHERE member_id = \(member.description) AND benefit = \(benefit) AND period = \(period)
                        """, as: String.self, self.logger)
                else { continue }
                grants[benefit] = try await connection.rows(
                    """
                    SELECT voucher_id, code, valid_until_ms, status FROM vouchers WHERE order_id = \(grant)
                    ORDER BY voucher_id
                    """, self.logger
                ).map { row in
                    IssuedVoucher(
                        voucherID: try row.text("voucher_id"), code: try row.text("code"),
                        validUntil: Timestamp(milliseconds: try row.int("valid_until_ms")),
                        status: VoucherStatus(rawValue: try row.text("status")) ?? .issued)
                }
            }
            return grants
        }
    }
}
