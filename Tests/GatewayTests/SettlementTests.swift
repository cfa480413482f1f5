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

    /// The statement object of a stored JSON file.
    static func statement(_ json: Data) throws -> [String: Any] {
        let file = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        return try #require(file["statement"] as? [String: Any])
    }

    /// The statement's numbers for one merchant, from the stored JSON.
    static func merchant(_ json: Data, _ id: String) throws -> [String: Any] {
        let merchants = try #require(try statement(json)["merchants"] as? [[String: Any]])
        return try #require(merchants.first { $0["merchant_id"] as? String == id })
    }

    /// Issue #13, item 2: each transaction is settled at the prices of the program version it was
    /// posted under. Before, closing a day after publishing a version effective next month priced
    /// the day with it: a merchant the new version removes vanished from the statement with what it
    /// owed, and another's points were priced at the new issue price.
    @Test(
        "a day is settled at the prices its transactions were posted under, not a version published later",
        arguments: LedgerKind.allCases)
    func pricesOfThePostingVersion(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)  // 2026-11-24 12:00 in Shanghai
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock, ledger: ledger
        ) {
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
                // The mall's coffee voucher, honoured at the cafe, is honoured anywhere in the mall.
                ("        merchants: [mall-cafe]\n", ""),
            ])
            #expect(!next.contains("mall-cafe"))
            _ = try await gateway.ledger.publish(
                document: Array(next.utf8), effectiveAt: Self.at("2026-12-01T00:00"), by: "alice")
            clock.set(Self.at("2026-11-25T01:00"))
            let day = try await gateway.ledger.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "alice")
            let fashion = try Self.merchant(day.json, "mall-fashion")
            #expect(fashion["issue_price"] as? String == "1.2")
            #expect(fashion["program_version"] as? Int == 1)
            #expect(fashion["payable_minor"] as? Int == Int(-fashionPoints) * 12 / 10)
            let cafe = try Self.merchant(day.json, "mall-cafe")
            #expect(cafe["payable_minor"] as? Int == Int(-cafePoints) * 12 / 10)
        }
    }

    /// Issue #13: the hand-computed day with a refund after spend (item 3), adjustments funded by a
    /// merchant and by the platform (item 7) and an expiry, matched to the fen.
    @Test(
        "a day with a refund after spend, adjustments and an expiry settles to hand-computed figures",
        arguments: LedgerKind.allCases)
    func refundAdjustmentExpiryDay(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "hotel-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)  // 2026-11-24 12:00 in Shanghai
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock, ledger: ledger
        ) {
            gateway in
            let day = Self.at("2027-12-01T09:00")
            // Members A and B enrol on 2026-11-24 at the fashion store: their 200 sign-up points
            // each expire at the end of November 2027.
            let (memberA, memberB, earn, afterEarn) = try await RawSync.withClient(
                port: gateway.port, certificates: certificates, certificate: "mall-01"
            ) { sync in
                let enrolled = try RawSync.enrolments(merchant: "mall-fashion", count: 2)
                _ = try await sync.push(RawSync.push(enrolled))
                let members = try enrolled.map {
                    try Coalition_Sync_V1_LocalTransaction(serializedBytes: $0.payload).enrollment.memberID
                }
                clock.set(day)
                // On 2027-12-01 B spends ¥10,000 at the jeweller (20,000 points at its earn rate of 2).
                let earn = RawSync.earn(
                    member: members[1], merchant: "mall-jeweller", amount: 1_000_000, statedPoints: 20_000,
                    tier: "member", time: day)
                let earned = try RawSync.chain(
                    [earn], first: 3, previous: Data(SHA256.hash(data: enrolled[1].payload)))
                let pushed = try await sync.push(RawSync.push(earned))
                #expect(pushed.results.map(\.outcome) == [.posted])
                return (members[0], members[1], earn, Data(SHA256.hash(data: earned[0].payload)))
            }
            let expiry = try await gateway.ledger.runExpiry(asOfEndOf: CivilDate(parsing: "2027-11-30")!)
            #expect(expiry.points.value == 400)
            // B spends 19,000 points at the hotel.
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "hotel-01") {
                sync in
                var generator = SystemRandomNumberGenerator()
                let spend = RawSync.redemption(
                    transaction: TransactionID(time: day, using: &generator).description, member: memberB,
                    merchant: "hotel-rooms", points: 19_000, authorization: .floorLimit, time: day)
                let pushed = try await sync.push(
                    RawSync.push(try RawSync.chain([spend], first: 1, previous: Data(count: 32))))
                #expect(pushed.results.map(\.outcome) == [.posted])
            }
            // The jewellery comes back: B has 1,000 points, so the till takes those and withholds
            // the 19,000 spent (¥190 at the jeweller's redeem price of 1 fen).
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                let refund = RawSync.refund(
                    original: earn.transactionID, member: memberB, merchant: "mall-jeweller", amount: 1_000_000,
                    points: -1_000, withheld: 19_000, time: day)
                let pushed = try await sync.push(
                    RawSync.push(try RawSync.chain([refund], first: 4, previous: afterEarn)))
                #expect(pushed.results.map(\.outcome) == [.posted])
                #expect(pushed.results.first?.postedPoints == -1_000)
            }
            // Operators: 500 points to A at the fashion store's expense, 300 to B at the platform's.
            _ = try await gateway.ledger.adjust(
                member: MemberID(memberA)!, points: Points(500), funder: .merchant(MerchantID("mall-fashion")!),
                reason: "complaint", by: "alice", requestID: RequestID("op-1")!)
            _ = try await gateway.ledger.adjust(
                member: MemberID(memberB)!, points: Points(300), funder: .platform, reason: "goodwill", by: "alice",
                requestID: RequestID("op-2")!)
            #expect(try await gateway.balance(memberA) == 500)
            #expect(try await gateway.balance(memberB) == 300)

            clock.set(Self.at("2027-12-02T00:30"))
            let closed = try await gateway.ledger.closeSettlement(
                period: CivilDate(parsing: "2027-12-01")!, by: "alice")
            // By hand (mall 1.2 fen per point issued, the jeweller 1.5, every redeem price 1 fen):
            // fashion: no points issued that day, 500 adjusted: 500 × 1.2 = 600 payable.
            let fashion = try Self.merchant(closed.json, "mall-fashion")
            #expect(fashion["base_points"] as? Int == 0)
            #expect(fashion["points_adjusted"] as? Int == 500)
            #expect(fashion["payable_minor"] as? Int == 600)
            #expect(fashion["net_minor"] as? Int == -600)
            // jeweller: 20,000 issued, 1,000 taken back: 19,000 × 1.5 = 28,500 payable; no risk charge.
            let jeweller = try Self.merchant(closed.json, "mall-jeweller")
            #expect(jeweller["base_points"] as? Int == 20_000)
            #expect(jeweller["points_reversed"] as? Int == 1_000)
            #expect(jeweller["payable_minor"] as? Int == 28_500)
            #expect(jeweller["risk_charge_minor"] as? Int == 0)
            #expect(jeweller["net_minor"] as? Int == -28_500)
            // hotel: 19,000 taken at 1 fen.
            let rooms = try Self.merchant(closed.json, "hotel-rooms")
            #expect(rooms["receivable_minor"] as? Int == 19_000)
            #expect(rooms["net_minor"] as? Int == 19_000)
            // platform: cash spread 600 + 28,500 − 19,000 = 10,100 (the margin the jeweller's refund no
            // longer wipes out); breakage: the 400 expired points were the sign-up bonuses the
            // platform funded, which no merchant paid for: 0; 300 points given at the breakage price
            // of 1 fen = 300.
            let object = try Self.statement(closed.json)
            let platform = try #require(object["platform"] as? [String: Any])
            #expect(platform["spread_minor"] as? Int == 10_100)
            #expect(platform["net_minor"] as? Int == 10_100)
            #expect(platform["expired_points"] as? Int == 400)
            #expect(platform["breakage_minor"] as? Int == 0)
            #expect(platform["adjusted_points"] as? Int == 300)
            #expect(platform["adjustments_minor"] as? Int == 300)
            // The liability at the prices paid: opening 400 × 0 (the platform's sign-up points) = 0;
            // issued 20,000 × 1.5 + 500 × 1.2 + 300 × 0 = 30,600; redeemed 19,000 × 1.5 = 28,500;
            // expired 0; refunded 1,000 × 1.5 = 1,500; closing A's 500 × 1.2 + B's 300 × 0 = 600
            // (0 + 30,600 − 28,500 − 0 − 1,500). The margin earned: 28,500 released − 19,000 paid
            // + 0 breakage = 9,500; the cash spread exceeds it by the liability's growth, 600.
            let liability = try #require(platform["liability"] as? [String: Any])
            let figures = [
                "opening": (400, 0), "issued": (20_800, 30_600), "redeemed": (19_000, 28_500),
                "expired": (400, 0), "reversed": (1_000, 1_500), "adjusted": (0, 0), "closing": (800, 600),
            ]
            for (name, (points, minor)) in figures {
                #expect(liability["\(name)_points"] as? Int == points, "\(name)")
                #expect(liability["\(name)_minor"] as? Int == minor, "\(name)")
            }
            #expect(platform["margin_minor"] as? Int == 9_500)
            let merchants = try #require(object["merchants"] as? [[String: Any]])
            #expect(
                merchants.reduce(0) { $0 + ($1["net_minor"] as? Int ?? 0) } + (platform["net_minor"] as? Int ?? 0) == 0)
            #expect(object["journal_debits_minor"] as? Int == object["journal_credits_minor"] as? Int)
            try await gateway.checkInvariants()
        }
    }

    /// Issue #14, item 1: each point is charged to its funder. The dinner promotion is funded by the
    /// hotel's front desk (`funded_by: hotel-rooms`), sign-up, referral and cross-format bonuses by
    /// the platform (the defaults); base points by the merchant whose till issued them.
    @Test(
        "a day's base and bonus points are charged to their funders, to hand-computed figures",
        arguments: LedgerKind.allCases)
    func fundersDay(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01", "hotel-01"])
        let clock = ManualWallClock()
        clock.set(ManualClockTime.now)  // 2026-11-24 12:00 in Shanghai, inside the dinner promotion
        let configuration = try Network.gatewayConfiguration(dir, certificates: certificates)
        try Repository.exampleProgram(replacing: [
            ("      bonus_points: 150\n", "      bonus_points: 150\n      funded_by: hotel-rooms\n")
        ]).write(toFile: dir + "/program.yaml", atomically: true, encoding: .utf8)
        try await Network.withGateway(configuration, clock: clock, ledger: ledger) { gateway in
            // M enrols at the fashion store (200), N enrols referred by M (200, and 300 to M).
            let (m, mallHead) = try await RawSync.withClient(
                port: gateway.port, certificates: certificates, certificate: "mall-01"
            ) { sync in
                let (m, previous) = try await RawSync.enrolOne(sync)
                var generator = SystemRandomNumberGenerator()
                var referred = RawSync.header(merchant: "mall-fashion", prefix: "RAW-N", time: ManualClockTime.now)
                var enrolment = Coalition_Sync_V1_Enrollment()
                enrolment.memberID = MemberID(time: ManualClockTime.now, using: &generator).description
                enrolment.referrerMemberID = m
                enrolment.signupPoints = 200
                enrolment.referralPoints = 300
                referred.enrollment = enrolment
                let chain = try RawSync.chain([referred], first: 2, previous: previous)
                let pushed = try await sync.push(RawSync.push(chain))
                #expect(pushed.results.map(\.outcome) == [.posted])
                return (m, Data(SHA256.hash(data: chain[0].payload)))
            }
            // M dines at the Quay for ¥456: 456 base + 150 dinner bonus = 606; half of the bill is
            // refunded: 303 points back, 228 to the restaurant and 75 to the front desk.
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "hotel-01") {
                sync in
                // The hotel pulls first: its quota of the budgeted dinner bonus.
                var pull = Coalition_Sync_V1_PullRequest()
                pull.protocolVersion = 1
                #expect(try await sync.pull(pull).promotionBudgets.map(\.pointsLeft) == [300_000])
                let dinner = RawSync.earn(
                    member: m, merchant: "hotel-restaurant", amount: 45_600, statedPoints: 606, tier: "member",
                    promotions: ["quay-dinner": 150])
                let refund = RawSync.refund(
                    original: dinner.transactionID, member: m, merchant: "hotel-restaurant", amount: 22_800,
                    points: -303)
                let pushed = try await sync.push(
                    RawSync.push(try RawSync.chain([dinner, refund], first: 1, previous: Data(count: 32))))
                #expect(pushed.results.map(\.outcome) == [.posted, .posted])
                #expect(pushed.results.map(\.postedPoints) == [606, -303])
            }
            // Then ¥100 at the fashion store: 100 base + 10 cross-format (the hotel that day) = 110.
            try await RawSync.withClient(port: gateway.port, certificates: certificates, certificate: "mall-01") {
                sync in
                var earn = RawSync.earn(
                    member: m, merchant: "mall-fashion", amount: 10_000, statedPoints: 110, tier: "member")
                earn.earn.lastEarnAtMsByFormat = ["hotel": ManualClockTime.now.milliseconds]
                let pushed = try await sync.push(
                    RawSync.push(try RawSync.chain([earn], first: 3, previous: mallHead)))
                #expect(pushed.results.map(\.outcome) == [.posted])
            }
            #expect(try await gateway.balance(m) == 200 + 300 + 606 - 303 + 110)
            #expect(try await gateway.account("issued:hotel-restaurant") == -(456 - 228))
            #expect(try await gateway.account("bonus:hotel-rooms") == -(150 - 75))
            #expect(try await gateway.account("issued:mall-fashion") == -100)
            #expect(try await gateway.account("platform_bonus") == -(200 + 200 + 300 + 10))

            clock.set(Self.at("2026-11-25T00:30"))
            let closed = try await gateway.ledger.closeSettlement(
                period: CivilDate(parsing: "2026-11-24")!, by: "alice")
            // By hand, at the hotel's 1.1 fen and the mall's 1.2 fen per point:
            // restaurant: 456 base, 228 back: half-even(228 × 1.1 = 250.8) = 251 payable.
            let restaurant = try Self.merchant(closed.json, "hotel-restaurant")
            #expect(restaurant["base_points"] as? Int == 456)
            #expect(restaurant["bonus_points"] as? Int == 0)
            #expect(restaurant["points_reversed"] as? Int == 228)
            #expect(restaurant["payable_minor"] as? Int == 251)
            // front desk: no points of its own, funds the 150 dinner bonus, 75 back:
            // half-even(75 × 1.1 = 82.5) = 82 (to even).
            let rooms = try Self.merchant(closed.json, "hotel-rooms")
            #expect(rooms["base_points"] as? Int == 0)
            #expect(rooms["bonus_points"] as? Int == 150)
            #expect(rooms["points_reversed"] as? Int == 75)
            #expect(rooms["payable_minor"] as? Int == 82)
            #expect(rooms["net_minor"] as? Int == -82)
            // fashion: 100 base at 1.2 = 120; it pays for none of the sign-ups, the referral or the
            // cross-format bonus its till recorded.
            let fashion = try Self.merchant(closed.json, "mall-fashion")
            #expect(fashion["base_points"] as? Int == 100)
            #expect(fashion["bonus_points"] as? Int == 0)
            #expect(fashion["payable_minor"] as? Int == 120)
            // platform: 710 bonus points (two sign-ups, the referral, the cross-format bonus) at the
            // breakage price of 1 fen, shown as an expense; cash spread 251 + 82 + 120 = 453.
            let statement = try Self.statement(closed.json)
            let platform = try #require(statement["platform"] as? [String: Any])
            #expect(platform["bonus_points"] as? Int == 710)
            #expect(platform["bonus_minor"] as? Int == 710)
            #expect(platform["spread_minor"] as? Int == 453)
            #expect(platform["net_minor"] as? Int == 453)
            let journal = try #require(statement["journal"] as? [[String: Any]])
            #expect(
                journal.contains {
                    $0["debit"] as? String == "platform:bonus_expense" && $0["amount_minor"] as? Int == 710
                })
            // The liability: M's and N's points at what their funders paid: M's dinner lot 303 left
            // of 606, worth 303 × (456 × 1.1 + 150 × 1.1) / 606 = 333.3; fashion 100 × 1.2 = 120, the
            // cross-format 10 and the sign-ups and referral at 0: 333.3 + 120 = 453.3 → 453.
            let liability = try #require(platform["liability"] as? [String: Any])
            #expect(liability["closing_points"] as? Int == 200 + 300 + 303 + 110 + 200)
            #expect(liability["closing_minor"] as? Int == 453)
            // The statement says what it is.
            #expect(statement["currency"] as? String == "CNY")
            #expect(statement["minor_units_per_major"] as? Int == 100)
            #expect(statement["period_start"] as? String == "2026-11-24T00:00:00.000+08:00")
            #expect(statement["closed_by"] as? String == "alice")
            #expect(statement["closed_at"] as? String == "2026-11-25T00:30:00.000+08:00")
            #expect((statement["sign_convention"] as? String ?? "").contains("net_minor > 0: the platform pays"))
            let inactive = try #require(statement["merchants_without_activity"] as? [String])
            #expect(inactive.contains("mall-cinema") && !inactive.contains("hotel-rooms"))
            let rows = try #require(statement["merchants"] as? [[String: Any]])
            #expect(
                Set(rows.compactMap { $0["merchant_id"] as? String }) == [
                    "hotel-restaurant", "hotel-rooms", "mall-fashion",
                ])
            try await gateway.checkInvariants()
        }
    }

    @Test(
        "a day closes with hand-computed figures, once, and a late transaction goes to the next day",
        arguments: LedgerKind.allCases)
    func closeDay(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let certificates = try TestCertificates(directory: directory.url.path, sites: ["mall-01", "hotel-01"])
        let clock = ManualWallClock()
        clock.set(Self.at("2026-11-24T12:00"))
        let dir = directory.url.path
        try await Network.withGateway(
            try Network.gatewayConfiguration(dir, certificates: certificates), clock: clock, ledger: ledger
        ) {
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
                try await gateway.ledger.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "alice")
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
            let day = try await gateway.ledger.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "alice")
            #expect(!day.alreadyClosed)

            // By hand: the fashion store issued 800 base points (¥800 at 1 point per yuan) at 1.2 fen:
            // payable 960 fen; the 200 sign-up points are the platform's. The hotel took 300 points at
            // 1 fen: receivable 300 fen.
            let fashion = try Self.merchant(day.json, "mall-fashion")
            #expect(fashion["base_points"] as? Int == 800)
            #expect(fashion["payable_minor"] as? Int == 960)
            #expect(fashion["net_minor"] as? Int == -960)
            let rooms = try Self.merchant(day.json, "hotel-rooms")
            #expect(rooms["points_redeemed"] as? Int == 300)
            #expect(rooms["receivable_minor"] as? Int == 300)
            #expect(rooms["net_minor"] as? Int == 300)
            let object = try Self.statement(day.json)
            let platform = try #require(object["platform"] as? [String: Any])
            // Spread 960 − 300 = 660; the platform's net and the merchants' nets sum to zero.
            #expect(platform["spread_minor"] as? Int == 660)
            #expect(platform["net_minor"] as? Int == 660)
            let merchants = try #require(object["merchants"] as? [[String: Any]])
            #expect(
                merchants.reduce(0) { $0 + ($1["net_minor"] as? Int ?? 0) } + (platform["net_minor"] as? Int ?? 0) == 0)
            #expect(object["journal_debits_minor"] as? Int == object["journal_credits_minor"] as? Int)
            // The CSV: what it is, then one row per merchant with activity and the platform's (200
            // sign-up points it funded, at the breakage price of 1 fen).
            let csv = String(decoding: day.csv, as: UTF8.self)
            #expect(csv.hasPrefix("statement,settlement of 2026-11-24\n"))
            #expect(
                csv.contains(
                    "period,2026-11-24T00:00:00.000+08:00 to 2026-11-25T00:00:00.000+08:00 (Asia/Shanghai)\n"))
            #expect(csv.contains("currency,CNY\n") && csv.contains("closed_by,alice\n"))
            #expect(csv.contains("content_hash,\(day.contentHash)\n"))
            #expect(csv.contains("\nplatform,,,,,,,,,0,960,300,0,,,0,0,660,,660,0,0,0,200,200,"))
            #expect(csv.contains("\nhotel-rooms,hotel-01,1,0,0,0,300,0,0,0,0,300,0,0,0,0,0,300,0,,,,,,,,,\n"))
            #expect(!csv.contains("\nmall-cinema,"))
            // The content hash is the SHA-256 of the statement object's bytes in the file.
            let text = String(decoding: day.json, as: UTF8.self)
            let prefix = "{\"content_hash\":\"\(day.contentHash)\",\"statement\":"
            #expect(text.hasPrefix(prefix) && text.hasSuffix("}\n"))
            let statementBytes = Data(text.dropFirst(prefix.count).dropLast(2).utf8)
            #expect(SHA256.hash(data: statementBytes).map { String(format: "%02x", $0) }.joined() == day.contentHash)
            // … and a reader recomputes it as docs/operations.md shows, with Python's json module.
            let file = directory.url.appendingPathComponent("2026-11-24.json")
            try day.json.write(to: file)
            let check = try await ChildProcess.run(
                "/usr/bin/env",
                [
                    "python3", "-c",
                    "import json,hashlib,sys; d=json.load(open(sys.argv[1])); print(hashlib.sha256(json.dumps(d[\"statement\"],sort_keys=True,separators=(\",\",\":\"),ensure_ascii=False).encode()).hexdigest() == d[\"content_hash\"])",
                    file.path,
                ])
            #expect(check.output == "True\n", "\(check.output)\(check.errors)")
            // One file per merchant with activity.
            #expect(day.merchantFiles.map(\.name) == ["merchants/hotel-rooms.csv", "merchants/mall-fashion.csv"])
            let roomsFile = String(decoding: day.merchantFiles[0].content, as: UTF8.self)
            #expect(roomsFile.hasPrefix("statement,settlement of merchant hotel-rooms for 2026-11-24\n"))
            #expect(!roomsFile.contains("mall-fashion"))
            // … with the merchant's columns only.
            #expect(roomsFile.contains("\nhotel-rooms,hotel-01,1,0,0,0,300,0,0,0,0,300,0,0,0,0,0,300,0\n"))
            #expect(!roomsFile.contains("spread_minor"))

            // The hotel reconnects after the close: its late earn is posted on the 25th.
            try await Network.withEdge(try online("hotel-01"), merchant: "hotel-rooms", clock: clock) { hotel in
                try await Network.eventually("hotel synced") { try await Network.synced(hotel) }
            }
            let again = try await gateway.ledger.closeSettlement(period: CivilDate(parsing: "2026-11-24")!, by: "bob")
            #expect(again.alreadyClosed)
            #expect(again.json == day.json)
            #expect(again.csv == day.csv)
            #expect(again.contentHash == day.contentHash)
            #expect(again.merchantFiles.map(\.content) == day.merchantFiles.map(\.content))

            clock.set(Self.at("2026-11-26T00:30"))
            let next = try await gateway.ledger.closeSettlement(period: CivilDate(parsing: "2026-11-25")!, by: "alice")
            let lateRooms = try Self.merchant(next.json, "hotel-rooms")
            // ¥100 at the hotel: 100 base (at the hotel's 1.1 fen = 110 fen payable) + 10 cross-format
            // (the member earned at the mall that day), the platform's.
            #expect(lateRooms["base_points"] as? Int == 100)
            #expect(lateRooms["late_items"] as? Int == 1)
            #expect(lateRooms["payable_minor"] as? Int == 110)
            // The late item is listed with its times, merchant, points and bill.
            let late = try #require(try Self.statement(next.json)["late_items"] as? [[String: Any]])
            #expect(late.count == 1)
            #expect(late.first?["merchant_id"] as? String == "hotel-rooms")
            #expect(late.first?["kind"] as? String == "earn")
            #expect(late.first?["occurred_at"] as? String == "2026-11-24T23:00:00.000+08:00")
            #expect(late.first?["posted_at"] as? String == "2026-11-25T00:30:00.000+08:00")
            #expect(late.first?["points"] as? Int == 110)
            #expect(late.first?["amount_minor"] as? Int == 10_000)
            let nextCSV = String(decoding: next.csv, as: UTF8.self)
            #expect(
                nextCSV.contains(
                    "\nlate_items\ntransaction_id,kind,merchant_id,occurred_at,posted_at,points,amount_minor\n"))
            try await gateway.checkInvariants()
        }
    }
}
