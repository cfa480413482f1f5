import Core
import CoreMetrics
import Crypto
import Foundation
import GRDB
import GRPCCore
import Logging
import NodeSupport
import SwiftProtobuf
import Synchronization
import Wire

/// The program an edge computes with, and its version (0 for a local program file used before the
/// gateway published one).

/// The edge's loyalty operations: each decision is taken inside the group-commit writer against
/// the current state, written with its outbox entry, and answered after the commit. Reads (balance,
/// lookup, history, quotes) go to the pool's readers.
package final class EdgeLedger: Sendable {
    package let site: SiteID
    package let database: EdgeDatabase
    package let committer: GroupCommitter
    let clock: any WallClock
    let phoneKey: SymmetricKey
    let limits: EdgeLimits
    let programs: ProgramHolder
    let authorizer: RedeemAuthorizer
    let logger: Logger
    /// When a full store was last logged (milliseconds of a monotonic clock): at most once a minute.
    private let storageFullLogged = Mutex<Int64?>(nil)

    package init(
        site: SiteID, database: EdgeDatabase, programs: ProgramHolder, clock: any WallClock, phoneHashKey: [UInt8],
        limits: EdgeLimits, authorizer: RedeemAuthorizer = .noGateway,
        logger: Logger = Logger(label: "coalition.edge", factory: { _ in SwiftLogNoOpLogHandler() }),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) {
        self.site = site
        self.database = database
        self.committer = GroupCommitter(
            pool: database.pool, batchMax: limits.groupCommitBatchMax, queueMax: limits.writeQueueMax,
            metrics: metrics, writer: "edge")
        self.clock = clock
        self.phoneKey = SymmetricKey(data: phoneHashKey)
        self.limits = limits
        self.programs = programs
        self.authorizer = authorizer
        self.logger = logger
    }

    /// The program in force.
    package var program: ActiveProgram { programs.program }

    /// The keyed hash under which a phone number is stored and looked up.
    package func phoneHash(_ phone: PhoneNumber) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(phone.rawValue.utf8), using: phoneKey))
    }

    // MARK: Helpers

    var programPair: (Int64, Program) {
        let current = program
        return (current.version, current.program)
    }

    /// Submits to the group committer, turning storage failures into explicit statuses.
    func write<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await committer.submit(work)
        } catch let refusal as GroupCommitRefusal {
            switch refusal.reason {
            case .queueFull:
                throw ServiceError(.resourceExhausted, "too many requests are waiting to be written; retry shortly")
            case .closed:
                throw ServiceError(.unavailable, "the edge node is shutting down")
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            let now = Uptime.milliseconds
            let due = storageFullLogged.withLock { last in
                guard last.map({ now - $0 >= 60_000 }) ?? true else { return false }
                last = now
                return true
            }
            if due {
                logger.error(
                    "storage full: writes are refused until acknowledged transactions are pruned or the cap is raised",
                    metadata: [
                        "bytes": "\(database.bytesOnDisk)", "database_bytes_max": "\(limits.databaseBytesMax)",
                    ])
            }
            throw ServiceError(
                .resourceExhausted, "the edge's storage is full; nothing was recorded",
                reason: Refusal.storageFull.rawValue,
                cause: error)
        } catch let error as DatabaseError {
            throw ServiceError(
                .unavailable, "the edge's database failed: \(error.message ?? "\(error.resultCode)")", cause: error)
        }
    }

    static func payload(
        _ transaction: TransactionID, _ key: RequestKey, version: Int64, at now: Timestamp
    ) -> Coalition_Sync_V1_LocalTransaction {
        var payload = Coalition_Sync_V1_LocalTransaction()
        payload.transactionID = transaction.description
        payload.requestID = key.requestID.rawValue
        payload.merchantID = key.merchant.rawValue
        payload.programVersion = version
        payload.occurredAtMs = now.milliseconds
        return payload
    }

    static func wireLine(_ line: SaleLine) -> Coalition_Common_V1_SaleLine {
        var wire = Coalition_Common_V1_SaleLine()
        wire.sku = line.sku
        wire.category = line.category?.rawValue ?? ""
        wire.amountMinor = line.amount.minorUnits
        return wire
    }

    static func kind(_ text: String) -> Coalition_Edge_V1_TransactionKind {
        switch TransactionKind(rawValue: text) {
        case .enroll: return .enroll
        case .earn: return .earn
        case .redeem: return .redeem
        case .reverse: return .reverse
        case .parking: return .parking
        case .order: return .order
        case .voucherUse: return .voucherUse
        case .allowanceGrant, .allowanceReturn, .allowanceReclaim: return .allowance
        case .adjust, .expire, .draw, nil: return .unspecified
        }
    }

    static func summary(
        _ tx: LedgerTransaction, _ member: MemberRow, program: Program, now: Timestamp
    ) throws -> Coalition_Common_V1_MemberSummary {
        var summary = Coalition_Common_V1_MemberSummary()
        summary.memberID = member.id.description
        summary.tier = member.tier.rawValue
        summary.balancePoints = max(0, try tx.shownBalance(of: member, now: now).value)
        summary.expiringPoints = member.expiringPoints.value
        summary.nextExpiryAtMs = member.nextExpiryAt
        summary.cardNumber = member.cardNumber ?? ""
        return summary
    }
}
