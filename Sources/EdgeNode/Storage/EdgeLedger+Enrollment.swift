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

// Enrolment at a till (DESIGN §4).
extension EdgeLedger {
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
            // The new member's points only: the referrer's bonus is not theirs, and a breakdown's
            // total is the sum of its components.
            response.breakdown = Coalition_Common_V1_EarnBreakdown(bonus.signup)
            response.referrerBonusPoints = bonus.referral.value
            try tx.remember(command.key, response: response, sequence: sequence)
            return response
        }
    }
}
