import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import TestSupport
import Wire

/// Allowances in the simulation (docs/reliability.md, section 1): cars entering the car park
/// through `Parking.Enter` and leaving with their remembered ticket, guests checking in at the
/// hotel, the mall's home-site grants at each day's end, the edges' return job and the gateway's
/// reclaim job as time passes.
struct AllowanceTraffic {
    /// Cars that entered through `Parking.Enter` and have not left: ticket, member, entry instant
    /// (the car park's clock).
    var parked: [(ticket: String, member: String, entry: Int64)] = []
    /// Entries and check-ins whose answer was lost: sent again later with the same request id.
    var unanswered: [(edge: Int, kind: String, send: () async throws -> Int64)] = []
}

extension Simulation {
    /// The most floor-limit points an edge may hold unacknowledged in the simulation's program
    /// (`site_exposure_max_points`), small enough for runs to reach it.
    static let exposureMax: Int64 = 8_000

    /// The simulation's allowance rules: small and short, so that exits spend beyond them, leases
    /// end within a run, and the mall grants on `home_site` too.
    static let allowanceChanges = [
        ("  site_exposure_max_points: 200000", "  site_exposure_max_points: \(exposureMax)"),
        ("      points_max: 6000 ", "      points_max: 400 "),
        ("      lease_minutes: 1440\n", "      lease_minutes: 120\n"),
        ("      points_max: 20000\n", "      points_max: 1500\n"),
        ("      lease_minutes: 4320 ", "      lease_minutes: 300 "),
        (
            "  formats:\n    parking:\n",
            "  formats:\n    mall:\n      trigger: home_site\n      points_max: 800\n      lease_minutes: 240\n    parking:\n"
        ),
    ]

    /// A car enters the car park: the barrier asks for an allowance (the gateway may be out of
    /// reach, the answer may be lost); the car is in either way and leaves later (`park`).
    func enter() async throws -> String {
        guard let index = edges.firstIndex(where: { $0.site.rawValue == "park-01" }),
            let member = try await knownMember(at: index)
        else { return "no entry" }
        let edge = edges[index]
        var request = Coalition_Edge_V1_ParkingEnterRequest()
        request.requestID = nextRequest()
        request.ticketID = "E" + request.requestID.dropFirst("sim-".count)
        request.memberID = member
        let metadata = edge.metadata(edge.merchants[0])
        allowanceTraffic.parked.append((request.ticketID, member, edge.clock.now().milliseconds))
        return try await grant(index, "entry") {
            try await callInProcess(request, metadata: metadata, method: "Enter") {
                try await edge.parking.enter(request: $0, context: $1)
            }.allowancePoints
        }
    }

    /// A guest checks in at the hotel's front desk, which asks for an allowance.
    func checkIn() async throws -> String {
        guard let index = edges.firstIndex(where: { $0.site.rawValue == "hotel-01" }),
            let member = try await knownMember(at: index)
        else { return "no check-in" }
        let edge = edges[index]
        var request = Coalition_Edge_V1_CheckInRequest()
        request.requestID = nextRequest()
        request.memberID = member
        let metadata = edge.metadata(MerchantID("hotel-rooms")!)
        return try await grant(index, "check-in") {
            try await callInProcess(request, metadata: metadata, method: "CheckIn") {
                try await edge.points.checkIn(request: $0, context: $1)
            }.allowancePoints
        }
    }

    /// Sends a request for an allowance (or, now and then, one whose answer was lost, again). Any
    /// refusal the rules or the link explain is fine; UNKNOWN or INTERNAL is a violation.
    private func grant(_ index: Int, _ kind: String, _ send: @escaping () async throws -> Int64) async throws
        -> String
    {
        let edge = edges[index]
        if !allowanceTraffic.unanswered.isEmpty, random.chance(30) {
            let again = allowanceTraffic.unanswered.remove(
                at: Int.random(in: 0..<allowanceTraffic.unanswered.count, using: &random))
            return "\(edges[again.edge].site) \(again.kind) again: " + (await ask(again.edge, again.kind, again.send))
        }
        if random.chance(15) {
            // The gateway grants; its answer is lost: the edge learns the allowance from its pull.
            fault("lost allowance answer")
            edge.link.inject(.lostAnswer)
            allowanceTraffic.unanswered.append((index, kind, send))
        }
        defer { edge.link.clearFaults() }
        return "\(edge.site) \(kind): " + (await ask(index, kind, send))
    }

    private func ask(_ index: Int, _ kind: String, _ send: () async throws -> Int64) async -> String {
        do {
            return "allowance of \(try await send()) points"
        } catch {
            let code = status(of: error).code
            if code == nil || code == .unknown || code == .internalError {
                violation("\(edges[index].site) \(kind): answered \(code.map { "\($0)" } ?? "?"): \(error)")
            }
            return "refused (\(code.map { "\($0)" } ?? "\(error)"))"
        }
    }

    /// A member the edge at `index` knows (a card the barrier or the desk can read), mostly; now
    /// and then one it has not heard of yet.
    func knownMember(at index: Int) async throws -> String? {
        let known = Set(
            try await edges[index].ledger.database.pool.read { db in
                try String.fetchAll(db, sql: "SELECT member_id FROM members WHERE merged_into IS NULL")
            })
        // In the simulation's own order (member ids are random): a seed picks the same member every run.
        let candidates = members.filter(known.contains)
        guard !candidates.isEmpty, random.chance(90) else { return members.randomElement(using: &random) }
        return candidates.randomElement(using: &random)
    }

    /// Mostly (7 times in 10), a member with an allowance at the edge at `index` that has points left.
    func memberWithAllowance(at index: Int) async throws -> String? {
        guard random.chance(70) else { return nil }
        let now = edges[index].clock.now().milliseconds
        let holders = Set(
            try await edges[index].ledger.database.pool.read { db in
                try String.fetchAll(
                    db,
                    sql: """
                        SELECT member_id FROM members
                        WHERE allowance_id IS NOT NULL AND allowance_left > 0 AND allowance_stop_at_ms > ?
                        """, arguments: [now])
            })
        return members.filter(holders.contains).randomElement(using: &random)
    }

    /// A car that entered leaves (its ticket and entry), or nil for a car the simulation makes up.
    func leavingCar() -> (ticket: String, member: String, entry: Int64)? {
        guard !allowanceTraffic.parked.isEmpty, random.chance(70) else { return nil }
        return allowanceTraffic.parked.remove(at: Int.random(in: 0..<allowanceTraffic.parked.count, using: &random))
    }

    /// The jobs time moves: every edge gives back its allowances whose stop instant has passed
    /// (as its `allowance_check_ms` timer would), and the gateway reclaims those whose lease and
    /// margin have passed (its maintenance job).
    func allowanceJobs() async throws -> String {
        var returned = 0
        for edge in edges { returned += try await edge.ledger.returnEndedAllowances() }
        guard gateway.isUp else { return returned > 0 ? "; \(returned) allowances given back" : "" }
        let reclaimed = try await gateway.store.reclaimAllowances(limit: 1_000)
        return returned + reclaimed > 0 ? "; \(returned) allowances given back, \(reclaimed) reclaimed" : ""
    }

    /// At the end of a run: time passes beyond every lease and its margin; the edges give back
    /// what they have left and sync, the gateway reclaims the rest (allowances an edge never
    /// learnt of, or spent to nothing), and the edges sync again. Then no allowance is active, no
    /// site's escrow holds a point, and the ledger still agrees with the model and the replicas.
    func endLeases() async throws {
        let rules = model.program.allowances
        let longest = rules.formats.values.map(\.leaseMinutes).max() ?? 0
        clock.advance(milliseconds: Int64(longest + rules.reclaimMarginMinutes + 60) * 60_000)
        _ = try await allowanceJobs()
        try await quiesce()
        _ = try await allowanceJobs()
        try await quiesce()
        let sql = gateway.sql
        for row in try await sql.rows(
            "SELECT allowance_id, site_id, lease_until_ms FROM allowances WHERE status = 'active' ORDER BY allowance_id"
        ) {
            violation(
                "gateway: allowance \(row[0] ?? "") of \(row[1] ?? "") is still active after its lease (until \(row[2] ?? "")), its margin and a full sync"
            )
        }
        for row in try await sql.rows(
            "SELECT account, points FROM account_balances WHERE account LIKE 'escrow:%' AND points != 0 ORDER BY account"
        ) {
            violation("gateway: \(row[0] ?? "") holds \(row[1] ?? "") points with every allowance ended")
        }
        if report.violations.isEmpty { try await checkInvariants(after: "every lease ended") }
        if report.violations.isEmpty { try await checkConverged() }
    }

    /// Gives the reference model what it needs of allowances: the grants and reclaims the gateway
    /// made (its own transactions), and what each edge wrote of them (the part of each spend paid
    /// from an allowance, and each return), from the edges' own files, not from the gateway's
    /// reading of them.
    func recordAllowanceFacts(_ sql: LedgerSQL) async throws {
        func int(_ text: String?) -> Int64 { text.flatMap { Int64($0) } ?? 0 }
        for row in try await sql.rows(
            "SELECT allowance_id, site_id, member_id, granted_points, lease_until_ms FROM allowances")
        {
            model.record(
                row[0] ?? "",
                .grant(site: row[1] ?? "", member: row[2] ?? "", points: int(row[3]), leaseUntil: int(row[4])))
        }
        for row in try await sql.rows(
            """
            SELECT t.transaction_id, t.member_id, CAST(COALESCE((SELECT SUM(p.points) FROM postings p
                WHERE p.position = t.position AND p.account LIKE 'member:%'), 0) AS BIGINT)
            FROM transactions t WHERE t.kind = 'allowance_reclaim'
            """)
        {
            model.record(row[0] ?? "", .reclaim(member: row[1] ?? "", points: int(row[2])))
        }
        for edge in edges {
            let rows = try await edge.ledger.database.pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT o.transaction_id, o.kind, d.allowance_id, d.points FROM allowance_delta d
                        JOIN outbox o ON o.sequence = d.sequence
                        """
                ).map { row -> (String, String, String, Int64) in
                    (row[0], row[1], row[2], row[3])
                }
            }
            for (transaction, kind, allowance, delta) in rows {
                if kind == "allowance_return" {
                    model.record(transaction, .allowanceReturn(allowance: allowance, points: -delta))
                } else {
                    model.spentFromAllowance(transaction, allowance: allowance, points: -delta)
                }
            }
        }
    }

    /// The floor limits with allowances: an edge never holds more floor-limit points unacknowledged
    /// than its `site_exposure_max_points` (what an allowance paid does not count: it is no risk).
    func checkExposure(_ edge: SimulatedEdge) async throws {
        let exposure = try await edge.ledger.database.pool.read { db in
            try Int64.fetchOne(
                db,
                sql: """
                    SELECT COALESCE(SUM(-points - allowance_points), 0) FROM outbox
                    WHERE authorization = 'floor_limit' AND sequence > (SELECT acknowledged_sequence FROM sync_state)
                    """) ?? 0
        }
        report.exposure = max(report.exposure, exposure)
        if exposure > Self.exposureMax {
            violation(
                "\(edge.site): \(exposure) floor-limit points unacknowledged, over site_exposure_max_points \(Self.exposureMax)"
            )
        }
    }

    /// What allowances did in the run: grants per site, spends paid from them (and how many of
    /// those offline), points spent, returns and reclaims.
    func allowanceCounts(_ sql: LedgerSQL) async throws -> [String: Int64] {
        let rows = try await sql.rows(
            """
            SELECT 'granted at ' || site_id, COUNT(*) FROM allowances GROUP BY site_id
            UNION ALL SELECT 'points spent from them', CAST(COALESCE(SUM(spent_points), 0) AS BIGINT) FROM allowances
            UNION ALL SELECT 'returned', COUNT(*) FROM allowances WHERE status = 'returned'
            UNION ALL SELECT 'reclaimed', COUNT(*) FROM allowances WHERE status = 'reclaimed'
            UNION ALL SELECT 'reclaimed with points left', COUNT(*) FROM transactions t WHERE t.kind = 'allowance_reclaim'
              AND EXISTS (SELECT 1 FROM postings p WHERE p.position = t.position)
            """)
        var counts = Dictionary(rows.map { ($0[0] ?? "", Int64($0[1] ?? "") ?? 0) }, uniquingKeysWith: +)
        for edge in edges {
            let spends = try await edge.ledger.database.pool.read { db in
                (
                    all: try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE allowance_points > 0") ?? 0,
                    offline: try Int64.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM outbox WHERE allowance_points > 0 AND authorization != 'online'")
                        ?? 0
                )
            }
            counts["spends from them", default: 0] += spends.all
            counts["spends from them offline", default: 0] += spends.offline
        }
        return counts
    }
}
