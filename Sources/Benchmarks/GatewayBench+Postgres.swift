import Core
import EdgeNode
import Foundation
import GRPCCore
import Gateway
import Logging
import NodeSupport
import PostgresNIO
import Wire

/// `gateway-ingest --store postgres://…`: the same pushes as the SQLite bench, posted to a
/// PostgreSQL ledger by one gateway and by `gateways` gateways sharing it (each its own store and
/// connection pool, the sites spread over them), against the same rows a posting writes inserted
/// into plain PostgreSQL tables in the same batches. Each run has a fresh database of the server,
/// dropped afterwards (the user must be allowed to create databases).
extension GatewayBenches {
    package static func gatewayIngestPostgres(
        program: String, sites: Int, transactions: Int, batch: Int, server: PostgresSettings, gateways: Int
    ) async throws {
        let folder = try BenchFolder(program: program)
        let (generator, limits) = try benchGateway(folder)
        let batches = try await outboxes(
            folder, store: generator, limits: limits, sites: sites, transactions: transactions, batch: batch)
        let total = batches.reduce(0) { $0 + $1.1.reduce(0) { $0 + $1.count } }
        let document = Array(try Data(contentsOf: URL(fileURLWithPath: folder.programFile)))
        let context = try await serverContext(server)
        var runs: [(gateways: Int, seconds: Double, outcomes: String, statistics: PostingStatistics)] = []
        var baselineSeconds = 0.0
        // One gateway, N, N, one (an ABBA order): a drift of the machine over the runs (the
        // server's checkpoints, the page cache, a neighbour) weighs on both alike. Each run starts
        // from a checkpoint, so none pays for the writes of the one before.
        let order = gateways == 1 ? [1] : [1, gateways, gateways, 1]
        for count in order {
            FileHandle.standardError.write(Data("gateway-ingest: pushing through \(count) gateway(s)\n".utf8))
            let measureBaseline = runs.isEmpty
            let run = try await withBenchDatabase(server) { settings in
                try await withPools(settings, count: count) { databases in
                    try await databases[0].migrate(caFingerprint: benchNetwork, now: SystemWallClock().now())
                    var stores: [PostgresLedgerStore] = []
                    for database in databases {
                        stores.append(
                            try await PostgresLedgerStore(
                                database: database, clock: SystemWallClock(), limits: limits,
                                logger: BenchFolder.quiet))
                    }
                    _ = try await stores[0].publish(document: document, effectiveAt: nil, by: "bench")
                    for store in stores.dropFirst() { _ = try await store.siteStatus(SiteID("mall-01")!) }
                    try await databases[0].client.query("CHECKPOINT")
                    let (_, seconds) = try await Load.time {
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            for (index, (site, pushes)) in batches.enumerated() {
                                let store = stores[index % stores.count]
                                group.addTask { try await push(pushes, site: site, store: store, limits: limits) }
                            }
                            try await group.waitForAll()
                        }
                    }
                    var statistics = PostingStatistics()
                    for store in stores {
                        let one = store.postingStatistics
                        statistics.pushes += one.pushes
                        statistics.commits += one.commits
                        statistics.transactions += one.transactions
                        statistics.checking += one.checking
                        statistics.loading += one.loading
                        statistics.deciding += one.deciding
                        statistics.applying += one.applying
                    }
                    let outcomes = try await outcomesText(databases[0].client)
                    if measureBaseline {
                        // The baseline: the rows this run's postings wrote, inserted again.
                        try await databases[0].client.query("CHECKPOINT")
                        baselineSeconds = try await plainRowsSeconds(databases[0].client, batches)
                    }
                    return (count, seconds, outcomes, statistics)
                }
            }
            runs.append(run)
        }
        let oneRuns = runs.filter { $0.gateways == 1 }
        let manyRuns = runs.filter { $0.gateways == gateways }
        let oneRate = oneRuns.reduce(0.0) { $0 + Double(total) / $1.seconds } / Double(oneRuns.count)
        let manyRate = manyRuns.reduce(0.0) { $0 + Double(total) / $1.seconds } / Double(manyRuns.count)
        var report = BenchReport(
            name: "gateway-ingest (PostgreSQL)",
            settings:
                "\(sites) sites pushing concurrently, \(total) transactions, batches of \(batch), ledger on \(server) "
                + "(\(context))")
        report.line(
            "baseline",
            String(
                format:
                    "%.0f transactions/s inserting the rows their postings wrote into plain PostgreSQL tables, same batches, no logic (%.2f s)",
                Double(total) / baselineSeconds, baselineSeconds))
        for run in runs {
            report.line(
                "\(run.gateways) gateway\(run.gateways == 1 ? "" : "s")",
                String(
                    format: "%.0f transactions/s posted (%.2f s; %@)", Double(total) / run.seconds, run.seconds,
                    run.outcomes))
        }
        if let one = runs.first {
            report.ratio(oneRate, over: Double(total) / baselineSeconds, minimum: 0.40)
            let phases = one.statistics
            let micros = { (duration: Duration) -> Double in
                (Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12)
                    / Double(max(1, phases.transactions))
            }
            report.line(
                "one gateway",
                String(
                    format:
                        "per transaction: %.1f µs checking the chain, %.1f µs locking and loading views, %.1f µs deciding, %.1f µs writing and committing (%d pushes, first run)",
                    micros(phases.checking), micros(phases.loading), micros(phases.deciding), micros(phases.applying),
                    phases.pushes))
        }
        if gateways > 1 {
            let scaling = manyRate / oneRate
            report.line(
                "scaling",
                String(
                    format:
                        "%.2f× one gateway's rate with %d (mean of %d runs each, %.0f and %.0f tx/s; target ≥ 1.00: %@)",
                    scaling, gateways, oneRuns.count, manyRate, oneRate, scaling >= 1.0 ? "met" : "NOT met"))
        }
        report.line("memory", String(format: "peak %.0f MiB", Load.peakMemoryMiB))
        report.print()
    }

    /// The CA fingerprint the bench's databases are bound to (no network: a bench of its own).
    static let benchNetwork = String(repeating: "0", count: 64)

    /// One site's pushes through a store, in order.
    static func push<Store: LedgerStore>(
        _ pushes: [[Coalition_Sync_V1_OutboxTransaction]], site: SiteID, store: Store, limits: GatewayLimits
    ) async throws {
        let service = SyncService(
            store: store, limits: limits, logger: BenchFolder.quiet,
            peers: SitePeerResolver { _ in SitePeer(identity: .site(site), serial: "bench-\(site)") })
        for push in pushes {
            var request = Coalition_Sync_V1_PushRequest()
            request.protocolVersion = 1
            request.programVersion = 1
            request.transactions = push
            request.sentAtMs = SystemWallClock().now().milliseconds
            let answer = try await callInProcess(request, method: "Push") {
                try await service.push(request: $0, context: $1)
            }
            guard answer.status == .applied else { throw BenchFailure("a push was answered \(answer.status)") }
        }
    }

    /// Runs `body` with a new database of `server`, dropped afterwards.
    static func withBenchDatabase<Result: Sendable>(
        _ server: PostgresSettings, _ body: (PostgresSettings) async throws -> Result
    ) async throws -> Result {
        let name = "coalition_bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await PostgresLedgerDatabase.with(server, logger: BenchFolder.quiet) { database in
            try await database.client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        var settings = server
        settings.database = name
        do {
            let result = try await body(settings)
            try await drop(name, server)
            return result
        } catch {
            try? await drop(name, server)
            throw error
        }
    }

    private static func drop(_ name: String, _ server: PostgresSettings) async throws {
        try await PostgresLedgerDatabase.with(server, logger: BenchFolder.quiet) { database in
            try await database.client.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"))
        }
    }

    /// Runs `body` with `count` connection pools to `settings` (one per simulated gateway).
    static func withPools<Result: Sendable>(
        _ settings: PostgresSettings, count: Int, opened: [PostgresLedgerDatabase] = [],
        _ body: ([PostgresLedgerDatabase]) async throws -> Result
    ) async throws -> Result {
        guard opened.count < count else { return try await body(opened) }
        return try await PostgresLedgerDatabase.with(settings, logger: BenchFolder.quiet) { database in
            try await withPools(settings, count: count, opened: opened + [database], body)
        }
    }

    /// The server's version and durability settings, pgbench-style.
    static func serverContext(_ server: PostgresSettings) async throws -> String {
        try await PostgresLedgerDatabase.with(server, logger: BenchFolder.quiet) { database in
            var parts: [String] = []
            for setting in [
                "server_version", "fsync", "synchronous_commit", "wal_level", "shared_buffers", "max_wal_size",
                "checkpoint_timeout",
            ] {
                for try await value in try await database.client.query(
                    PostgresQuery(unsafeSQL: "SELECT current_setting('\(setting)')")
                ).decode(String.self) {
                    parts.append("\(setting) \(value)")
                }
            }
            return parts.joined(separator: ", ")
        }
    }

    private static func outcomesText(_ client: PostgresClient) async throws -> String {
        var outcomes: [String] = []
        for try await (outcome, reason, count) in try await client.query(
            """
            SELECT outcome, reason, COUNT(*) FROM transactions WHERE site_sequence IS NOT NULL
            GROUP BY outcome, reason ORDER BY outcome, reason
            """
        ).decode((String, String, Int64).self) {
            outcomes.append("\(outcome)\(reason.isEmpty ? "" : " (\(reason))") \(count)")
        }
        return outcomes.joined(separator: ", ")
    }
}

/// The baseline of the PostgreSQL ingest bench: the rows the postings of each push wrote
/// (transactions, postings, lots, lot draws, the members and accounts they changed), read back from
/// the ledger, then inserted again into plain copies of those tables, each push's rows in one
/// transaction with one statement per table (`PostgresRowsWriter`, as the ledger writes), the sites at once as in the figure.
extension GatewayBenches {
    /// One push's rows, table by table, as the server sent them (re-sent as they are).
    struct PlainRows: Sendable {
        var tables: [(name: String, columns: [String], rows: [[PostgresData]])] = []
    }

    static func plainRowsSeconds(
        _ client: PostgresClient, _ batches: [(SiteID, [[Coalition_Sync_V1_OutboxTransaction]])]
    ) async throws -> Double {
        var perSite: [[PlainRows]] = []
        for (site, pushes) in batches {
            var rows: [PlainRows] = []
            for push in pushes {
                guard let first = push.first?.sequence, let last = push.last?.sequence else { continue }
                rows.append(try await plainRows(client, site: site, from: Int64(first), to: Int64(last)))
            }
            perSite.append(rows)
        }
        for table in ["transactions", "postings", "lots", "lot_draws", "members", "balances"] {
            try await client.query(
                PostgresQuery(unsafeSQL: "CREATE TABLE plain_\(table) (LIKE \(table) INCLUDING ALL)"))
        }
        let (_, seconds) = try await Load.time {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for pushes in perSite {
                    group.addTask {
                        for push in pushes {
                            try await client.withTransaction(logger: BenchFolder.quiet) { connection in
                                for table in push.tables where !table.rows.isEmpty {
                                    try await insertPlain(connection, table.name, table.columns, table.rows)
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        return seconds
    }

    private static func plainRows(_ client: PostgresClient, site: SiteID, from first: Int64, to last: Int64)
        async throws -> PlainRows
    {
        var result = PlainRows()
        func read(_ name: String, _ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
            var rows: [PostgresRandomAccessRow] = []
            for try await row in try await client.query(query) { rows.append(row.makeRandomAccess()) }
            var columns: [String] = []
            var values: [[PostgresData]] = []
            for row in rows {
                var cells: [PostgresData] = []
                columns = []
                for index in 0..<row.count {
                    let cell = row[index]
                    columns.append(cell.columnName)
                    cells.append(
                        PostgresData(type: cell.dataType, formatCode: cell.format, value: cell.bytes))
                }
                values.append(cells)
            }
            result.tables.append((name, columns, values))
            return rows
        }
        let transactions = try await read(
            "transactions",
            "SELECT * FROM transactions WHERE site_id = \(site.rawValue) AND site_sequence BETWEEN \(first) AND \(last)"
        )
        let positions = try transactions.map { try $0["position"].decode(Int64.self) }
        let ids = try transactions.map { try $0["transaction_id"].decode(String.self) }
        let members = try Array(Set(transactions.compactMap { try $0["member_id"].decode(String?.self) }))
        _ = try await read("postings", "SELECT * FROM postings WHERE position = ANY(\(positions))")
        _ = try await read("lots", "SELECT * FROM lots WHERE lot_id = ANY(\(ids))")
        _ = try await read("lot_draws", "SELECT * FROM lot_draws WHERE position = ANY(\(positions))")
        _ = try await read("members", "SELECT * FROM members WHERE member_id = ANY(\(members))")
        _ = try await read(
            "balances",
            """
            SELECT * FROM balances WHERE account IN (SELECT account FROM postings WHERE position = ANY(\(positions)))
            """)
        return result
    }

    /// One table's rows in one statement, as the ledger writes them (each column bound as an array,
    /// read back with `unnest`: the fastest of the forms tried, multi-row VALUES included).
    private static func insertPlain(
        _ connection: PostgresConnection, _ table: String, _ columns: [String], _ rows: [[PostgresData]]
    ) async throws {
        guard let first = rows.first else { return }
        let types = try first.map { cell -> PostgresRowsWriter.ColumnType in
            switch cell.type {
            case .int8: return .bigint
            case .text: return .text
            case .bytea: return .bytea
            case .bool: return .boolean
            default: throw BenchFailure("plain_\(table): a column of type \(cell.type)")
            }
        }
        var tail = ""
        switch table {
        case "members":
            tail =
                "ON CONFLICT (member_id) DO UPDATE SET balance_points = excluded.balance_points, changed_position = excluded.changed_position"
        case "balances":
            tail = "ON CONFLICT (account) DO UPDATE SET points = plain_balances.points + excluded.points"
        default: break
        }
        var writer = PostgresRowsWriter(
            "INSERT INTO plain_\(table) (\(columns.joined(separator: ", ")))", types: types, tail: tail)
        for row in rows {
            writer.add { values in
                for cell in row { values.append(cell) }
            }
        }
        try await writer.write(connection, BenchFolder.quiet)
    }
}

/// `catch-up --store postgres://…`: the catch-up bench with the gateway's ledger on PostgreSQL.
extension GatewayBenches {
    package static func catchUpPostgres(program: String, transactions: Int, members: Int, server: PostgresSettings)
        async throws
    {
        let folder = try BenchFolder(program: program)
        let (_, limits) = try benchGateway(folder)
        let document = Array(try Data(contentsOf: URL(fileURLWithPath: folder.programFile)))
        let context = try await serverContext(server)
        try await withBenchDatabase(server) { settings in
            try await withPools(settings, count: 1) { databases in
                let database = databases[0]
                try await database.migrate(caFingerprint: benchNetwork, now: SystemWallClock().now())
                let store = try await PostgresLedgerStore(
                    database: database, clock: SystemWallClock(), limits: limits, logger: BenchFolder.quiet)
                _ = try await store.publish(document: document, effectiveAt: nil, by: "bench")
                let edge = try GeneratingEdge(folder: folder, site: "mall-01", store: store, limits: limits)
                let (_, generation) = try await Load.time {
                    _ = try await edge.generate(members: members, earns: transactions)
                }
                let queued = try await edge.ledger.unacknowledgedCount()
                let batches = [(edge.site, try await edge.outboxBatches(500))]
                try await database.client.query("CHECKPOINT")
                let (pushes, pushSeconds, pulls, pullSeconds, left) = try await edge.reconnect()
                await edge.stop()
                try await database.client.query("CHECKPOINT")
                let baselineSeconds = try await plainRowsSeconds(database.client, batches)
                var report = BenchReport(
                    name: "catch-up (PostgreSQL)",
                    settings:
                        "\(queued) transactions queued offline at one site (\(members) members), in-process link, pushes of 500, pages of 1000, ledger on \(server) (\(context))"
                )
                report.line(
                    "queued in",
                    String(
                        format: "%.1f s (%.0f tx/s through the edge's ledger, for reference)", generation,
                        Double(transactions) / generation))
                report.line(
                    "baseline",
                    String(
                        format:
                            "%.1f s to insert the rows their postings wrote into plain PostgreSQL tables, same pushes, no logic",
                        baselineSeconds))
                report.line(
                    "pushed",
                    String(
                        format: "%.1f s (%.0f tx/s, %d pushes); %d left unacknowledged", pushSeconds,
                        Double(queued) / pushSeconds, pushes, left))
                report.line("pulled", String(format: "%.1f s (%d pages)", pullSeconds, pulls))
                report.line(
                    "figure",
                    String(format: "%.1f s until posted and the replica is current", pushSeconds + pullSeconds))
                report.line(
                    "ratio",
                    String(
                        format: "%.2f (baseline time / figure time; the PostgreSQL targets are gateway-ingest's)",
                        baselineSeconds / max(0.001, pushSeconds + pullSeconds)))
                report.line("memory", String(format: "peak %.0f MiB", Load.peakMemoryMiB))
                report.print()
            }
        }
    }
}
