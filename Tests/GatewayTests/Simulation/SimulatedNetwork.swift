import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import Logging
import NodeSupport
import SwiftProtobuf
import Synchronization
import TestSupport
import Wire

// The parts of the deterministic simulation (docs/reliability.md): the real edge and gateway code
// on real SQLite files, linked in process instead of over TLS, with every fault chosen by the seed.

/// An edge's clock: the simulation's virtual time plus the edge's own skew.
final class SkewedClock: WallClock {
    private let base: ManualWallClock
    private let skew = Mutex<Int64>(0)

    init(base: ManualWallClock) { self.base = base }

    func now() -> Timestamp { base.now().adding(milliseconds: skew.withLock { $0 }) }
    func set(skewMilliseconds: Int64) { skew.withLock { $0 = skewMilliseconds } }
}

/// What the link does to the next sync call.
enum LinkFault: Sendable, Hashable {
    /// The request never arrives.
    case lostRequest
    /// The gateway applies the call; its answer is lost (a crash between commit and answer).
    case lostAnswer
    /// The request arrives twice.
    case duplicate
    /// An old push (the `n`th most recent) arrives again before this one.
    case replayOld(Int)
}

/// The gateway of the simulation: its store on one SQLite file or a PostgreSQL database,
/// restartable.
final class SimulatedGateway: Sendable {
    /// Where the ledger lives.
    enum Backing: Sendable {
        case sqlite(path: String)
        case postgres(PostgresLedgerDatabase)
    }

    let backing: Backing
    let clock: ManualWallClock
    let limits: GatewayLimits
    /// The seeds of lottery periods: the run's own, so a seed's draws come out the same every run.
    let lotterySeeds: @Sendable () -> [UInt8]
    private let state: Mutex<(any LedgerStore)?>
    private static let quiet = Logger(label: "simulation", factory: { _ in SwiftLogNoOpLogHandler() })

    init(
        backing: Backing, clock: ManualWallClock, limits: GatewayLimits,
        lotterySeeds: @escaping @Sendable () -> [UInt8]
    ) async throws {
        self.backing = backing
        self.clock = clock
        self.limits = limits
        self.lotterySeeds = lotterySeeds
        state = Mutex(nil)
        try await start()
    }

    /// SQL reads of the ledger, whichever store it is on (the gateway may be down).
    var sql: LedgerSQL {
        switch backing {
        case .postgres(let database): LedgerSQL(client: database.client)
        case .sqlite:
            LedgerSQL(sqlite: (state.withLock { $0 } as? SQLiteLedgerStore)?.database)
        }
    }

    /// The running store; throws UNAVAILABLE while the gateway is down.
    var store: any LedgerStore {
        get throws {
            guard let store = state.withLock({ $0 }) else {
                throw RPCError(code: .unavailable, message: "the gateway is down")
            }
            return store
        }
    }

    var isUp: Bool { state.withLock { $0 != nil } }

    func start() async throws {
        let store: any LedgerStore
        switch backing {
        case .sqlite(let path):
            store = try SQLiteLedgerStore(
                database: try GatewayDatabase.open(path: path), clock: clock, limits: limits, lotterySeeds: lotterySeeds
            )
        case .postgres(let database):
            store = try await PostgresLedgerStore(
                database: database, clock: clock, limits: limits, logger: Self.quiet, lotterySeeds: lotterySeeds)
        }
        state.withLock { $0 = store }
    }

    /// Stops the process at once: the store is dropped (its SQLite file closed mid-flight).
    func crash() throws {
        let store = state.withLock { state in
            defer { state = nil }
            return state
        }
        try (store as? SQLiteLedgerStore)?.database.pool.close()
    }

    /// The sync service as the site `site` reaches it.
    func service(for site: SiteID) throws -> any Coalition_Sync_V1_Sync.ServiceProtocol {
        Self.service(try store, site: site, limits: limits)
    }

    private static func service<Store: LedgerStore>(_ store: Store, site: SiteID, limits: GatewayLimits)
        -> any Coalition_Sync_V1_Sync.ServiceProtocol
    {
        let serial = "simulated-\(site)"
        return SyncService(
            store: store, limits: limits, logger: quiet,
            peers: SitePeerResolver { _ in SitePeer(identity: .site(site), serial: serial) })
    }
}

/// One edge's link to the gateway: up or cut, with the faults the simulation queued for its next
/// calls. Unexpected answers (an old batch replayed and refused) are kept as violations.
final class SimulatedLink: Sendable {
    private struct State {
        var up = true
        var faults: [LinkFault] = []
        var pastPushes: [Coalition_Sync_V1_PushRequest] = []
        var violations: [String] = []
        /// The gateway's position counter right after each hold was granted, by transaction id:
        /// when the hold began, in the ledger's own order (for the reference model).
        var holdPositions: [String: Int64] = [:]
    }

    let site: SiteID
    private let gateway: SimulatedGateway
    private let state = Mutex(State())

    init(site: SiteID, gateway: SimulatedGateway) {
        self.site = site
        self.gateway = gateway
    }

    var isUp: Bool { state.withLock { $0.up } }
    func set(up: Bool) { state.withLock { $0.up = up } }
    func inject(_ fault: LinkFault) { state.withLock { $0.faults.append(fault) } }
    func clearFaults() { state.withLock { $0.faults.removeAll() } }
    var pushesSeen: Int { state.withLock { $0.pastPushes.count } }

    func holdPosition(_ transaction: String) -> Int64? { state.withLock { $0.holdPositions[transaction] } }

    func takeViolations() -> [String] {
        state.withLock { state in
            defer { state.violations.removeAll() }
            return state.violations
        }
    }

    private func next() throws -> LinkFault? {
        try state.withLock { state in
            guard state.up else { throw RPCError(code: .unavailable, message: "the link of \(site) is cut") }
            return state.faults.isEmpty ? nil : state.faults.removeFirst()
        }
    }

    /// Delivers one call through the queued fault.
    private func deliver<Request: Sendable, Response: Sendable>(
        _ request: Request, _ call: @Sendable (Request) async throws -> Response
    ) async throws -> Response {
        switch try next() {
        case nil, .replayOld:
            return try await call(request)
        case .lostRequest:
            throw RPCError(code: .unavailable, message: "the request was lost")
        case .lostAnswer:
            _ = try await call(request)
            throw RPCError(code: .deadlineExceeded, message: "the answer was lost")
        case .duplicate:
            _ = try? await call(request)
            return try await call(request)
        }
    }

    /// The edge's sync calls over this link.
    var calls: SyncCalls {
        let gateway = self.gateway
        let site = self.site
        return SyncCalls(
            push: { [self] request, _ in
                // An old batch replayed must be answered as already applied, never refused.
                let replay: Coalition_Sync_V1_PushRequest? = try state.withLock { state in
                    guard state.up else { throw RPCError(code: .unavailable, message: "the link of \(site) is cut") }
                    guard case .replayOld(let back) = state.faults.first, !state.pastPushes.isEmpty else { return nil }
                    return state.pastPushes[max(0, state.pastPushes.count - 1 - back % state.pastPushes.count)]
                }
                if let replay {
                    do {
                        let answer = try await callInProcess(replay, method: "Push") {
                            try await gateway.service(for: site).push(request: $0, context: $1)
                        }
                        if answer.status != .alreadyApplied && answer.status != .applied {
                            state.withLock {
                                $0.violations.append("\(site): a replayed old push was answered \(answer.status)")
                            }
                        }
                    } catch let error as RPCError where error.code == .unavailable {
                        // The gateway is down: nothing to learn.
                    } catch {
                        state.withLock { $0.violations.append("\(site): a replayed old push was refused: \(error)") }
                    }
                }
                let response = try await deliver(request) { request in
                    try await callInProcess(request, method: "Push") {
                        try await gateway.service(for: site).push(request: $0, context: $1)
                    }
                }
                state.withLock { state in
                    state.pastPushes.append(request)
                    if state.pastPushes.count > 50 { state.pastPushes.removeFirst() }
                }
                return response
            },
            pull: { [self] request, _ in
                try await deliver(request) { request in
                    try await callInProcess(request, method: "Pull") {
                        try await gateway.service(for: site).pull(request: $0, context: $1)
                    }
                }
            },
            authorizeRedeem: { [self] request, _ in
                try await deliver(request) { request in
                    let response = try await callInProcess(request, method: "AuthorizeRedeem") {
                        try await gateway.service(for: site).authorizeRedeem(request: $0, context: $1)
                    }
                    if response.approved,
                        let position = try? await gateway.sql.int("SELECT value FROM counters WHERE name = 'position'")
                    {
                        state.withLock { state in
                            if state.holdPositions[request.transactionID] == nil {
                                state.holdPositions[request.transactionID] = position
                            }
                        }
                    }
                    return response
                }
            },
            releaseHold: { [self] request, _ in
                try await deliver(request) { request in
                    try await callInProcess(request, method: "ReleaseHold") {
                        try await gateway.service(for: site).releaseHold(request: $0, context: $1)
                    }
                }
            },
            recover: { [self] request, _ in
                try await deliver(request) { request in
                    try await callInProcess(request, method: "Recover") {
                        try await gateway.service(for: site).recover(request: $0, context: $1)
                    }
                }
            },
            requestAllowance: { [self] request, _ in
                try await deliver(request) { request in
                    try await callInProcess(request, method: "RequestAllowance") {
                        try await gateway.service(for: site).requestAllowance(request: $0, context: $1)
                    }
                }
            })
    }
}

/// An edge node of the simulation: the real ledger, services and sync client on its own SQLite
/// file, restartable (a crash closes the file; the next start opens it again).
final class SimulatedEdge {
    let site: SiteID
    let merchants: [MerchantID]
    let path: String
    let clock: SkewedClock
    let link: SimulatedLink
    private(set) var ledger: EdgeLedger
    private(set) var sync: SyncClient
    private(set) var points: PointsService
    private(set) var parking: ParkingService
    private(set) var vouchers: VouchersService
    private(set) var tokens: [MerchantID: String] = [:]
    private var committer: Task<Void, Never>
    private let configuration: EdgeConfiguration

    static let phoneKey = Hex.bytes(String(repeating: "5e", count: 32))!
    private static let quiet = Logger(label: "simulation", factory: { _ in SwiftLogNoOpLogHandler() })

    init(
        site: SiteID, merchants: [MerchantID], directory: String, programFile: String, clock: SkewedClock,
        link: SimulatedLink
    ) throws {
        self.site = site
        self.merchants = merchants
        self.path = directory + "/\(site).sqlite"
        self.clock = clock
        self.link = link
        configuration = EdgeConfiguration(
            siteID: site, databasePath: path, programFile: programFile, phoneHashKey: Self.phoneKey)
        (ledger, sync, points, parking, vouchers, committer) = try Self.open(configuration, clock: clock, link: link)
        let terminals = TerminalRegistry(pool: ledger.database.pool, clock: clock, cacheMilliseconds: 0)
        for merchant in merchants {
            tokens[merchant] = try terminals.issue(merchant: merchant, terminalID: "sim-\(merchant)")
        }
    }

    private static func open(_ configuration: EdgeConfiguration, clock: SkewedClock, link: SimulatedLink) throws
        -> (EdgeLedger, SyncClient, PointsService, ParkingService, VouchersService, Task<Void, Never>)
    {
        let database = try EdgeDatabase.open(
            path: configuration.databasePath, site: configuration.siteID, limits: configuration.limits, now: clock.now()
        )
        let programs = ProgramHolder(try EdgeNode.loadProgram(configuration, database: database))
        var gatewayLink = GatewayLink(
            host: "in-process", port: 0, caCertificatePath: "", certificatePath: "", privateKeyPath: "")
        // Small pages and batches, so paging and resumption are exercised on every run.
        gatewayLink.pushBatchMax = 7
        gatewayLink.pullPageSize = 5
        let sync = SyncClient(
            link: gatewayLink, site: configuration.siteID, database: database, clock: clock, logger: quiet,
            program: { programs.program }, activate: { programs.program = $0 }, calls: link.calls)
        let ledger = EdgeLedger(
            site: configuration.siteID, database: database, programs: programs, clock: clock,
            phoneHashKey: configuration.phoneHashKey,
            limits: configuration.limits, authorizer: sync.authorizer)
        let terminals = TerminalRegistry(pool: database.pool, clock: clock, cacheMilliseconds: 0)
        let points = PointsService(
            ledger: ledger, terminals: terminals, historyPageSizeMax: configuration.limits.historyPageSizeMax,
            requestBytesMax: configuration.limits.requestBytesMax)
        let parking = ParkingService(
            ledger: ledger, terminals: terminals, requestBytesMax: configuration.limits.requestBytesMax)
        let vouchers = VouchersService(
            ledger: ledger, terminals: terminals, requestBytesMax: configuration.limits.requestBytesMax)
        let committer = ledger.committer
        // Unstructured on purpose: the writer lives as long as this node incarnation; `crash()`
        // closes it and awaits the task.
        return (ledger, sync, points, parking, vouchers, Task { await committer.run() })
    }

    /// Stops the node (every call answered so far is committed) and closes its file.
    func crash() async throws {
        ledger.committer.close()
        await committer.value
        try ledger.database.pool.close()
    }

    /// Starts the node again on the same file after `crash()`, recovering from the gateway.
    func restart() async throws {
        (ledger, sync, points, parking, vouchers, committer) = try Self.open(configuration, clock: clock, link: link)
        await recover()
    }

    /// Recovers from the gateway when the link allows (as `EdgeNode.run` does before serving):
    /// on the incarnation `init` opened when a run starts, after `restart()` later. (Opening the
    /// file again at the start instead left the first incarnation's pool and writer task behind,
    /// seven file descriptors per edge and seed, until a long run ran out of them.)
    func recover() async {
        do {
            try await sync.recover()
            while try await sync.pullRound() {}
        } catch {
            // Unreachable gateway: the edge serves offline.
        }
    }

    func metadata(_ merchant: MerchantID) -> Metadata { ["authorization": .string("Bearer \(tokens[merchant] ?? "")")] }
}
