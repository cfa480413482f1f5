import Core
import Crypto
import Foundation
import GRPCCore
import Wire

/// Finding a member by phone number or card number, for the Ops and Member services. The ledger
/// keeps phones only as keyed hashes (`phone_hash_key_file`), so a phone is hashed before it is
/// looked up.
enum MemberLookup {
    /// The member with this phone number, if any. INVALID_ARGUMENT for a number that is not
    /// E.164; FAILED_PRECONDITION when the gateway has no phone hash key.
    static func byPhone(_ text: String, phoneHashKey: [UInt8]?, store: some OperationsLedger) async throws
        -> MemberID?
    {
        guard let phone = PhoneNumber(text) else { throw ServiceError.invalid("phone", PhoneNumber.rule) }
        guard let key = phoneHashKey else {
            throw ServiceError(.failedPrecondition, "phone: the gateway has no phone_hash_key_file configured")
        }
        let hash = Data(HMAC<SHA256>.authenticationCode(for: Data(phone.rawValue.utf8), using: SymmetricKey(data: key)))
        return try await store.memberID(phoneHash: hash, card: nil)
    }

    /// The member with this card number, if any. INVALID_ARGUMENT unless 1 to 32 characters.
    static func byCard(_ card: String, store: some OperationsLedger) async throws -> MemberID? {
        guard !card.isEmpty, card.count <= 32 else { throw ServiceError.invalid("card_number", "1 to 32 characters") }
        return try await store.memberID(phoneHash: nil, card: card)
    }
}
