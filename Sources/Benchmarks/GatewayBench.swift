import Core
import Crypto
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import NodeSupport
import SwiftProtobuf
import Wire

/// A standalone edge ledger for generating a site's traffic, with its writer running.
final class GeneratingEdge: Sendable {
    let site: SiteID
    let merchant: MerchantID
    let ledger: EdgeLedger
    let sync: SyncClient
    private let writer: Task<Void, Never>

    /// An edge of `site` whose sync calls go in process to `gateway`'s service (no sockets), with
    /// the program the gateway published as version 1.
    init<Store: LedgerStore>(folder: BenchFolder, site: String, store: Store, limits: GatewayLimits) throws {
        self.site = SiteID(site)!
        let program = store.programs.latest!
        guard let merchant = program.program.site(self.site)?.merchants.first?.id else {
            throw BenchFailure("no merchant at \(site)")
        }
        self.merchant = merchant
        var edgeLimits = EdgeLimits()
        edgeLimits.groupCommitBatchMax = 512
        // The backlog is the point of the catch-up bench: allow more than the default million.
        edgeLimits.unacknowledgedTransactionsMax = 100_000_000
        let database = try EdgeDatabase.open(
            path: folder.path + "/\(site).sqlite", site: self.site, limits: edgeLimits, now: SystemWallClock().now())
        let programs = ProgramHolder(ActiveProgram(version: program.version, program: program.program))
        var link = GatewayLink(
            host: "in-process", port: 0, caCertificatePath: "", certificatePath: "", privateKeyPath: "")
        link.pushBatchMax = 500
        link.pullPageSize = 1_000
        let siteID = self.site
        let service = SyncService(
            store: store, limits: limits, logger: BenchFolder.quiet,
            peers: SitePeerResolver { _ in SitePeer(identity: .site(siteID), serial: "bench-\(siteID)") })
        let calls = SyncCalls(
            push: { request, _ in
                try await callInProcess(request, method: "Push") { try await service.push(request: $0, context: $1) }
            },
            pull: { request, _ in
                try await callInProcess(request, method: "Pull") { try await service.pull(request: $0, context: $1) }
            },
            authorizeRedeem: { request, _ in
                try await callInProcess(request, method: "AuthorizeRedeem") {
                    try await service.authorizeRedeem(request: $0, context: $1)
                }
            },
            releaseHold: { request, _ in
                try await callInProcess(request, method: "ReleaseHold") {
                    try await service.releaseHold(request: $0, context: $1)
                }
            },
            recover: { request, _ in
                try await callInProcess(request, method: "Recover") {
                    try await service.recover(request: $0, context: $1)
                }
            })
        sync = SyncClient(
            link: link, site: self.site, database: database, clock: SystemWallClock(), logger: BenchFolder.quiet,
            program: { programs.program }, activate: { programs.program = $0 }, calls: calls)
        ledger = EdgeLedger(
            site: self.site, database: database, programs: programs, clock: SystemWallClock(),
            phoneHashKey: BenchFolder.phoneKey, limits: edgeLimits)
        let committer = ledger.committer
        // Unstructured on purpose: the writer lives as long as this generator, which `stop()`
        // closes and awaits (the benches create and stop generators one after another).
        writer = Task { await committer.run() }
    }

    /// Enrols `count` members, then makes `earns` earns spread over them, `concurrency` at a time.
    func generate(members count: Int, earns: Int, concurrency: Int = 128) async throws -> [MemberID] {
        let merchant = self.merchant
        let ledger = self.ledger
        let site = self.site
        var members: [MemberID] = []
        for index in 0..<count {
            // Each site's people are its own (the same phone at two sites would be merged).
            let phone = PhoneNumber(
                "+861\(30 + (GatewayBenches.siteNames.firstIndex(of: site.rawValue) ?? 9))"
                    + String(format: "%08d", index))!
            let content = Array("enroll \(site) \(index)".utf8)
            let key = RequestKey(
                merchant: merchant, operation: .enroll, requestID: RequestID("E-\(index)")!, content: content)
            let answer = try await ledger.enroll(
                EdgeLedger.Enroll(key: key, phone: phone, cardNumber: nil, birthMonth: nil, referrer: nil))
            members.append(MemberID(answer.member.memberID)!)
        }
        let chosen = members
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var index = worker
                    while index < earns {
                        let content = Array("earn \(site) \(index)".utf8)
                        let key = RequestKey(
                            merchant: merchant, operation: .earn, requestID: RequestID("G-\(index)")!, content: content
                        )
                        _ = try await ledger.earn(
                            EdgeLedger.Earn(
                                key: key, member: chosen[index % chosen.count],
                                amount: Money(minorUnits: 2_000 + Int64(index % 50_000)), lines: []))
                        index += concurrency
                    }
                }
            }
            try await group.waitForAll()
        }
        return members
    }

    /// The outbox as the gateway receives it, in pushes of `batch`.
    func outboxBatches(_ batch: Int) async throws -> [[Coalition_Sync_V1_OutboxTransaction]] {
        let rows = try await ledger.database.pool.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT sequence, transaction_id, previous_hash, payload, occurred_at_ms FROM outbox ORDER BY sequence"
            ).map { row in
                Coalition_Sync_V1_OutboxTransaction(
                    sequence: row["sequence"], transactionID: row["transaction_id"], previousHash: row["previous_hash"],
                    payload: row["payload"],
                    occurredAtMs: row["occurred_at_ms"])
            }
        }
        return stride(from: 0, to: rows.count, by: batch).map { Array(rows[$0..<min(rows.count, $0 + batch)]) }
    }

    /// The reconnect the catch-up benches time: pushes until acknowledged, then pulls until
    /// current. Returns the rounds (the last one included), their seconds and what is left unacknowledged.
    func reconnect() async throws -> (
        pushes: Int, pushSeconds: Double, pulls: Int, pullSeconds: Double, left: Int
    ) {
        var pushes = 1
        var pulls = 1
        let (_, pushSeconds) = try await Load.time {
            while try await sync.pushRound() { pushes += 1 }
        }
        let (_, pullSeconds) = try await Load.time {
            while try await sync.pullRound() { pulls += 1 }
        }
        return (pushes, pushSeconds, pulls, pullSeconds, try await ledger.unacknowledgedCount())
    }

    func stop() async {
        ledger.committer.close()
        await writer.value
    }
}

/// A gateway store on a fresh file with the example program published as version 1.
func benchGateway(_ folder: BenchFolder, name: String = "gateway.sqlite") throws -> (SQLiteLedgerStore, GatewayLimits) {
    var limits = GatewayLimits()
    limits.clockSkewMaxMilliseconds = 24 * 3_600_000
    let store = try SQLiteLedgerStore(
        database: try GatewayDatabase.open(path: folder.path + "/" + name), clock: SystemWallClock(), limits: limits)
    try store.publish(document: Array(try Data(contentsOf: URL(fileURLWithPath: folder.programFile))), by: "bench")
    return (store, limits)
}

package enum GatewayBenches {
    static let siteNames = ["mall-01", "hotel-01", "park-01", "office-01"]

    /// S sites push their outboxes concurrently, in batches; baseline: the same rows inserted
    /// into SQLite in the same batches with no logic.
    /// The outboxes of `sites` generating edges (500 enrolments and `transactions / sites` earns
    /// each), in pushes of `batch`.
    static func outboxes(
        _ folder: BenchFolder, store: SQLiteLedgerStore, limits: GatewayLimits, sites: Int, transactions: Int,
        batch: Int
    ) async throws -> [(SiteID, [[Coalition_Sync_V1_OutboxTransaction]])] {
        var batches: [(SiteID, [[Coalition_Sync_V1_OutboxTransaction]])] = []
        for name in siteNames.prefix(sites) {
            let edge = try GeneratingEdge(folder: folder, site: name, store: store, limits: limits)
            _ = try await edge.generate(members: 500, earns: transactions / sites)
            batches.append((edge.site, try await edge.outboxBatches(batch)))
            await edge.stop()
        }
        return batches
    }

    package static func gatewayIngest(program: String, sites: Int, transactions: Int, batch: Int) async throws {
        let folder = try BenchFolder(program: program)
        let (store, limits) = try benchGateway(folder)
        let batches = try await outboxes(
            folder, store: store, limits: limits, sites: sites, transactions: transactions, batch: batch)
        let total = batches.reduce(0) { $0 + $1.1.reduce(0) { $0 + $1.count } }
        let baselineSeconds = try await plainInsertSeconds(folder, batches)
        let rowsSeconds = try await postingRowsSeconds(folder, batches)
        // The figure: the gateway's push path (decode, validate, chain, post, lots, balances).
        FileHandle.standardError.write(Data("gateway-ingest: pushing\n".utf8))
        let (_, figureSeconds) = try await Load.time {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (site, pushes) in batches {
                    group.addTask { try await push(pushes, site: site, store: store, limits: limits) }
                }
                try await group.waitForAll()
            }
        }
        let outcomes = try await store.database.pool.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT outcome, reason, COUNT(*) AS n FROM transactions WHERE site_sequence IS NOT NULL GROUP BY outcome, reason"
            ).map {
                "\($0["outcome"] as String)\(($0["reason"] as String).isEmpty ? "" : " (\($0["reason"] as String))") \($0["n"] as Int)"
            }
        }
        var report = BenchReport(
            name: "gateway-ingest",
            settings: "\(sites) sites pushing concurrently, \(total) transactions, batches of \(batch)")
        report.line(
            "baseline",
            String(
                format: "%.0f rows/s inserted with no logic (%.2f s)", Double(total) / baselineSeconds, baselineSeconds)
        )
        report.line(
            "figure",
            String(
                format: "%.0f transactions/s posted (%.2f s; %@)", Double(total) / figureSeconds, figureSeconds,
                outcomes.joined(separator: ", ")))
        report.ratio(Double(total) / figureSeconds, over: Double(total) / baselineSeconds, minimum: 0.50)
        report.line(
            "rows",
            String(
                format: "%.0f transactions/s writing the rows a posting writes, no logic (%.2f s)",
                Double(total) / rowsSeconds, rowsSeconds))
        let rowsRatio = rowsSeconds / figureSeconds
        report.line(
            "rows ratio",
            String(format: "%.2f (target ≥ 0.50: %@)", rowsRatio, rowsRatio >= 0.5 ? "met" : "NOT met"))
        report.floor("rate", Double(total) / figureSeconds, minimum: 25_000, unit: "tx/s")
        let phases = store.postingStatistics
        let perTransaction = { (duration: Duration) -> Double in
            Double(duration.components.attoseconds) / 1e12 / Double(max(1, phases.transactions))
                + Double(duration.components.seconds) * 1e6 / Double(max(1, phases.transactions))
        }
        report.line(
            "writer",
            String(
                format:
                    "per transaction: %.1f µs checking the chain, %.1f µs loading views, %.1f µs deciding, %.1f µs applying (%d pushes in %d commits)",
                perTransaction(phases.checking), perTransaction(phases.loading), perTransaction(phases.deciding),
                perTransaction(phases.applying), phases.pushes, phases.commits))
        report.line("memory", String(format: "peak %.0f MiB", Load.peakMemoryMiB))
        report.print()
    }

    /// One site with `transactions` queued offline reconnects: time until all are posted and its
    /// pull replica is current.
    package static func catchUp(program: String, transactions: Int, members: Int) async throws {
        let folder = try BenchFolder(program: program)
        let (store, limits) = try benchGateway(folder)
        let edge = try GeneratingEdge(folder: folder, site: "mall-01", store: store, limits: limits)
        let (_, generation) = try await Load.time { _ = try await edge.generate(members: members, earns: transactions) }
        let queued = try await edge.ledger.unacknowledgedCount()
        let memoryBefore = Load.peakMemoryMiB
        let (pushes, pushSeconds, pulls, pullSeconds, left) = try await edge.reconnect()
        // Peak memory of the catch-up itself, before the baseline loads every row at once.
        let memoryAfter = Load.peakMemoryMiB
        let baselineSeconds = try await plainInsertSeconds(folder, [(edge.site, try await edge.outboxBatches(500))])
        await edge.stop()
        var report = BenchReport(
            name: "catch-up",
            settings:
                "\(queued) transactions queued offline at one site (\(members) members), in-process link, pushes of 500, pages of 1000"
        )
        report.line(
            "queued in",
            String(
                format: "%.1f s (%.0f tx/s through the edge's ledger, for reference)", generation,
                Double(transactions) / generation))
        report.line(
            "baseline",
            String(
                format: "%.1f s to insert the same %d outbox rows into plain SQLite in batches of 500, no logic",
                baselineSeconds, queued))
        report.line(
            "pushed",
            String(
                format: "%.1f s (%.0f tx/s, %d pushes); %d left unacknowledged", pushSeconds,
                Double(queued) / pushSeconds, pushes, left))
        report.line("pulled", String(format: "%.1f s (%d pages)", pullSeconds, pulls))
        report.line(
            "figure", String(format: "%.1f s until posted and the replica is current", pushSeconds + pullSeconds))
        report.line(
            "ratio",
            String(
                format: "%.3f (baseline time / figure time)", baselineSeconds / max(0.001, pushSeconds + pullSeconds)))
        report.ceiling("caught up", pushSeconds + pullSeconds, maximum: 60, unit: "s")
        report.line(
            "memory",
            String(
                format: "peak %.0f MiB for edge and gateway together in one process (%.0f MiB before the reconnect)",
                memoryAfter, memoryBefore))
        report.print()
    }

    /// `members` members pulled to a fresh edge: time and database size.
    package static func replicaSize(program: String, members: Int) async throws {
        let folder = try BenchFolder(program: program)
        let (store, limits) = try benchGateway(folder)
        // Members are written straight into the gateway's tables (the bench measures the pull).
        let (_, seeding) = try await Load.time {
            try await store.database.pool.write { db in
                let insertMember = try db.cachedStatement(
                    sql: """
                        INSERT INTO members (member_id, phone_hash, tier, tier_review_date, enrolled_at_ms, enrolled_site, changed_position,
                            balance_points)
                        VALUES (?, ?, 'member', '2027-11-24', ?, 'mall-01', ?, ?)
                        """)
                var generator = SystemRandomNumberGenerator()
                let base = try Int64.fetchOne(db, sql: "SELECT value FROM counters WHERE name = 'position'") ?? 0
                let now = SystemWallClock().now()
                for index in 0..<members {
                    let id = MemberID(time: now, using: &generator).description
                    let phone = Data(SHA256.hash(data: Data("+86136\(index)".utf8)))
                    try insertMember.execute(arguments: [
                        id, phone, now.milliseconds, base + 1 + Int64(index), Int64(index % 5_000),
                    ])
                }
                try db.execute(
                    sql: "UPDATE counters SET value = ? WHERE name = 'position'", arguments: [base + Int64(members)])
            }
        }
        let baselineSeconds = try await plainMemberInsertSeconds(folder, count: members)
        let edge = try GeneratingEdge(folder: folder, site: "hotel-01", store: store, limits: limits)
        var pages = 0
        let (_, pullSeconds) = try await Load.time {
            while try await edge.sync.pullRound() { pages += 1 }
        }
        let replicated = try await edge.ledger.database.pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM members") ?? 0
        }
        try await edge.ledger.database.pool.writeWithoutTransaction { db in
            _ = try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        await edge.stop()
        let bytes = folder.size("hotel-01.sqlite")
        var report = BenchReport(
            name: "replica-size",
            settings: "\(members) members at the gateway, a fresh edge pulls pages of 1000 in process")
        report.line("seeded", String(format: "%.1f s (written straight into the gateway's tables)", seeding))
        report.line(
            "pulled",
            String(
                format: "%.1f s (%.0f members/s, %d pages), %d members in the replica", pullSeconds,
                Double(replicated) / pullSeconds, pages + 1, replicated))
        report.line(
            "baseline",
            String(
                format:
                    "%.1f s to insert %d member-shaped rows (id, phone hash, tier, balance) into plain SQLite in pages of 1000",
                baselineSeconds, members))
        report.line(
            "ratio", String(format: "%.3f (baseline time / pull time)", baselineSeconds / max(0.001, pullSeconds)))
        report.line(
            "size",
            String(
                format: "%.1f MiB on disk (%.0f bytes per member)", Double(bytes) / 1_048_576,
                Double(bytes) / Double(max(1, replicated))))
        report.line("memory", String(format: "peak %.0f MiB", Load.peakMemoryMiB))
        report.print()
    }
}
