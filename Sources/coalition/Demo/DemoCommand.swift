import ArgumentParser
import Core
import EdgeNode
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import LocalNetwork
import Logging
import NodeSupport
import PostgresNIO
import Wire

/// `coalition demo`: a gateway and three edges (mall, hotel, car park) in one process on loopback,
/// with certificates made on the spot and the example program, playing one day of the network.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a gateway and three edges on loopback and play a day: sync, an outage, conflicts, settlement.")

    @Option(help: "Where to leave the demo's files (default: a new temporary folder).") var dir: String?
    @Option(help: "The program file (default: examples/program.yaml).") var program: String = "examples/program.yaml"
    @Option(
        help: """
            The gateway's ledger: sqlite (default, in the folder), or postgres://USER@HOST:PORT/DB: a server where \
            USER may create databases; the demo makes a new one there and keeps it (password from \
            COALITION_DATABASE_PASSWORD).
            """)
    var store = "sqlite"
    @Flag(
        help: """
            After the scripted days keep the network running with light random traffic, its web console and \
            /metrics on loopback (the console's sign-in link and the addresses are printed), until Ctrl-C.
            """)
    var serve = false

    func run() async throws {
        let folder =
            dir
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "coalition-demo-\(UUID().uuidString.prefix(8))"
            ).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        guard !FileManager.default.fileExists(atPath: folder + "/gateway.sqlite") else {
            throw CommandFailure("\(folder) holds an earlier demo; pass a new --dir")
        }
        guard FileManager.default.fileExists(atPath: program) else {
            throw CommandFailure("cannot read \(program); run the demo from the repository's folder or pass --program")
        }
        try? FileManager.default.removeItem(atPath: folder + "/program.yaml")
        try FileManager.default.copyItem(atPath: program, toPath: folder + "/program.yaml")
        var database: String?
        if store != "sqlite" {
            database = try await Self.newDatabase(on: try BenchCommand.postgres(store))
        }
        let demo = try Demo(folder: folder, database: database, serve: serve)
        try await demo.play()
    }

    /// A new database on `server` for the demo's ledger; its URL.
    static func newDatabase(on server: PostgresSettings) async throws -> String {
        let name = "coalition_demo_" + UUID().uuidString.prefix(8).lowercased()
        do {
            try await PostgresLedgerDatabase.with(server, logger: Logger(label: "coalition.demo")) { database in
                try await database.client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            }
        } catch let error as PostgresLedgerError {
            throw CommandFailure(error.description)
        }
        var settings = server
        settings.database = name
        return settings.description
    }
}

/// The scripted day. Every step prints a line a newcomer can follow.
struct Demo {
    let folder: String
    /// The PostgreSQL ledger's URL, when the demo runs on one.
    let database: String?
    let clock: SettableWallClock
    let zone = ProgramTimeZone(identifier: "Asia/Shanghai")!
    let logger = Logger(label: "coalition.demo", factory: { _ in SwiftLogNoOpLogHandler() })
    let phoneKey: [UInt8]
    /// The CA and the certificates (`certs/`), and the nodes on loopback.
    let network: LocalNetwork
    /// Keep serving after the day (`--serve`): the console and `/metrics` are configured.
    let serve: Bool

    /// `database`: the URL of a new PostgreSQL database for the ledger (nil: SQLite in the folder).
    init(folder: String, database: String?, serve: Bool = false) throws {
        self.folder = folder
        self.database = database
        self.serve = serve
        // Saturday 2026-11-28, 10:00 in Shanghai: double points at the mall today.
        clock = SettableWallClock(zone.instant(of: CivilDateTime(parsing: "2026-11-28T10:00")!))
        var generator = SystemRandomNumberGenerator()
        phoneKey = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        network = try LocalNetwork(
            directory: folder + "/certs", sites: ["mall-01", "hotel-01", "park-01"], operators: ["alice"],
            caName: "Coalition demo CA")
        try write(phoneKey.map { String(format: "%02x", $0) }.joined() + "\n", "phone.key")
        try network.issue(.channel("member-app"), name: "channel-member-app")
        try write(
            """
            gateway_port_file: gateway.port
            ca_certificate: certs/ca.pem
            certificate: certs/operator-alice.pem
            private_key: certs/operator-alice.key
            """, "admin.yaml")
        try write(
            """
            \(database.map { "database: \($0)" } ?? "database_path: gateway.sqlite")
            listen: 127.0.0.1:0
            port_file: gateway.port
            phone_hash_key_file: phone.key
            ca_certificate: certs/ca.pem
            certificate: certs/gateway.pem
            private_key: certs/gateway.key
            program_file: program.yaml
            voucher_key_file: certs/voucher-1.key
            voucher_key_id: 1
            console:
              listen: 127.0.0.1:0
              port_file: console.port
            metrics:
              listen: 127.0.0.1:0
            """, "gateway.yaml")
    }

    func path(_ name: String) -> String { folder + "/" + name }

    func write(_ text: String, _ name: String) throws {
        try LocalNetwork.write(text, to: path(name))
    }

    func at(_ local: String) { clock.set(zone.instant(of: CivilDateTime(parsing: local)!)) }

    /// Prints a line at once (unbuffered: a watcher of a redirected `--serve` run sees each line
    /// as it comes).
    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

    // MARK: Nodes

    func withGateway<R: Sendable>(_ body: (GatewayNode, Int) async throws -> R) async throws -> R {
        var configuration = try GatewayConfiguration.load(file: path("gateway.yaml"))
        configuration.listenPort = 0
        // Serving, the port file lets `coalition admin` (admin.yaml) reach this gateway.
        configuration.portFile = serve ? path("gateway.port") : nil
        if !serve {
            configuration.console = nil
            configuration.metrics = nil
        }
        // The demo moves one shared clock through a day in seconds: a push in flight while it jumps
        // carries a time from before the jump, which no real clock does. The tolerance covers the
        // demo's jumps, so its conflicts are only those a real day would have.
        configuration.limits.clockSkewMaxMilliseconds = 86_400_000
        return try await LocalNetwork.withGateway(configuration, clock: clock, logger: logger, body)
    }

    typealias Edge = RunningEdge

    /// An edge for `site`, linked to the gateway at `gatewayPort` (port 9, where nothing listens, cuts it off).
    func withEdge<R: Sendable>(_ site: String, merchants: [String], gatewayPort: Int, _ body: (Edge) async throws -> R)
        async throws -> R
    {
        var configuration = try network.edgeConfiguration(
            site: site, database: path("\(site).sqlite"), programFile: path("program.yaml"), phoneHashKey: phoneKey,
            gatewayPort: gatewayPort, certificate: site)
        if serve { configuration.metrics = HTTPEndpointSettings(port: 0) }
        return try await LocalNetwork.withEdge(
            configuration, clock: clock, logger: logger, merchants: merchants, body)
    }

    func waitUntil(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<400 {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CommandFailure("the demo timed out waiting for: \(what)")
    }

    // MARK: The day

    func play() async throws {
        say("Coalition demo — files in \(folder)")
        if let database { say("The gateway's ledger is the PostgreSQL database \(database) (kept after the demo).") }
        say(
            "A gateway and three edges (Harbour City Mall, Harbour Grand Hotel, Harbour City Car Park) on loopback, mutual TLS, the example program.\n"
        )
        try await withGateway { gateway, port in
            say(
                "10:00 gateway up on 127.0.0.1:\(port), program version \(gateway.ledger.programs.latest?.version ?? 0)"
            )
            let dead = 9
            try await withEdge("park-01", merchants: ["park-operator"], gatewayPort: port) { park in
                let (li, chen) = try await morning(port: port)
                try await evening(port: dead, li: li, chen: chen, park: park)
                try await reconnect(port: port, gateway: gateway, li: li, park: park)
                try await settle(gateway)
                try await pointsMall(gateway, port: port, offlinePort: dead)
                if serve { try await keepServing(gateway: gateway, port: port, park: park, members: [li, chen]) }
            }
        }
        say(
            """

            Try the operations CLI on the demo's ledger: start its gateway, then ask it (operator alice's certificate):
              coalition gateway serve --config \(path("gateway.yaml")) &
              coalition admin settle show --config \(path("admin.yaml")) --period 2026-11-28
              coalition admin conflicts --config \(path("admin.yaml"))
              coalition admin member show --config \(path("admin.yaml")) +8613800000001
              coalition admin vouchers --config \(path("admin.yaml"))
              coalition admin catalog --config \(path("admin.yaml"))
              coalition admin console login --config \(path("admin.yaml"))   # the web console (port in console.port)
            """)
    }

    func earnLine(_ who: String, _ where_: String, _ response: Coalition_Edge_V1_EarnResponse) -> String {
        let parts = response.breakdown.components.map {
            "\($0.kind)".replacingOccurrences(of: ".", with: "") + " \($0.points)"
        }
        return
            "\(who) earns \(response.points) points at \(where_) (\(parts.joined(separator: ", "))); balance \(response.balanceAfterPoints)"
    }

    func morning(port: Int) async throws -> (String, String) {
        try await withEdge("mall-01", merchants: ["mall-fashion", "mall-cafe"], gatewayPort: port) { mall in
            try await withEdge("hotel-01", merchants: ["hotel-rooms", "hotel-restaurant"], gatewayPort: port) { hotel in
                var enroll = Coalition_Edge_V1_EnrollRequest()
                enroll.requestID = "M-0001"
                enroll.phone = "+8613800000001"
                let li = try await mall.points.enroll(enroll, metadata: mall.auth("mall-fashion")).member.memberID
                say("10:05 Li Wei enrols at the mall: 200 sign-up points (member \(li))")
                enroll.requestID = "H-0001"
                enroll.phone = "+8613900000002"
                let chen = try await hotel.points.enroll(enroll, metadata: hotel.auth("hotel-rooms")).member.memberID
                say("10:10 Chen Jing enrols at the hotel: 200 sign-up points")

                at("2026-11-28T11:00")
                var earn = Coalition_Edge_V1_EarnRequest()
                earn.requestID = "F-1001"
                earn.memberID = li
                earn.amountMinor = 80_000
                say(
                    "11:00 "
                        + earnLine(
                            "Li", "Meridian Fashion for ¥800 on double-points Saturday",
                            try await mall.points.earn(earn, metadata: mall.auth("mall-fashion"))))

                at("2026-11-28T12:30")
                earn.requestID = "C-2001"
                earn.amountMinor = 4_500
                let coffee = try await mall.points.earn(earn, metadata: mall.auth("mall-cafe"))
                let retry = try await mall.points.earn(earn, metadata: mall.auth("mall-cafe"))
                say(
                    "12:30 the café's till sends receipt C-2001 twice: the same answer both times (transaction \(retry.transactionID == coffee.transactionID ? "unchanged" : "DIFFERENT")), points not doubled"
                )
                earn.amountMinor = 9_900
                do {
                    _ = try await mall.points.earn(earn, metadata: mall.auth("mall-cafe"))
                    say("      a third send with another amount was accepted — this should not happen")
                } catch let error as RPCError {
                    say("      a third send of C-2001 with another amount is refused: \(error.code) (\(error.message))")
                }

                try await waitUntil("the hotel knows Li") { try await hotel.balance(li, as: "hotel-rooms") > 0 }
                at("2026-11-28T18:30")
                earn.requestID = "Q-3001"
                earn.amountMinor = 30_000
                say(
                    "18:30 "
                        + earnLine(
                            "Li", "The Quay Restaurant for ¥300",
                            try await hotel.points.earn(earn, metadata: hotel.auth("hotel-restaurant"))))

                earn.requestID = "R-4001"
                earn.memberID = chen
                earn.amountMinor = 50_000
                let stay = try await hotel.points.earn(earn, metadata: hotel.auth("hotel-rooms"))
                var refund = Coalition_Edge_V1_ReverseRequest()
                refund.requestID = "R-4001-REFUND"
                refund.originalTransactionID = stay.transactionID
                refund.amountMinor = 20_000
                let refunded = try await hotel.points.reverse(refund, metadata: hotel.auth("hotel-rooms"))
                say(
                    "19:00 Chen earns \(stay.points) points for a ¥500 room bill, then ¥200 is refunded: \(refunded.points) points taken back, balance \(refunded.balanceAfterPoints)"
                )

                // Pushed, and pulled: each replica has the other's earns (the evening's offline
                // redemptions rely on them; a loaded machine could end the day with the hotel's
                // replica behind the mall's).
                try await waitUntil("both edges synced") {
                    let mallSynced = try await mall.synced
                    let hotelSynced = try await hotel.synced
                    let same =
                        try await mall.balance(li, as: "mall-fashion") == hotel.balance(li, as: "hotel-rooms")
                    return mallSynced && hotelSynced && same
                }
                let atMall = try await mall.balance(li, as: "mall-fashion")
                let atHotel = try await hotel.balance(li, as: "hotel-rooms")
                say("19:05 synced: Li has \(atMall) points at the mall and \(atHotel) at the hotel\n")
                return (li, chen)
            }
        }
    }

    func evening(port: Int, li: String, chen: String, park: Edge) async throws {
        at("2026-11-28T20:00")
        say("20:00 the hotel's and the mall's links to the centre go down")
        try await withEdge("hotel-01", merchants: ["hotel-rooms"], gatewayPort: port) { hotel in
            var redeem = Coalition_Edge_V1_RedeemRequest()
            redeem.requestID = "R-5001"
            redeem.memberID = li
            redeem.billAmountMinor = 500_000
            redeem.points = 1_500
            let paid = try await hotel.points.redeem(redeem, metadata: hotel.auth("hotel-rooms"))
            say(
                "20:15 offline, the hotel lets Li pay ¥\(paid.valueMinor / 100) of a room bill with \(paid.points) points (\(paid.authorization)); the hotel thinks \(paid.balanceAfterPoints) are left"
            )
        }
        try await withEdge("mall-01", merchants: ["mall-fashion"], gatewayPort: port) { mall in
            var redeem = Coalition_Edge_V1_RedeemRequest()
            redeem.requestID = "F-6001"
            redeem.memberID = li
            redeem.billAmountMinor = 400_000
            redeem.points = 1_500
            let paid = try await mall.points.redeem(redeem, metadata: mall.auth("mall-fashion"))
            say(
                "20:40 offline too, the mall lets Li pay ¥\(paid.valueMinor / 100) with \(paid.points) points; together the two sites spent more than Li has"
            )
        }
        at("2026-11-28T21:00")
        var quote = Coalition_Edge_V1_ParkingQuoteRequest()
        quote.ticketID = "P-77"
        quote.memberID = chen
        quote.entryAtMs = clock.now().milliseconds - 3 * Timestamp.hour
        quote.exitAtMs = clock.now().milliseconds
        let price = try await park.parking.quote(quote, metadata: park.auth("park-operator"))
        var pay = Coalition_Edge_V1_ParkingPayRequest()
        pay.requestID = "EXIT-1"
        pay.ticketID = quote.ticketID
        pay.memberID = chen
        pay.entryAtMs = quote.entryAtMs
        pay.exitAtMs = quote.exitAtMs
        pay.points = min(price.pointsForFullFee, price.balancePoints)
        let exit = try await park.parking.pay(pay, metadata: park.auth("park-operator"))
        say(
            "21:00 Chen leaves the car park after 3 h: fee ¥\(exit.feeMinor / 100); \(exit.points) points pay ¥\(exit.pointsValueMinor / 100), ¥\(exit.amountDueMinor / 100) left to pay, barrier \(exit.openBarrier ? "opens" : "waits for payment")"
        )
        quote.ticketID = "P-78"
        quote.memberID = ""
        quote.entryAtMs = clock.now().milliseconds - 10 * Timestamp.minute
        let free = try await park.parking.quote(quote, metadata: park.auth("park-operator"))
        say("21:05 a visitor leaves after 10 minutes: fee ¥\(free.feeMinor / 100) (within the \(15)-minute grace)\n")
    }

    func reconnect(port: Int, gateway: GatewayNode, li: String, park: Edge) async throws {
        at("2026-11-28T22:00")
        say("22:00 the links are back; the edges push what they did offline")
        try await withEdge("mall-01", merchants: ["mall-fashion"], gatewayPort: port) { mall in
            try await waitUntil("the mall synced") { try await mall.synced }
            try await withEdge("hotel-01", merchants: ["hotel-rooms"], gatewayPort: port) { hotel in
                try await waitUntil("the hotel synced") { try await hotel.synced }
                try await waitUntil("every edge shows Li at 0") {
                    let values = [
                        try await mall.balance(li, as: "mall-fashion"), try await hotel.balance(li, as: "hotel-rooms"),
                        try await park.balance(li, as: "park-operator"),
                    ]
                    return values.allSatisfy { $0 == 0 }
                }
                say("22:01 conflicts found by the gateway:")
                for conflict in try await gateway.ledger.conflicts(site: nil, kind: nil, limit: 1_000) {
                    say("  - \(conflict.kind) at \(conflict.site ?? "-"): \(conflict.resolution)")
                }
                say("22:02 Li's balance is 0 at the mall, the hotel and the car park, as at the gateway\n")
            }
        }
    }

    func settle(_ gateway: GatewayNode) async throws {
        at("2026-11-29T00:30")
        let closed = try await gateway.ledger.closeSettlement(period: CivilDate(parsing: "2026-11-28")!, by: "demo")
        try closed.json.write(to: URL(fileURLWithPath: path("settlement-2026-11-28.json")))
        try closed.csv.write(to: URL(fileURLWithPath: path("settlement-2026-11-28.csv")))
        say(
            "00:30 settlement of 2026-11-28 closed (content hash \(closed.contentHash.prefix(16))…); merchants with activity, amounts in fen:"
        )
        let rows = String(decoding: closed.csv, as: UTF8.self).split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        // Columns by their header's names, so the table follows the file whatever its order.
        let header = rows.first ?? []
        func column(_ row: [String], _ name: String) -> String {
            header.firstIndex(of: name).flatMap { $0 < row.count ? row[$0] : nil } ?? ""
        }
        let shown = [
            ("points_issued", 8), ("points_redeemed", 10), ("parking_points", 9), ("offline_risk_points", 6),
            ("payable_minor", 9), ("receivable_minor", 12), ("risk_charge_minor", 13), ("net_minor", 9),
        ]
        say("  party              issued  redeemed  parking  risk  payable  receivable  risk-charge      net")
        var sum: Int64 = 0
        for row in rows.dropFirst() {
            let party = column(row, "party")
            let values = (shown.map(\.0) + ["points_reversed"]).map { Int64(column(row, $0)) ?? 0 }
            if party != "platform", values.allSatisfy({ $0 == 0 }) { continue }
            sum += Int64(column(row, "net_minor")) ?? 0
            let cells = shown.map { name, width in
                let value = column(row, name)
                return String(repeating: " ", count: max(0, width - value.count)) + value
            }
            say("  \(party.padding(toLength: 17, withPad: " ", startingAt: 0))\(cells.joined())")
        }
        say(
            "  merchants' nets + platform = \(sum) (always 0); statements written to \(path("settlement-2026-11-28.csv")) and .json"
        )
    }
}

extension RunningEdge {
    /// Every transaction of the edge is acknowledged by the gateway.
    var synced: Bool {
        get async throws { try await node.ledger.unacknowledgedCount() == 0 }
    }
}
