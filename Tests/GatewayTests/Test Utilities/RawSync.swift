import Core
import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import SwiftProtobuf
import TestSupport
import Wire

/// A Sync client that is not an edge: it presents whatever certificate a test gives it and pushes
/// hand-made outbox transactions.
enum RawSync {
    @discardableResult
    static func withClient<Result: Sendable>(
        port: Int, certificates: TestCertificates, certificate: String?, ca: String = "ca.pem",
        _ body: (Coalition_Sync_V1_Sync.Client<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        let security: HTTP2ClientTransport.Posix.TransportSecurity
        if let certificate {
            security = .mTLS(
                certificateChain: [.file(path: certificates.path("\(certificate).pem"), format: .pem)],
                privateKey: .file(path: certificates.path("\(certificate).key"), format: .pem)
            ) { $0.trustRoots = .certificates([.file(path: certificates.path(ca), format: .pem)]) }
        } else {
            security = .tls { $0.trustRoots = .certificates([.file(path: certificates.path(ca), format: .pem)]) }
        }
        return try await withGRPCClient(
            transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: security)
        ) { client in
            try await body(Coalition_Sync_V1_Sync.Client(wrapping: client))
        }
    }

    /// A raw client of a site that has enrolled some members, against a gateway on loopback.
    struct EnrolledSite {
        let gateway: GatewayHarness
        let sync: Coalition_Sync_V1_Sync.Client<HTTP2ClientTransport.Posix>
        /// The enrolled members' ids (200 points each), in enrolment order.
        let members: [String]
        /// The sequence the site's next transaction takes, and the chain head before it.
        let next: UInt64
        let previous: Data
        /// The network's certificates (with an operator's, `alice`) and the gateway's clock.
        let certificates: TestCertificates
        let clock: ManualWallClock

        /// Pushes `locals` as the site's next transactions; returns the gateway's answer.
        func push(
            _ locals: [Coalition_Sync_V1_LocalTransaction], from first: UInt64? = nil, after previous: Data? = nil
        )
            async throws -> Coalition_Sync_V1_PushResponse
        {
            try await sync.push(
                RawSync.push(try RawSync.chain(locals, first: first ?? next, previous: previous ?? self.previous)))
        }

        /// Pushes each batch of `batches` in turn, one chain after the site's enrolments, running
        /// `between` after each but the last; returns the gateway's answers.
        func push(batches: [[Coalition_Sync_V1_LocalTransaction]], between: () -> Void = {}) async throws
            -> [Coalition_Sync_V1_PushResponse]
        {
            var (first, previous) = (next, self.previous)
            var answers: [Coalition_Sync_V1_PushResponse] = []
            for (index, locals) in batches.enumerated() {
                if index > 0 { between() }
                let chain = try RawSync.chain(locals, first: first, previous: previous)
                answers.append(try await sync.push(RawSync.push(chain)))
                first += UInt64(chain.count)
                previous = Data(SHA256.hash(data: chain.last?.payload ?? Data()))
            }
            return answers
        }
    }

    /// Runs `body` with a gateway serving mTLS on loopback (the test program, rewritten by
    /// `program` when given) and a raw client of `site` that has enrolled `count` members at
    /// `merchant`.
    static func withEnrolledSite(
        _ site: String = "mall-01", merchant: String = "mall-fashion", members count: Int = 1,
        program: ((String) throws -> Void)? = nil, ledger: LedgerKind = .sqlite,
        _ body: (EnrolledSite) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: [site])
        try certificates.issue(.operator("alice"), name: "alice")
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)
        let configuration = try Network.gatewayConfiguration(directory.url.path, certificates: certificates)
        try program?(directory.url.path)
        try await Network.withGateway(configuration, clock: clock, ledger: ledger) { gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: site) { sync in
                let enrolments = try RawSync.enrolments(merchant: merchant, count: count)
                _ = try await sync.push(RawSync.push(enrolments))
                let members = try enrolments.map {
                    try Coalition_Sync_V1_LocalTransaction(serializedBytes: $0.payload).enrollment.memberID
                }
                try await body(
                    EnrolledSite(
                        gateway: gateway, sync: sync, members: members, next: UInt64(count) + 1,
                        previous: Data(SHA256.hash(data: enrolments[count - 1].payload)), certificates: certificates,
                        clock: clock))
            }
            try await gateway.checkInvariants()
        }
    }

    /// Pushes one enrolment at mall-fashion as the site's first transaction; returns the member and
    /// the chain head after it (the next transaction is sequence 2).
    static func enrolOne(_ sync: Coalition_Sync_V1_Sync.Client<HTTP2ClientTransport.Posix>) async throws -> (
        member: String, previous: Data
    ) {
        let enrolments = try enrolments(merchant: "mall-fashion", count: 1)
        _ = try await sync.push(push(enrolments))
        let member = try Coalition_Sync_V1_LocalTransaction(serializedBytes: enrolments[0].payload).enrollment.memberID
        return (member, Data(SHA256.hash(data: enrolments[0].payload)))
    }

    /// A hash chain of enrolments at `merchant`, starting after `previous` at `first`.
    static func enrolments(
        merchant: String, count: Int, first: UInt64 = 1, previous: Data = Data(count: 32),
        time: Timestamp = ManualClockTime.now,
        version: Int64 = 1, signupPoints: Int64 = 200
    ) throws -> [Coalition_Sync_V1_OutboxTransaction] {
        var generator = SystemRandomNumberGenerator()
        var chain = previous
        var result: [Coalition_Sync_V1_OutboxTransaction] = []
        for index in 0..<count {
            var local = Coalition_Sync_V1_LocalTransaction()
            let id = TransactionID(time: time, using: &generator).description
            local.transactionID = id
            local.requestID = "RAW-\(first + UInt64(index))-\(UUID().uuidString.prefix(8))"
            local.merchantID = merchant
            local.programVersion = version
            local.occurredAtMs = time.milliseconds
            var enrollment = Coalition_Sync_V1_Enrollment()
            enrollment.memberID = MemberID(time: time, using: &generator).description
            enrollment.signupPoints = signupPoints
            local.enrollment = enrollment
            var transaction = Coalition_Sync_V1_OutboxTransaction()
            transaction.sequence = first + UInt64(index)
            transaction.transactionID = id
            transaction.previousHash = chain
            transaction.payload = try local.serializedBytes()
            transaction.occurredAtMs = time.milliseconds
            chain = Data(SHA256.hash(data: transaction.payload))
            result.append(transaction)
        }
        return result
    }

    /// Outbox transactions carrying `locals`, chained after `previous` from sequence `first`.
    static func chain(
        _ locals: [Coalition_Sync_V1_LocalTransaction], first: UInt64, previous: Data
    ) throws -> [Coalition_Sync_V1_OutboxTransaction] {
        var chain = previous
        return try locals.enumerated().map { index, local in
            var transaction = Coalition_Sync_V1_OutboxTransaction()
            transaction.sequence = first + UInt64(index)
            transaction.transactionID = local.transactionID
            transaction.previousHash = chain
            transaction.payload = try local.serializedBytes()
            transaction.occurredAtMs = local.occurredAtMs
            chain = Data(SHA256.hash(data: transaction.payload))
            return transaction
        }
    }

    /// A local transaction at `merchant` with no body yet: a new transaction id (or `transaction`)
    /// and a request id made from it.
    static func header(merchant: String, prefix: String, time: Timestamp, transaction: String? = nil)
        -> Coalition_Sync_V1_LocalTransaction
    {
        var generator = SystemRandomNumberGenerator()
        var local = Coalition_Sync_V1_LocalTransaction()
        local.transactionID = transaction ?? TransactionID(time: time, using: &generator).description
        local.requestID = "\(prefix)-\(local.transactionID.suffix(8))"
        local.merchantID = merchant
        local.programVersion = 1
        local.occurredAtMs = time.milliseconds
        return local
    }

    /// An earn at `merchant` as an edge records it, with the member state and points it states.
    static func earn(
        member: String, merchant: String, amount: Int64, statedPoints: Int64, tier: String, birthMonth: Int32 = 0,
        replicaPosition: UInt64 = 0, promotions: [String: Int64] = [:], time: Timestamp = ManualClockTime.now
    ) -> Coalition_Sync_V1_LocalTransaction {
        var local = header(merchant: merchant, prefix: "RAW-G", time: time)
        var record = Coalition_Sync_V1_EarnRecord()
        record.memberID = member
        record.amountMinor = amount
        record.breakdown.totalPoints = statedPoints
        for (promotion, points) in promotions.sorted(by: { $0.key < $1.key }) {
            var component = Coalition_Common_V1_EarnComponent()
            component.kind = .promotion
            component.ruleID = promotion
            component.points = points
            record.breakdown.components.append(component)
        }
        record.tier = tier
        record.birthMonth = birthMonth
        record.replicaPosition = replicaPosition
        local.earn = record
        return local
    }

    /// A refund of `amount` of the earn `original`, taking back `points` (negative) as the edge computed.
    static func refund(
        original: String, member: String, merchant: String, amount: Int64, points: Int64, withheld: Int64 = 0,
        time: Timestamp = ManualClockTime.now
    ) -> Coalition_Sync_V1_LocalTransaction {
        var local = header(merchant: merchant, prefix: "RAW-V", time: time)
        var record = Coalition_Sync_V1_ReverseRecord()
        record.memberID = member
        record.originalTransactionID = original
        record.amountMinor = amount
        record.points = points
        record.withheldPoints = withheld
        local.reverse = record
        return local
    }

    /// A redemption of `points` at `merchant` as an edge records it.
    static func redemption(
        transaction: String, member: String, merchant: String, points: Int64,
        authorization: Coalition_Common_V1_RedeemAuthorization, hold: String = "", time: Timestamp = ManualClockTime.now
    ) -> Coalition_Sync_V1_LocalTransaction {
        var local = header(merchant: merchant, prefix: "RAW-R", time: time, transaction: transaction)
        var record = Coalition_Sync_V1_RedeemRecord()
        record.memberID = member
        record.billAmountMinor = points &* 4
        record.points = points
        record.valueMinor = points
        record.authorization = authorization
        record.holdID = hold
        local.redeem = record
        return local
    }

    static func push(_ transactions: [Coalition_Sync_V1_OutboxTransaction]) -> Coalition_Sync_V1_PushRequest {
        var request = Coalition_Sync_V1_PushRequest()
        request.protocolVersion = 1
        request.programVersion = 1
        request.transactions = transactions
        request.sentAtMs = ManualClockTime.now.milliseconds
        return request
    }
}

/// The instant the manual clocks of these tests start at.
enum ManualClockTime {
    static let now = Timestamp(milliseconds: 1_795_492_800_000)
}
