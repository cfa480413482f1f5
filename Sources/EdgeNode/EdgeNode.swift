import Core
import CoreMetrics
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import Logging
import NodeSupport
import ServiceLifecycle
import Synchronization
import Wire

/// An edge node: the property's own server for POS terminals and parking barriers.
///
/// `init` opens and migrates the database and loads the program, so a misconfigured node fails
/// before it listens. `run()` serves `coalition.edge.v1.Points`, `Parking` and `grpc.health.v1.Health`
/// and the group-commit writer until a graceful shutdown (SIGTERM through `ServiceGroup`), which
/// stops accepting calls, finishes the ones in flight, writes what they queued, then returns.
package final class EdgeNode: Service, Sendable {
    package let configuration: EdgeConfiguration
    package let ledger: EdgeLedger
    package let terminals: TerminalRegistry
    /// The link to the gateway, when configured.
    package let sync: SyncClient?
    private let transport: HTTP2ServerTransport.Posix
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let health: HealthService
    private let logger: Logger
    private let sleeper: any Clock<Duration>
    /// Set when a graceful shutdown begins: a new edge waiting for its first contact stops waiting.
    private let stopping = Mutex(false)
    /// This node's series (docs/operations.md, "Metrics"), served at `/metrics` when configured.
    package let metrics = NodeMetrics()
    /// The `/metrics` listener, when `configuration.metrics` is set.
    package let metricsEndpoint: HTTPEndpoint<BasicRequestContext>?

    /// `extraServices` are served beside the POS API (the benchmark's baseline service).
    package init(
        configuration: EdgeConfiguration, clock: any WallClock, sleeper: any Clock<Duration> = ContinuousClock(),
        logger: Logger, extraServices: [any RegistrableRPCService] = []
    ) throws {
        var logger = logger
        logger[metadataKey: "site.id"] = "\(configuration.siteID)"
        self.configuration = configuration
        self.logger = logger
        self.sleeper = sleeper
        for (path, what) in [
            (configuration.gateway?.privateKeyPath, "the site's private key (gateway.private_key)"),
            (configuration.tls?.privateKeyPath, "the POS port's private key (tls.private_key)"),
        ] {
            if let path { try PrivateFiles.requirePrivate(path, what: what) }
        }
        let database = try EdgeDatabase.open(
            path: configuration.databasePath, site: configuration.siteID, limits: configuration.limits, now: clock.now()
        )
        let program = try Self.loadProgram(configuration, database: database)
        guard program.program.site(configuration.siteID) != nil else {
            throw ConfigurationError("site '\(configuration.siteID)' is not in program version \(program.version)")
        }
        let programs = ProgramHolder(program)
        sync = try configuration.gateway.map { link in
            try SyncClient(
                link: link, site: configuration.siteID, database: database, clock: clock, sleeper: sleeper,
                logger: logger, program: { programs.program }, activate: { programs.program = $0 })
        }
        ledger = EdgeLedger(
            site: configuration.siteID, database: database, programs: programs, clock: clock,
            phoneHashKey: configuration.phoneHashKey, limits: configuration.limits,
            authorizer: sync?.authorizer ?? .noGateway, logger: logger, metrics: metrics.factory)
        terminals = TerminalRegistry(
            pool: database.pool, clock: clock, cacheMilliseconds: configuration.limits.terminalCacheMilliseconds,
            tokenFailures: configuration.limits.tokenFailures, logger: logger)
        health = HealthService(
            services: ["coalition.edge.v1.Points", "coalition.edge.v1.Parking", "coalition.edge.v1.Vouchers"])
        // Bodies up to 4× the limit are decoded so the services can answer RESOURCE_EXHAUSTED;
        // beyond that the transport resets the stream without reading it.
        transport = try GuardedListener.transport(
            name: "edge", host: configuration.listenHost, port: configuration.listenPort, tls: configuration.tls,
            requestBytesMax: configuration.limits.requestBytesMax * 4, limits: configuration.limits.connections,
            logger: logger)
        server = GRPCServer(
            transport: transport,
            services: [
                PointsService(
                    ledger: ledger, terminals: terminals, historyPageSizeMax: configuration.limits.historyPageSizeMax,
                    requestBytesMax: configuration.limits.requestBytesMax),
                ParkingService(
                    ledger: ledger, terminals: terminals, requestBytesMax: configuration.limits.requestBytesMax),
                VouchersService(
                    ledger: ledger, terminals: terminals, requestBytesMax: configuration.limits.requestBytesMax),
                health,
            ] + extraServices,
            interceptors: [RPCMetricsInterceptor(factory: metrics.factory)])
        if let settings = configuration.metrics {
            metricsEndpoint = MetricsEndpoint.make(settings: settings, metrics: metrics, logger: logger)
        } else {
            metricsEndpoint = nil
        }
        addMetricCollectors()
    }

    /// The state-read series, set at each scrape.
    private func addMetricCollectors() {
        let (ledger, metrics, path) = (self.ledger, self.metrics, configuration.databasePath)
        let unacknowledged = metrics.gauge("coalition_edge_outbox_unacknowledged_transactions")
        let oldestAge = metrics.gauge("coalition_edge_outbox_oldest_unacknowledged_age_seconds")
        let lastContact = metrics.gauge("coalition_edge_gateway_last_contact_timestamp_seconds")
        let writeQueue = metrics.gauge("coalition_group_commit_queue_jobs", [("writer", "edge")])
        let databaseBytes = metrics.gauge("coalition_database_size_bytes")
        metrics.addCollector {
            databaseBytes.record(DatabaseFileSize.bytes(of: path))
            writeQueue.record(ledger.committer.pending)
            guard let figures = try? await ledger.outboxFigures() else { return }
            let now = ledger.clock.now().milliseconds
            unacknowledged.record(figures.unacknowledged)
            oldestAge.record(
                figures.oldestUnacknowledgedAtMilliseconds.map { Double(max(0, now - $0)) / 1_000 } ?? 0)
            if let contact = figures.lastGatewayContactMilliseconds { lastContact.record(Double(contact) / 1_000) }
        }
    }

    /// Storage housekeeping every `limits.storage_check_ms` until cancelled
    /// (`EdgeLedger.keepStorage`).
    private func keepStorage() async {
        while !Task.isCancelled {
            do {
                try await sleeper.sleep(for: .milliseconds(configuration.limits.storageCheckMilliseconds))
            } catch {
                return
            }
            await ledger.keepStorage(logger: logger)
        }
    }

    /// Gives back what ended allowances have left, every `limits.allowance_check_ms`, until
    /// cancelled (`EdgeLedger.returnEndedAllowances`).
    private func returnAllowances() async {
        while !Task.isCancelled {
            do {
                try await sleeper.sleep(for: .milliseconds(configuration.limits.allowanceCheckMilliseconds))
            } catch {
                return
            }
            do {
                let returned = try await ledger.returnEndedAllowances()
                if returned > 0 { logger.info("allowances given back", metadata: ["count": "\(returned)"]) }
            } catch {
                logger.warning("could not give back ended allowances", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The port the POS API listens on, once bound.
    package var listeningPort: Int {
        get async throws { try await NodeServer.port(of: transport, name: "edge") }
    }

    package func run() async throws {
        let committer = ledger.committer
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await committer.run() }
                group.addTask { await self.keepStorage() }
                group.addTask { await self.returnAllowances() }
                if let metricsEndpoint { group.addTask { try await metricsEndpoint.run() } }
                if let sync {
                    group.addTask {
                        do {
                            try await sync.runConnections()
                        } catch {
                            // Stopping before the connections started is not a failure of the node.
                            self.logger.debug("gateway connections ended", metadata: ["error": "\(error)"])
                        }
                    }
                    guard try await recoverBeforeServing(sync) else {
                        // Asked to stop while waiting for the first contact: nothing was served.
                        committer.close()
                        sync.shutDown()
                        group.cancelAll()
                        try await group.waitForAll()
                        return
                    }
                    group.addTask { await sync.runLoops() }
                }
                group.addTask {
                    let port = try await self.listeningPort
                    try NodeServer.announce(port: port, to: self.configuration.portFile)
                    self.logger.info(
                        "edge node listening",
                        metadata: [
                            "address": "\(self.configuration.listenHost):\(port)",
                            "program.version": "\(self.ledger.program.version)",
                        ])
                }
                // Serve until a graceful shutdown has answered every call in flight; then the
                // writer drains what they queued and the sync loops stop.
                try await server.serve()
                committer.close()
                sync?.shutDown()
                group.cancelAll()
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.logger.info("edge node shutting down")
            self.beginGracefulShutdown()
        }
        logger.info(
            "edge node stopped",
            metadata: [
                "writes.batches": "\(committer.statistics.batches)", "writes.jobs": "\(committer.statistics.jobs)",
            ])
    }

    /// A database that never reached the gateway must first learn whether the gateway holds
    /// transactions of this site (a lost file) and take the gateway's program and replica: it
    /// waits for the gateway before serving. Any other database tries once and goes on offline if
    /// the gateway is unreachable. Returns false when a graceful shutdown began while waiting.
    private func recoverBeforeServing(_ sync: SyncClient) async throws -> Bool {
        let neverContacted = try await ledger.database.pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT last_gateway_contact_ms FROM sync_state WHERE id = 1") == nil
        }
        var wait = 200
        while true {
            do {
                try await sync.recover()
                // Adopt the gateway's program and replica before minting anything.
                while try await sync.pullRound() {}
                return true
            } catch {
                guard neverContacted else {
                    logger.warning("gateway unreachable at start; serving offline", metadata: ["error": "\(error)"])
                    return true
                }
                if stopping.withLock({ $0 }) { return false }
                logger.warning(
                    "a new edge waits for the gateway before serving",
                    metadata: ["error": "\(error)", "retry.ms": "\(wait)"])
                // In slices, so that a shutdown is noticed within 100 ms rather than after the wait.
                var waited = 0
                while waited < wait {
                    if stopping.withLock({ $0 }) { return false }
                    let slice = min(100, wait - waited)
                    try await sync.sleeper.sleep(for: .milliseconds(slice))
                    waited += slice
                }
                wait = min(30_000, wait * 2)
            }
        }
    }

    /// Stops accepting calls and returns `run()` once the calls in flight are answered.
    package func beginGracefulShutdown() {
        stopping.withLock { $0 = true }
        health.shutDown()
        server.beginGracefulShutdown()
    }

    /// The newest program the gateway published to this edge, else the configured program file.
    package static func loadProgram(_ configuration: EdgeConfiguration, database: EdgeDatabase) throws -> ActiveProgram
    {
        let stored = try database.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT version, document FROM program_versions ORDER BY version DESC LIMIT 1")
        }
        if let stored {
            let document: Data = stored["document"]
            return ActiveProgram(
                version: stored["version"], program: try parse(Array(document), source: "stored program"))
        }
        guard let file = configuration.programFile else {
            throw ConfigurationError("no program: set program_file, or let the gateway publish one")
        }
        let bytes: Data
        do {
            bytes = try ReadableFile.contents(of: file)
        } catch {
            throw ConfigurationError("program_file: \(error)")
        }
        return ActiveProgram(version: 0, program: try parse(Array(bytes), source: file))
    }

    private static func parse(_ bytes: [UInt8], source: String) throws -> Program {
        do {
            return try ProgramDocumentParser.load(bytes)
        } catch {
            throw ConfigurationError("\(source) is not a valid program:\n\(error)")
        }
    }
}
