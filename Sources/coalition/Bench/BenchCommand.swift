import ArgumentParser
import Benchmarks
import Foundation
import Gateway

/// `coalition bench …`: the benchmarks of docs/benchmarks.md. Each prints its figure, the
/// baseline measured in the same run, the ratio and the target. Build with `-c release`.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the hot paths against baselines taken in the same run (build with -c release).",
        subcommands: [
            EdgeEarn.self, ParkingExit.self, GatewayIngest.self, CatchUp.self, ReplicaSize.self, FlashSale.self,
            VoucherCheck.self,
        ])

    /// `--store postgres://…` as settings, the password from the environment.
    static func postgres(_ text: String) throws -> PostgresSettings {
        switch PostgresSettings.parse(text) {
        case .success(var settings):
            settings.password = ProcessInfo.processInfo.environment["COALITION_DATABASE_PASSWORD"]
            return settings
        case .failure(let problem): throw ValidationError("--store: \(problem)")
        }
    }

    struct Common: ParsableArguments {
        @Option(help: "The program file (default: examples/program.yaml).") var program = "examples/program.yaml"
        @Option(help: "Seconds per measured phase.") var seconds: Double = 10

        var duration: Duration { .milliseconds(Int64(max(0.1, seconds) * 1000)) }
    }

    struct EdgeEarn: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "edge-earn",
            abstract: "Earn RPCs from concurrent terminals over TLS to a durable edge, against an empty RPC.")
        @OptionGroup var common: Common
        @Option(help: "Concurrent terminals (closed loop).") var terminals = 32
        @Option(
            help:
                "TLS connections the terminals share (default: one per terminal, as tills are separate devices; 1 multiplexes them all on one)."
        )
        var connections: Int?
        @Option(help: "Earns per second offered for the latency run.") var rate: Double = 200
        @Option(help: "Members enrolled first.") var members = 1_000

        func validate() throws {
            if let connections, connections < 1 { throw ValidationError("--connections must be at least 1") }
        }

        func run() async throws {
            try await EdgeBenches.edgeEarn(
                program: common.program, callers: terminals, connections: connections ?? terminals,
                duration: common.duration, rate: rate, members: members)
        }
    }

    struct FlashSale: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "flash-sale",
            abstract:
                "Concurrent orders for a few units over mutual TLS to the gateway's member API, against empty RPCs; checks exactly the stock is sold."
        )
        @Option(help: "The program file (default: examples/program.yaml, whose cinema-flash item is sold).")
        var program = "examples/program.yaml"
        @Option(help: "Orders started at once.") var orders = 10_000
        @Option(help: "Units for sale.") var stock = 100
        @Option(help: "Callers, each on its own mutual-TLS connection.") var callers = 64
        @Option(help: "Members enrolled first (each orders orders/members times; one unit per member).")
        var members = 2_000

        func run() async throws {
            try await MallBenches.flashSale(
                program: program, orders: orders, stock: stock, callers: callers, members: members)
        }
    }

    struct ParkingExit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "parking-exit",
            abstract: "Quote + pay at a barrier with the gateway unreachable, against two empty RPCs.")
        @OptionGroup var common: Common
        @Option(help: "Exits per second offered.") var rate: Double = 50
        @Option(help: "Members enrolled first.") var members = 200
        @Flag(help: "Every member entered with an allowance; every exit pays in full from it.") var allowances = false

        func run() async throws {
            try await EdgeBenches.parkingExit(
                program: common.program, duration: common.duration, rate: rate, members: members,
                allowances: allowances)
        }
    }

    struct VoucherCheck: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "voucher-check",
            abstract: "Check + redeem of a voucher at a till with the gateway unreachable, against two empty RPCs.")
        @OptionGroup var common: Common
        @Option(help: "Vouchers per second offered.") var rate: Double = 50

        func run() async throws {
            try await EdgeBenches.voucherCheck(program: common.program, duration: common.duration, rate: rate)
        }
    }

    struct GatewayIngest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gateway-ingest",
            abstract: "Sites pushing batches concurrently, against plain SQLite inserts of the same rows.")
        @OptionGroup var common: Common
        @Option(help: "Sites pushing at once (1 to 4).") var sites = 4
        @Option(help: "Transactions in all.") var transactions = 200_000
        @Option(help: "Transactions per push.") var batch = 500
        @Option(
            help: """
                The ledger: sqlite (default), or postgres://USER@HOST:PORT/DB (a server where USER may create \
                databases; each run uses a new one, dropped afterwards; password from COALITION_DATABASE_PASSWORD).
                """)
        var store = "sqlite"
        @Option(help: "Gateways sharing a PostgreSQL ledger (1 to 8); the run is also made with one, to compare.")
        var gateways = 1

        func run() async throws {
            guard (1...4).contains(sites) else { throw ValidationError("--sites: 1 to 4") }
            guard (1...8).contains(gateways) else { throw ValidationError("--gateways: 1 to 8") }
            guard store != "sqlite" else {
                guard gateways == 1 else { throw ValidationError("--gateways: only with --store postgres://…") }
                try await GatewayBenches.gatewayIngest(
                    program: common.program, sites: sites, transactions: max(sites, transactions), batch: max(1, batch))
                return
            }
            try await GatewayBenches.gatewayIngestPostgres(
                program: common.program, sites: sites, transactions: max(sites, transactions), batch: max(1, batch),
                server: try BenchCommand.postgres(store), gateways: gateways)
        }
    }

    struct CatchUp: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "catch-up",
            abstract: "One site with a large offline backlog reconnects: time until posted and the replica is current.")
        @OptionGroup var common: Common
        @Option(help: "Transactions queued offline.") var transactions = 1_000_000
        @Option(help: "Members they are spread over.") var members = 10_000
        @Option(
            help: """
                The ledger: sqlite (default), or postgres://USER@HOST:PORT/DB (as for gateway-ingest: a new \
                database per run, dropped afterwards).
                """)
        var store = "sqlite"

        func run() async throws {
            guard store != "sqlite" else {
                try await GatewayBenches.catchUp(
                    program: common.program, transactions: max(1, transactions), members: max(1, members))
                return
            }
            try await GatewayBenches.catchUpPostgres(
                program: common.program, transactions: max(1, transactions), members: max(1, members),
                server: try BenchCommand.postgres(store))
        }
    }

    struct ReplicaSize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replica-size", abstract: "Members pulled to a fresh edge: time and database size.")
        @OptionGroup var common: Common
        @Option(help: "Members at the gateway.") var members = 1_000_000

        func run() async throws {
            try await GatewayBenches.replicaSize(program: common.program, members: max(1, members))
        }
    }
}
