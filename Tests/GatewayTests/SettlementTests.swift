// Goal: a day's settlement over scripted traffic matches hand-computed figures, the journal
// balances, the nets sum to zero with the platform, a closed day returns the same bytes forever,
// and a transaction that arrives late falls into the next day as a late item.
import Core
import Crypto
import EdgeNode
import Foundation
import Gateway
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Settlement")
struct SettlementTests {
    static let zone = ProgramTimeZone(identifier: "Asia/Shanghai")!
    static func at(_ local: String) -> Timestamp { zone.instant(of: CivilDateTime(parsing: local)!) }

    /// The statement's numbers for one merchant, from the stored JSON.
    static func merchant(_ json: Data, _ id: String) throws -> [String: Any] {
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let merchants = try #require(object["merchants"] as? [[String: Any]])
        return try #require(merchants.first { $0["merchant_id"] as? String == id })
    }

    /// Issue #13, item 2: each transaction is settled at the prices of the program version it was
    /// posted under. Before, closing a day after publishing a version effective next month priced
    /// the day with it: a merchant the new version removes vanished from the statement with what it
    /// owed, and another's points were priced at the new issue price.
    @Test("a day is settled at the prices its transactions were posted under, not a version published later")
    func pricesOfThePostingVersion() async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)  // 2026-11-24 12:00 in Shanghai
        try await Network.withGateway(try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock) {
            gateway in
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let (member, previous) = try await RawSync.enrolOne(sync)
                let earns = [
                    RawSync.earn(
                        member: member, merchant: "mall-fashion", amount: 100_000, statedPoints: 1_000, tier: "member"),
                    RawSync.earn(
                        member: member, merchant: "mall-cafe", amount: 100_000, statedPoints: 1_000, tier: "member"),
                ]
                let pushed = try await sync.push(
                    RawSync.push(
                        try RawSync.chain(
                            earns, first: 2, previous: previous)))
                #expect(pushed.results.map(\.outcome).allSatisfy { $0 != .rejected })
            }
            let fashionPoints = try await gateway.account("issued:mall-fashion")
            let cafePoints = try await gateway.account("issued:mall-cafe")
            #expect(fashionPoints < 0 && cafePoints < 0)
            // Published that afternoon, in force from next month: mall points at 1.5, the cafe gone.
            let next = try Repository.exampleProgram(replacing: [
                ("      issue_price: \"1.2\"\n", "      issue_price: \"1.5\"\n"),
                ("      - id: mall-cafe\n        name: Tide Cafe\n        category: dining\n", ""),
            ])
            #expect(!next.contains("mall-cafe"))
            _ = try gateway.store.publish(
                document: Array(next.utf8), effectiveAt: Self.at("2026-12-01T00:00"), by: "alice")
            clock.set(Self.at("2026-11-25T01:00"))
            let day = try await gateway.store.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "alice")
            let fashion = try Self.merchant(day.json, "mall-fashion")
            #expect(fashion["issue_price"] as? String == "1.2")
            #expect(fashion["program_version"] as? Int == 1)
            #expect(fashion["payable_minor"] as? Int == Int(-fashionPoints) * 12 / 10)
            let cafe = try Self.merchant(day.json, "mall-cafe")
            #expect(cafe["payable_minor"] as? Int == Int(-cafePoints) * 12 / 10)
        }
    }

    @Test("a day closes with hand-computed figures, once, and a late transaction goes to the next day")
    func closeDay() async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01", "hotel-01"])
        let clock = ManualWallClock()
        clock.set(Self.at("2026-11-24T12:00"))
        let dir = directory.url.path
        try await Network.withGateway(try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock) {
            gateway in
            let online = { (site: String) in
                try Network.edgeConfiguration(dir, site: site, certificates: certificates, gatewayPort: gateway.port)
            }
            let member: String = try await Network.withEdge(
                try online("mall-01"), merchant: "mall-fashion", clock: clock
            ) { mall in
                let member = try await mall.points.enroll(
                    Make.enroll("E-1", phone: "+8613800138000"), metadata: mall.auth
                ).member.memberID
                _ = try await mall.points.earn(Make.earn("R-1", member: member, amount: 80_000), metadata: mall.auth)
                try await Network.eventually("mall synced") { try await Network.synced(mall) }
                return member
            }
            try await Network.withEdge(try online("hotel-01"), merchant: "hotel-rooms", clock: clock) { hotel in
                try await Network.eventually("hotel knows the member") { try await hotel.balance(member) == 1_000 }
                _ = try await hotel.points.redeem(
                    Make.redeem("P-1", member: member, bill: 200_000, points: 300), metadata: hotel.auth)
                try await Network.eventually("hotel synced") { try await Network.synced(hotel) }
            }
            // Still the 24th: the day cannot be closed yet.
            await #expect(throws: SettlementRefusal.self) {
                try await gateway.store.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "alice")
            }

            // Late that evening the hotel is cut off and a guest earns; it reaches the gateway after midnight.
            clock.set(Self.at("2026-11-24T23:00"))
            let cutOff = try Network.edgeConfiguration(
                dir, site: "hotel-01", certificates: certificates, gatewayPort: SyncIntegrationTests.deadPort)
            try await Network.withEdge(cutOff, merchant: "hotel-rooms", clock: clock) { hotel in
                _ = try await hotel.points.earn(
                    Make.earn("R-LATE", member: member, amount: 10_000), metadata: hotel.auth)
            }
            clock.set(Self.at("2026-11-25T00:30"))
            let day = try await gateway.store.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "alice")
            #expect(!day.alreadyClosed)

            // By hand: the fashion store issued 200 (sign-up) + 800 (¥800 at 1 point per yuan) = 1,000 points
            // at 1.2 fen: payable 1,200 fen. The hotel took 300 points at 1 fen: receivable 300 fen.
            let fashion = try Self.merchant(day.json, "mall-fashion")
            #expect(fashion["points_issued"] as? Int == 1_000)
            #expect(fashion["payable_minor"] as? Int == 1_200)
            #expect(fashion["net_minor"] as? Int == -1_200)
            let rooms = try Self.merchant(day.json, "hotel-rooms")
            #expect(rooms["points_redeemed"] as? Int == 300)
            #expect(rooms["receivable_minor"] as? Int == 300)
            #expect(rooms["net_minor"] as? Int == 300)
            let object = try #require(try JSONSerialization.jsonObject(with: day.json) as? [String: Any])
            let platform = try #require(object["platform"] as? [String: Any])
            // Spread 1,200 − 300 = 900; the platform's net and the merchants' nets sum to zero.
            #expect(platform["spread_minor"] as? Int == 900)
            #expect(platform["net_minor"] as? Int == 900)
            let merchants = try #require(object["merchants"] as? [[String: Any]])
            #expect(
                merchants.reduce(0) { $0 + ($1["net_minor"] as? Int ?? 0) } + (platform["net_minor"] as? Int ?? 0) == 0)
            #expect(object["journal_debits_minor"] as? Int == object["journal_credits_minor"] as? Int)
            #expect(
                String(decoding: day.csv, as: UTF8.self).contains("2026-11-24,platform,,,,,,,,1200,300,0,900,,900,0,0"))
            #expect(
                String(decoding: day.csv, as: UTF8.self).contains(
                    "2026-11-24,hotel-rooms,hotel-01,1,0,0,300,0,0,0,300,0,300,0,,,"))

            // The hotel reconnects after the close: its late earn is posted on the 25th.
            try await Network.withEdge(try online("hotel-01"), merchant: "hotel-rooms", clock: clock) { hotel in
                try await Network.eventually("hotel synced") { try await Network.synced(hotel) }
            }
            let again = try await gateway.store.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "bob")
            #expect(again.alreadyClosed)
            #expect(again.json == day.json)
            #expect(again.csv == day.csv)
            #expect(again.contentHash == day.contentHash)

            clock.set(Self.at("2026-11-26T00:30"))
            let next = try await gateway.store.closeSettlement(period: CivilDate(parsing: "2026-11-25")!, by: "alice")
            let lateRooms = try Self.merchant(next.json, "hotel-rooms")
            // ¥100 at the hotel: 100 base + 10 cross-format (the member earned at the mall that day) = 110 points,
            // at the hotel's 1.1 fen = 121 fen payable.
            #expect(lateRooms["points_issued"] as? Int == 110)
            #expect(lateRooms["late_items"] as? Int == 1)
            #expect(lateRooms["payable_minor"] as? Int == 121)
            try await gateway.checkInvariants()
        }
    }
}
