import Core
import CoreMetrics
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import Logging
import Metrics
import NodeSupport
import ServiceLifecycle
import Synchronization
import Wire

/// The gateway: the one true ledger, serving `coalition.sync.v1.Sync` (and health) to edges over
/// mutual TLS until a graceful shutdown.
package final class GatewayNode: Service, Sendable {
    package let configuration: GatewayConfiguration
    /// The ledger the services post to: SQLite (one process) or PostgreSQL (shared by gateways).
    package let ledger: any LedgerStore
    private let sqlite: SQLiteLedgerStore?
    private let transport: HTTP2ServerTransport.Posix
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let health: HealthService
    private let logger: Logger
    /// Calls refused for who the caller is, logged, counted and kept for `coalition admin audit`.
    package let refusals: RefusalRecorder
    private let maintenanceStopped = Mutex(false)
    /// What the maintenance loop waits with (a test may pass a clock of its own).
    private let sleeper: any Clock<Duration>
    /// This node's series (docs/operations.md, "Metrics"), served at `/metrics` when configured.
    package let metrics: NodeMetrics
    /// The `/metrics` listener, when `configuration.metrics` is set.
    package let metricsEndpoint: HTTPEndpoint<BasicRequestContext>?
    /// The web console's listener, when `configuration.console` is set.
    package let consoleEndpoint: HTTPEndpoint<BasicRequestContext>?
    /// The console's sign-ins, when it is served.
    package let consoleLink: ConsoleLink?

    /// The SQLite ledger, for tools and tests that read its file (a gateway on PostgreSQL has none).
    package var store: SQLiteLedgerStore {
        guard let sqlite else { preconditionFailure("this gateway's ledger is on PostgreSQL, not SQLite") }
        return sqlite
    }

    /// Opens and migrates a SQLite ledger (`database_path`), publishes the configured program if
    /// the ledger has none, and prepares the mTLS server (nothing listens until `run()`). A config
    /// naming PostgreSQL needs `GatewayNode.with`, which runs the database's connection pool.
    package convenience init(
        configuration: GatewayConfiguration, clock: any WallClock, sleeper: any Clock<Duration> = ContinuousClock(),
        logger: Logger, extraServices: [any RegistrableRPCService] = []
    ) async throws {
        if let postgres = configuration.postgres {
            throw ConfigurationError("database: \(postgres) — open it with GatewayNode.with, which runs its pool")
        }
        try PrivateFiles.requirePrivate(configuration.privateKeyPath, what: "the gateway's private key (private_key)")
        let database = try GatewayDatabase.open(
            path: configuration.databasePath, busyTimeoutMilliseconds: configuration.limits.busyTimeoutMilliseconds)
        let metrics = NodeMetrics()
        let store = try SQLiteLedgerStore(
            database: database, clock: clock, limits: configuration.limits, metrics: metrics.factory)
        try await self.init(
            configuration: configuration, ledger: store, sqlite: store, metrics: metrics, sleeper: sleeper,
            logger: logger, extraServices: extraServices)
    }

    /// Runs `body` with a gateway on the configured ledger: SQLite, or PostgreSQL with its pool
    /// running and its migrations applied (under the migrations lock: gateways starting together
    /// migrate once) for this network's CA. The pool stops when `body` returns. `extraServices` are
    /// served beside the gateway's own (the benchmarks' baseline service).
    package static func with<Result: Sendable>(
        configuration: GatewayConfiguration, clock: any WallClock, sleeper: any Clock<Duration> = ContinuousClock(),
        logger: Logger, extraServices: [any RegistrableRPCService] = [], _ body: (GatewayNode) async throws -> Result
    ) async throws -> Result {
        guard let postgres = configuration.postgres else {
            return try await body(
                try await GatewayNode(
                    configuration: configuration, clock: clock, sleeper: sleeper, logger: logger,
                    extraServices: extraServices))
        }
        try PrivateFiles.requirePrivate(configuration.privateKeyPath, what: "the gateway's private key (private_key)")
        let fingerprint = try CertificateFingerprint.sha256(ofPEMFile: configuration.caCertificatePath)
        return try await PostgresLedgerDatabase.with(postgres, logger: logger) { database in
            let applied = try await database.migrate(caFingerprint: fingerprint, now: clock.now())
            if !applied.isEmpty {
                logger.notice("ledger migrated", metadata: ["migrations": "\(applied.joined(separator: ", "))"])
            }
            let store = try await PostgresLedgerStore(
                database: database, clock: clock, limits: configuration.limits, logger: logger)
            let node = try await GatewayNode(
                configuration: configuration, ledger: store, sqlite: nil, metrics: NodeMetrics(), sleeper: sleeper,
                logger: logger, extraServices: extraServices)
            return try await body(node)
        }
    }

    private init(
        configuration: GatewayConfiguration, ledger store: any LedgerStore, sqlite: SQLiteLedgerStore?,
        metrics: NodeMetrics, sleeper: any Clock<Duration>, logger: Logger,
        extraServices: [any RegistrableRPCService]
    ) async throws {
        self.configuration = configuration
        self.metrics = metrics
        self.sleeper = sleeper
        self.logger = logger
        self.ledger = store
        self.sqlite = sqlite
        refusals = RefusalRecorder(
            logger: logger, now: { [store] in store.clockNow },
            perMinuteMax: configuration.limits.refusedCallsPerMinuteMax,
            write: { [store] call in try await store.recordRefusedCall(call) })
        if let file = configuration.programFile {
            let bytes: Data
            do {
                bytes = try ReadableFile.contents(of: file)
            } catch {
                throw ConfigurationError("program_file: \(error)")
            }
            // The file is only the first version: once the ledger has a program, its published
            // history wins (an operator's later publish must survive a restart).
            if let latest = store.programs.latest {
                let sameBytes = (try? ProgramDocumentParser.load(Array(bytes))) == latest.program
                if !sameBytes {
                    logger.notice(
                        "program_file differs from the ledger's latest program, which stays in force; publish the file with `coalition admin program publish` to use it",
                        metadata: ["program_file": "\(file)", "program.version": "\(latest.version)"])
                }
            } else {
                do {
                    _ = try await store.publish(document: Array(bytes), effectiveAt: nil, by: "program_file")
                } catch let errors as ProgramErrors {
                    throw ConfigurationError("\(file) is not a valid program:\n\(errors)")
                }
            }
        }
        guard store.programs.latest != nil else {
            throw ConfigurationError("no program: set program_file (or publish one) before serving")
        }
        if let key = configuration.voucherKey {
            do {
                try await store.registerVoucherKey(id: key.id, publicKey: key.publicKey)
            } catch let error as VoucherKeyError {
                throw ConfigurationError("voucher_key_file: \(error)")
            }
        }
        for path in [configuration.caCertificatePath, configuration.certificatePath, configuration.privateKeyPath]
        where !FileManager.default.isReadableFile(atPath: path) {
            throw ConfigurationError("cannot read \(path)")
        }
        health = HealthService(services: [
            "coalition.sync.v1.Sync", "coalition.ops.v1.Ops", "coalition.member.v1.Member",
        ])
        transport = try GuardedListener.transport(
            name: "gateway", host: configuration.listenHost, port: configuration.listenPort,
            tls: ServerTLSFiles(
                certificatePath: configuration.certificatePath, privateKeyPath: configuration.privateKeyPath,
                clientCAPath: configuration.caCertificatePath),
            requestBytesMax: configuration.limits.requestBytesMax, limits: configuration.limits.connections,
            logger: logger,
            onHandshakeFailure: { [refusals] address, error in
                // A NIO callback: the record (a ledger write) runs on its own.
                Task {
                    await refusals.record(
                        service: "tls", method: "", peer: "unverified", address: address, kind: "TLS_HANDSHAKE",
                        reason: error)
                }
            })
        let (services, consoleEndpoint, consoleLink) = Self.services(
            store, configuration: configuration, logger: logger, refusals: refusals, health: health)
        self.consoleEndpoint = consoleEndpoint
        self.consoleLink = consoleLink
        server = GRPCServer(
            transport: transport, services: services + extraServices,
            interceptors: [RPCMetricsInterceptor(factory: metrics.factory)])
        if let settings = configuration.metrics {
            metricsEndpoint = MetricsEndpoint.make(settings: settings, metrics: metrics, logger: logger)
        } else {
            metricsEndpoint = nil
        }
        GatewayMetrics.addCollectors(to: metrics, ledger: store)
    }

    /// The services over a ledger of any kind (the existential opened for the generic services),
    /// and the console over the same Ops service when configured.
    private static func services<Store: LedgerStore>(
        _ store: Store, configuration: GatewayConfiguration, logger: Logger, refusals: RefusalRecorder,
        health: HealthService
    ) -> ([any RegistrableRPCService], HTTPEndpoint<BasicRequestContext>?, ConsoleLink?) {
        let console = configuration.console.map { settings in
            (settings, ConsoleSessions(settings: settings), BoundPort(name: "console"))
        }
        let link = console.map { settings, sessions, port in
            ConsoleLink(sessions: sessions) { settings.baseURL(boundPort: try await port.value) }
        }
        let ops = OpsService(
            store: store, phoneHashKey: configuration.phoneHashKey, logger: logger, refusals: refusals, console: link)
        let endpoint = console.map { settings, sessions, port in
            Console(ops: ops, store: store, sessions: sessions, settings: settings, logger: logger).endpoint(port: port)
        }
        let services: [any RegistrableRPCService] = [
            SyncService(store: store, limits: configuration.limits, logger: logger, refusals: refusals),
            ops,
            MemberService(
                store: store, phoneHashKey: configuration.phoneHashKey, voucherKey: configuration.voucherKey,
                limits: configuration.limits, logger: logger, refusals: refusals),
            health,
        ]
        return (services, endpoint, link)
    }

    /// The bound port, once listening.
    package var listeningPort: Int {
        get async throws { try await NodeServer.port(of: transport, name: "gateway") }
    }

    package func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await self.runMaintenance() }
                if let metricsEndpoint { group.addTask { try await metricsEndpoint.run() } }
                if let consoleEndpoint { group.addTask { try await consoleEndpoint.run() } }
                group.addTask {
                    let port = try await self.listeningPort
                    try NodeServer.announce(port: port, to: self.configuration.portFile)
                    self.logger.info(
                        "gateway listening",
                        metadata: [
                            "address": "\(self.configuration.listenHost):\(port)",
                            "program.version": "\(self.ledger.programs.latest?.version ?? 0)",
                        ])
                }
                // Serve until a graceful shutdown has answered every call in flight; then the
                // maintenance loop and the HTTP listeners stop.
                defer {
                    self.stopMaintenance()
                    group.cancelAll()
                }
                try await self.server.serve()
            }
        } onGracefulShutdown: {
            self.beginGracefulShutdown()
        }
        logger.info("gateway stopped")
    }

    /// What signs the vouchers the daily job issues (nil without a voucher key).
    private var voucherIssuer: VoucherIssuer? {
        configuration.voucherKey.map { key in VoucherIssuer(keyID: key.id) { try key.sign($0) } }
    }

    /// At each new day of the program's time zone: expire the lots that expired by the end of the
    /// day before, review the tiers due, commit the lotteries' seeds for today and tomorrow and
    /// reveal those of days that have ended, issue the tier benefits due. Stops with the server.
    private func runMaintenance() async {
        var lastDay: CivilDate?
        while !maintenanceStopped.withLock({ $0 }) {
            let store = ledger
            let now = store.clockNow
            if let zone = store.programs.active(at: now)?.program.timeZone {
                let today = zone.date(of: now)
                if lastDay != today {
                    do {
                        let jobs = JobRecorder(factory: metrics.factory)
                        let run = try await jobs.run("expiry") {
                            try await store.runExpiry(asOfEndOf: today.adding(days: -1))
                        }
                        let reviewed = try await jobs.run("tier_review") { try await store.reviewTiers(on: today) }
                        let seeds = try await jobs.run("lottery_seeds") { try await store.keepLotterySeeds() }
                        let benefits = try await jobs.run("tier_benefits") {
                            try await store.grantTierBenefits(vouchers: voucherIssuer)
                        }
                        let homeSites = try await jobs.run("home_site_allowances") {
                            guard let program = store.programs.active(at: now)?.program else { return 0 }
                            return try await store.grantHomeSiteAllowances(
                                program: program, now: now, limit: configuration.limits.homeSiteAllowancesMax)
                        }
                        logger.info(
                            "daily jobs",
                            metadata: [
                                "expiry.day": "\(run.day)", "expiry.points": "\(run.points)",
                                "tiers.changed": "\(reviewed)", "lottery.seeds.committed": "\(seeds.committed)",
                                "lottery.seeds.revealed": "\(seeds.revealed)", "benefits.vouchers": "\(benefits)",
                                "allowances.home_site": "\(homeSites)",
                            ])
                        lastDay = today
                    } catch {
                        logger.error("daily jobs failed; retrying", metadata: ["error": "\(error)"])
                    }
                }
            }
            // What leases (and their margins) have ended is taken back, every check.
            do {
                let reclaimed = try await store.reclaimAllowances(limit: configuration.limits.allowanceReclaimsMax)
                if reclaimed > 0 { logger.info("allowances reclaimed", metadata: ["count": "\(reclaimed)"]) }
            } catch {
                logger.warning("could not reclaim allowances", metadata: ["error": "\(error)"])
            }
            // Sleep in short steps so a shutdown is not held up.
            var slept: Int64 = 0
            while slept < configuration.limits.maintenanceCheckMilliseconds, !maintenanceStopped.withLock({ $0 }) {
                do {
                    try await sleeper.sleep(for: .milliseconds(200))
                } catch {
                    return  // cancelled: the node is stopping
                }
                slept += 200
            }
        }
    }

    private func stopMaintenance() {
        maintenanceStopped.withLock { $0 = true }
    }

    /// Stops accepting calls; `run()` returns once the calls in flight are answered.
    package func beginGracefulShutdown() {
        health.shutDown()
        server.beginGracefulShutdown()
    }
}
