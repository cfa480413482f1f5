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

package struct ActiveProgram: Sendable {
    package var version: Int64
    package var program: Program

    package init(version: Int64, program: Program) {
        self.version = version
        self.program = program
    }
}

/// How the gateway answered an online authorisation (DESIGN §4, step 1).
package enum OnlineAuthorization: Sendable {
    /// The gateway placed a hold.
    case approved(holdID: String)
    /// The gateway refused: the member does not have the points globally.
    case declined(Refusal, String)
    /// No answer within the deadline, or no gateway: go on with the offline steps.
    case unavailable
}

/// The program in force at an edge, shared by the ledger and the sync client that replaces it.
package final class ProgramHolder: Sendable {
    private let current: Mutex<ActiveProgram>

    package init(_ program: ActiveProgram) {
        current = Mutex(program)
    }

    package var program: ActiveProgram {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

/// What an online authorisation asks the gateway.
package struct AuthorizationRequest: Sendable {
    package var member: MemberID
    package var merchant: MerchantID
    package var points: Points
    package var transaction: TransactionID
    package var requestID: RequestID
    /// The member's points change from this site's transactions not yet acknowledged.
    package var unacknowledged: Unacknowledged
}

/// What an allowance request asks the gateway.
package struct AllowanceAsk: Sendable {
    package var member: MemberID
    package var requestID: RequestID
    package var trigger: AllowanceTrigger
}

/// Asks the gateway to authorise a redemption within the deadline (DESIGN §4, step 1). The sync
/// client provides it; an edge without a gateway uses `RedeemAuthorizer.noGateway`.
package struct RedeemAuthorizer: Sendable {
    package var authorize: @Sendable (AuthorizationRequest) async -> OnlineAuthorization
    /// Gives back a hold that will not be used (the redemption could not be written).
    package var release: @Sendable (String) async -> Void
    /// Asks the gateway for an allowance for a member (a car park's entry, a hotel's check-in).
    package var requestAllowance: @Sendable (AllowanceAsk) async throws -> Coalition_Sync_V1_RequestAllowanceResponse

    package init(
        authorize: @escaping @Sendable (AuthorizationRequest) async -> OnlineAuthorization,
        release: @escaping @Sendable (String) async -> Void,
        requestAllowance:
            @escaping @Sendable (AllowanceAsk) async throws -> Coalition_Sync_V1_RequestAllowanceResponse = { _ in
                throw ServiceError(.unavailable, "the centre cannot be reached: no allowance can be granted offline")
            }
    ) {
        self.authorize = authorize
        self.release = release
        self.requestAllowance = requestAllowance
    }

    /// Every redemption takes the offline path.
    package static let noGateway = RedeemAuthorizer(authorize: { _ in .unavailable }, release: { _ in })
}
