// Goal (issue #12, item 1): every numeric field of every Points and Parking request (and of the
// sale lines they carry), generated from the `.proto` files, at its extremes (0, −1, minimum,
// maximum) from a valid base request with a fresh request id, is answered with a status that is
// not UNKNOWN or INTERNAL, and the edge keeps serving with its books intact.
import Core
import Foundation
import GRDB
import GRPCCore
import SwiftProtobuf
import Synchronization
import TestSupport
import Testing
import Wire

@testable import EdgeNode

@Suite("Extreme values of every POS request field")
struct ExtremeFieldTests {
    @Test("every numeric field of every Points and Parking request, at its extremes")
    func everyField() async throws {
        try await EdgeFixture.withEdge { edge in
            let auth = edge.auth("mall-fashion")
            let member = try await edge.points.enroll(
                Requests.enroll("X-E-1", phone: "+8613800138000"), metadata: auth
            ).member.memberID
            let original = try await edge.points.earn(
                Requests.earn("X-G-1", member: member, amount: 100_000), metadata: auth
            ).transactionID
            let protos = Repository.root.appendingPathComponent("protos")
            let number = Mutex(0)
            func request() -> [UInt8] {
                ExtremeRequests.text(1, "X-\(number.withLock { $0 += 1; return $0 })")
            }
            let now = UInt64(edge.clock.now().milliseconds)
            typealias R = ExtremeRequests
            let points = try R.cases(service: "Points", protos: protos) { method in
                switch method {
                case "Enroll":
                    R.Base(scalars: request() + R.text(2, "+86139\(String(format: "%08d", number.withLock { $0 }))"))
                case "LookupMember", "History": R.Base(scalars: R.text(method == "History" ? 1 : 3, member))
                case "GetBalance": R.Base(scalars: R.text(1, member))
                case "Earn":
                    R.Base(scalars: request() + R.text(2, member) + R.text(3, "mall-fashion") + R.scalar(4, 10_000))
                case "PreviewRedeem":
                    R.Base(
                        scalars: R.text(1, member) + R.text(2, "mall-fashion") + R.scalar(3, 50_000) + R.scalar(5, 100))
                case "Redeem":
                    R.Base(
                        scalars: request() + R.text(2, member) + R.text(3, "mall-fashion") + R.scalar(4, 50_000)
                            + R.scalar(6, 100))
                case "Reverse": R.Base(scalars: request() + R.text(2, original) + R.scalar(3, 100) + R.text(4, "x"))
                default: R.Base()
                }
            }
            let parking = try R.cases(service: "Parking", protos: protos) { method in
                method == "Pay"
                    ? R.Base(
                        scalars: request() + R.text(2, "T-1") + R.text(3, member) + R.scalar(4, now - 3_600_000)
                            + R.scalar(5, now) + R.scalar(6, 100))
                    : R.Base(
                        scalars: R.text(1, "T-1") + R.text(2, member) + R.scalar(3, now - 3_600_000) + R.scalar(4, now))
            }
            #expect(points.contains { $0.method == "Earn" && $0.path == "amount_minor" && $0.value == "Int64.min" })
            #expect(parking.contains { $0.method == "Pay" && $0.path == "entry_at_ms" && $0.value == "Int64.max" })
            for (service, cases, merchant) in [
                ("coalition.edge.v1.Points", points, "mall-fashion"),
                ("coalition.edge.v1.Parking", parking, "mall-fashion"),
            ] {
                await edge.client.expectAnswered(cases, service: service, metadata: edge.auth(merchant))
            }
            // Still serving, and the member never below zero.
            var balance = Coalition_Edge_V1_GetBalanceRequest()
            balance.memberID = member
            #expect(try await edge.points.getBalance(balance, metadata: auth).member.balancePoints >= 0)
        }
    }

    @Test("every numeric field of the Parking requests at a car park, at its extremes")
    func parkingAtACarPark() async throws {
        try await EdgeFixture.withEdge(site: "park-01", merchants: ["park-operator"]) { edge in
            let auth = edge.auth("park-operator")
            let member = try await edge.points.enroll(
                Requests.enroll("P-E-1", phone: "+8613800138001"), metadata: auth
            ).member.memberID
            let number = Mutex(0)
            let now = UInt64(edge.clock.now().milliseconds)
            typealias R = ExtremeRequests
            let cases = try R.cases(service: "Parking", protos: Repository.root.appendingPathComponent("protos")) {
                method in
                let stay = R.scalar(method == "Pay" ? 4 : 3, now - 3_600_000) + R.scalar(method == "Pay" ? 5 : 4, now)
                return method == "Pay"
                    ? R.Base(
                        scalars: R.text(1, "P-\(number.withLock { $0 += 1; return $0 })") + R.text(2, "T-1")
                            + R.text(3, member) + stay + R.scalar(6, 100))
                    : R.Base(scalars: R.text(1, "T-1") + R.text(2, member) + stay)
            }
            #expect(cases.count >= 10)
            await edge.client.expectAnswered(cases, service: "coalition.edge.v1.Parking", metadata: auth)
            var balance = Coalition_Edge_V1_GetBalanceRequest()
            balance.memberID = member
            #expect(try await edge.points.getBalance(balance, metadata: auth).member.balancePoints >= 0)
        }
    }
}

/// Issue #12, item 1: a recovery page whose transactions state figures this edge never writes (a
/// redemption of −2^63 points, an instant past the year 9999) is refused, not trapped on.
@Suite("Recovered transactions with extreme figures")
struct ExtremeRecoveryTests {
    @Test("a recovered transaction with extreme figures is refused with DATA_LOSS and writes nothing")
    func refused() async throws {
        let directory = try TemporaryDirectory()
        let database = try EdgeDatabase.open(
            path: directory.path("edge.sqlite"), site: SiteID("mall-01")!, limits: EdgeLimits(),
            now: Timestamp(milliseconds: 1_796_000_000_000))
        for (points, occurredAt) in [(Int64.min, Int64(1_796_000_000_000)), (100, Int64.max)] {
            var local = Coalition_Sync_V1_LocalTransaction()
            local.transactionID = "01KAR0000000000000000000AA"
            local.requestID = "R-1"
            local.merchantID = "mall-fashion"
            var redeem = Coalition_Sync_V1_RedeemRecord()
            redeem.memberID = "01KAR0000000000000000000BB"
            redeem.points = points
            local.redeem = redeem
            var transaction = Coalition_Sync_V1_OutboxTransaction()
            transaction.sequence = 1
            transaction.transactionID = local.transactionID
            transaction.previousHash = Data(count: 32)
            transaction.payload = try local.serializedBytes()
            transaction.occurredAtMs = occurredAt
            let pushed = transaction
            let message: String = try await database.pool.write { db in
                do {
                    try SyncClient.restore(pushed, db, timeZone: ProgramTimeZone(identifier: "Asia/Shanghai")!)
                    return "restored"
                } catch {
                    return "\(error)"
                }
            }
            #expect(message.contains("never writes"), "\(message)")
        }
        let rows = try await database.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM outbox") }
        #expect(rows == 0)
    }
}
