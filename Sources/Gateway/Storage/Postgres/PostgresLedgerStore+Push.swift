import Core
import Foundation
import Logging
import NodeSupport
import PostgresNIO
import Synchronization

extension PostgresLedgerStore {
    // MARK: Push

    package func push(
        site: SiteID, batch: [PushItem], exposure: Points, sentAt: Timestamp
    ) async throws -> PushOutcome {
        let now = clock.now()
        do {
            return try await transaction("posting a push") { connection in
                try await self.apply(connection, site: site, batch: batch, exposure: exposure, sentAt: sentAt, now: now)
            }
        } catch let refusal as SyncRefusal {
            // Nothing of the batch was applied; record the violation for an operator.
            try await transaction("recording a refused push") { [logger] connection in
                try await PostgresPosting.flag(connection, site: site, [.protocolViolation], logger)
                try await PostgresPosting.insert(
                    connection,
                    ConflictEntry(
                        kind: .protocolViolation, site: site, transactionID: nil, member: nil,
                        resolution: "batch refused, site flagged", detail: refusal.message), at: now, logger)
            }
            throw refusal
        }
    }

    /// One push in its own transaction: the site's row locked (a retry of the same batch at another
    /// gateway waits, then finds it applied), the protocol's checks, the members locked in sorted
    /// order, a block of positions claimed, the posting rules on the batch's view, their effects.
    private func apply(
        _ connection: PostgresConnection, site: SiteID, batch items: [PushItem], exposure: Points, sentAt: Timestamp,
        now: Timestamp
    ) async throws -> PushOutcome {
        let start = ContinuousClock.now
        let catalogue = try await currentPrograms(connection)
        try await connection.run(
            """
            INSERT INTO sites (site_id, last_hash) VALUES (\(site.rawValue), \(Data(count: 32)))
            ON CONFLICT (site_id) DO NOTHING
            """, logger)
        guard
            let row = try await connection.rows(
                "SELECT high_water_mark, last_hash, flags FROM sites WHERE site_id = \(site.rawValue) FOR UPDATE",
                logger
            ).first
        else { preconditionFailure("site row vanished") }
        let highWater = try row.int("high_water_mark")
        var previousHash = try row.bytes("last_hash")
        let flags = try row.text("flags")
        try await connection.run(
            "UPDATE sites SET last_seen_at_ms = \(now.milliseconds) WHERE site_id = \(site.rawValue)", logger)
        // The site's exposure figure is taken from a push that carries its current state (new
        // transactions, or none): a replayed old push carries an old figure and changes nothing.
        let setExposure: PostgresQuery =
            "UPDATE sites SET unsynced_exposure_points = \(exposure.value) WHERE site_id = \(site.rawValue)"
        guard let first = items.first?.sequence else {
            try await connection.run(setExposure, logger)
            return PushOutcome(status: .applied, highWaterMark: highWater, results: [])
        }
        guard first <= highWater + 1 else {
            return PushOutcome(status: .resendFrom(highWater + 1), highWaterMark: highWater, results: [])
        }
        // A range already applied must match byte for byte.
        var results: [PushedResult] = []
        let replayed = items.prefix { $0.sequence <= highWater }
        if let last = replayed.last?.sequence {
            var stored: [Int64: PushChecks.Stored] = [:]
            for row in try await connection.rows(
                """
                SELECT site_sequence, transaction_id, previous_hash, payload, outbox_occurred_at_ms, outcome, reason,
                    posted_points FROM transactions
                WHERE site_id = \(site.rawValue) AND site_sequence BETWEEN \(first) AND \(last)
                """, logger)
            {
                stored[try row.int("site_sequence")] = PushChecks.Stored(
                    transactionID: try row.text("transaction_id"), previousHash: try row.bytes("previous_hash"),
                    payload: try row.bytes("payload"), occurredAtMilliseconds: try row.int("outbox_occurred_at_ms"),
                    result: PostingResult(
                        outcome: PostingResult.Outcome(rawValue: try row.text("outcome")) ?? .rejected,
                        reason: try row.text("reason"), points: Points(try row.int("posted_points"))))
            }
            (results, previousHash) = try PushChecks.replayed(replayed, stored: stored, head: previousHash)
        }
        let fresh = items.dropFirst(replayed.count)
        guard !fresh.isEmpty else {
            return PushOutcome(status: .alreadyApplied, highWaterMark: highWater, results: results)
        }
        try await connection.run(setExposure, logger)
        let outbox: [Int64: SQLitePosting.Outbox]
        (outbox, previousHash) = try PushChecks.chained(fresh, head: previousHash)
        let pushed = fresh.map(\.pushed)
        let t0 = ContinuousClock.now
        var keys = PostingEngine.keys(for: pushed, catalogue: catalogue, now: now)
        keys.site = site
        let skew = sentAt.milliseconds.subtractingReportingOverflow(now.milliseconds).partialValue.magnitude
        let posting = try await post(
            connection, pushed: pushed, keys: keys, site: site, now: now, catalogue: catalogue, outbox: outbox,
            flagSkew: skew > limits.clockSkewMaxMilliseconds.magnitude && !flags.contains(SiteFlag.clockSkew.rawValue)
                ? (fresh.last?.transactionID, skew) : nil)
        results += posting.results
        let t3 = ContinuousClock.now
        statistics.withLock {
            $0.pushes += 1
            $0.transactions += pushed.count
            $0.loading += posting.loading
            $0.deciding += posting.deciding
            $0.applying += (t3 - t0) - posting.loading - posting.deciding
            $0.checking += t0 - start
        }
        try await PostgresPosting.flag(connection, site: site, posting.flags, logger)
        let newHighWater = max(highWater, items.last?.sequence ?? 0)
        let newest = items.map(\.occurredAtMilliseconds).max() ?? 0
        try await connection.run(
            """
            UPDATE sites SET high_water_mark = \(newHighWater), last_hash = \(previousHash),
                last_push_at_ms = \(now.milliseconds),
                newest_occurred_at_ms = GREATEST(COALESCE(newest_occurred_at_ms, 0), \(newest))
            WHERE site_id = \(site.rawValue)
            """, logger)
        return PushOutcome(status: .applied, highWaterMark: newHighWater, results: results)
    }

    private struct Posted {
        var results: [PushedResult]
        var flags: Set<SiteFlag>
        var loading: Duration
        var deciding: Duration
    }

    /// Locks, claims, decides and writes a batch's fresh transactions. Members are locked in sorted
    /// order before the view they are read into; a view that names members not yet locked (a merge
    /// target, a referrer, a phone's owner) locks them and is read again. Positions are claimed only
    /// once every member is locked, so a member's positions rise in commit order.
    private func post(
        _ connection: PostgresConnection, pushed: [PushedTransaction], keys initial: PostingKeys, site: SiteID,
        now: Timestamp, catalogue: ProgramCatalogue, outbox: [Int64: SQLitePosting.Outbox],
        flagSkew: (transaction: String?, skew: UInt64)?
    ) async throws -> Posted {
        var keys = initial
        var locked: Set<MemberID> = []
        var claim: PostgresPositions.Claim?
        let count = Int64(8 * pushed.count + 64)
        var loading = Duration.zero
        var deciding = Duration.zero
        do {
            while true {
                let t0 = ContinuousClock.now
                var view: PostingView
                var wanted = keys.members
                repeat {
                    try await lock(members: wanted.subtracting(locked), connection)
                    locked.formUnion(wanted)
                    view = try await PostgresPosting.load(connection, keys: keys, catalogue: catalogue, logger: logger)
                    wanted = Set(view.members.keys).union(view.phoneOwners.values)
                } while !wanted.isSubset(of: locked)
                if claim == nil {
                    claim = try await PostgresPositions.claim(database.claims, count: count, now: now, logger: logger)
                }
                guard let first = claim?.first, let instant = claim?.instant else { preconditionFailure("no claim") }
                // The batch posts at the claim's instant: read again if that puts its members'
                // qualifying windows elsewhere than the view read them.
                let windows = PostingEngine.keys(for: pushed, catalogue: catalogue, now: instant).windowStarts
                if windows != keys.windowStarts {
                    keys.windowStarts = windows
                    continue
                }
                view.position = first - 1
                view.lotNumber = first - 1
                let t1 = ContinuousClock.now
                loading += t1 - t0
                var (effects, results) = try await decide(
                    pushed, view: view, keys: &keys, site: site, now: instant, catalogue: catalogue, connection)
                // Budgeted promotions the batch gives bonus from: their rows locked and read again,
                // and the batch decided again if another gateway gave from them since the view.
                let promotions = Array(effects.promotionsGiven.keys)
                if !promotions.isEmpty {
                    let current = try await PostgresPosting.promotionsGiven(connection, logger, locking: promotions)
                    // The site's quota holdings too: an issue changes them under the same locks.
                    var quotas = view
                    try await PostgresPosting.loadQuotas(connection, site: site, into: &quotas, logger)
                    if promotions.contains(where: { current[$0] != view.promotionsGiven[$0] })
                        || quotas.promotionQuotas != view.promotionQuotas
                    {
                        view.promotionsGiven.merge(current) { _, new in new }
                        view.promotionQuotas = quotas.promotionQuotas
                        (effects, results) = try await decide(
                            pushed, view: view, keys: &keys, site: site, now: instant, catalogue: catalogue, connection)
                    }
                }
                guard effects.position < first + count, effects.lotNumber < first + count else {
                    throw PostgresLedgerError(
                        "a batch of \(pushed.count) transactions took more than the \(count) positions it claimed")
                }
                if let flagSkew {
                    effects.flags.insert(.clockSkew)
                    effects.conflicts.append(
                        ConflictEntry(
                            kind: .clockSkew, site: site, transactionID: flagSkew.transaction, member: nil,
                            resolution: "occurred_at kept; ordered by posting",
                            detail: "edge clock differs by \(flagSkew.skew / 1000) s"))
                }
                deciding += ContinuousClock.now - t1
                try await connection.run("SAVEPOINT apply", logger)
                do {
                    try await PostgresPosting.apply(connection, effects, outbox: outbox, now: instant, logger: logger)
                    try await connection.run("RELEASE SAVEPOINT apply", logger)
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                    try await connection.run("ROLLBACK TO SAVEPOINT apply", logger)
                    let constraint = error.serverInfo?[.constraintName] ?? ""
                    if constraint == "transactions_transaction_id_key" {
                        throw try await reuseRefusal(connection, pushed: pushed)
                    }
                    guard constraint == "transactions_by_receipt", !keys.claimedReceipts else { throw error }
                    // Receipts claimed before are read only when the batch reuses one.
                    keys.claimedReceipts = true
                    continue
                }
                try await PostgresPositions.endClaim(first, connection, logger: logger)
                return Posted(results: results, flags: effects.flags, loading: loading, deciding: deciding)
            }
        } catch {
            if let claim { await PostgresPositions.abandon(claim.first, database.claims, logger: logger) }
            throw error
        }
    }

    /// Locks member rows in sorted order (every transaction takes them in one order).
    func lock(members: Set<MemberID>, _ connection: PostgresConnection) async throws {
        guard !members.isEmpty else { return }
        try await connection.run(
            """
            SELECT member_id FROM members WHERE member_id = ANY(\(members.map(\.description).sorted()))
            ORDER BY member_id FOR UPDATE
            """, logger)
    }

    /// Posts a batch on its view; an earn that needed tier spells the view lacked reads them and
    /// sends the batch round again (as the SQLite store does).
    private func decide(
        _ pushed: [PushedTransaction], view first: PostingView, keys: inout PostingKeys, site: SiteID, now: Timestamp,
        catalogue: ProgramCatalogue, _ connection: PostgresConnection
    ) async throws -> (PostingEffects, [PushedResult]) {
        var view = first
        for _ in 0..<3 {
            var engine = PostingEngine(
                view: view, catalogue: catalogue, site: site, now: now,
                programGraceMilliseconds: limits.programGraceMilliseconds,
                clockSkewMaxMilliseconds: limits.clockSkewMaxMilliseconds)
            let posted = pushed.map {
                PushedResult(sequence: $0.sequence, transactionID: $0.transactionID, result: engine.post($0))
            }
            if engine.missingSpells.isEmpty { return (engine.finish(), posted) }
            keys.spellMembers.formUnion(engine.missingSpells)
            var reloaded = try await PostgresPosting.load(connection, keys: keys, catalogue: catalogue, logger: logger)
            reloaded.position = first.position
            reloaded.lotNumber = first.lotNumber
            reloaded.promotionsGiven = first.promotionsGiven
            view = reloaded
        }
        throw PostingViewIncomplete(missingSpells: keys.spellMembers)
    }

    /// The refusal of a batch that reuses a transaction id already in the ledger, or twice.
    private func reuseRefusal(_ connection: PostgresConnection, pushed: [PushedTransaction]) async throws
        -> SyncRefusal
    {
        var used: Set<String> = []
        for row in try await connection.rows(
            "SELECT transaction_id FROM transactions WHERE transaction_id = ANY(\(pushed.map(\.transactionID)))", logger
        ) {
            used.insert(try row.text("transaction_id"))
        }
        var seen: Set<String> = []
        let item = pushed.first { used.contains($0.transactionID) || !seen.insert($0.transactionID).inserted }
        return SyncRefusal(
            reason: "PROTOCOL_VIOLATION",
            message:
                "sequence \(item?.sequence ?? 0): transaction id \(item?.transactionID ?? "?") was already used with other content"
        )
    }
}
