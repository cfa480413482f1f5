import Core
import Crypto
import Foundation
import GRDB
import NodeSupport
import Synchronization

/// The refusal of a batch that reuses a transaction id: the first item whose id the ledger held
/// before the batch (below `position`) or an earlier item of the batch used.
private func reuseRefusal(_ db: Database, fresh: [PushItem], before position: Int64) throws -> SyncRefusal {
    let used = Set(
        try String.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT transaction_id FROM transactions WHERE transaction_id IN (SELECT value FROM json_each(?)) AND position < ?"
            ),
            arguments: [SQLitePosting.json(fresh.map(\.transactionID)), position]))
    var seen: Set<String> = []
    let item = fresh.first { used.contains($0.transactionID) || !seen.insert($0.transactionID).inserted }
    return SyncRefusal(
        reason: "PROTOCOL_VIOLATION",
        message:
            "sequence \(item?.sequence ?? 0): transaction id \(item?.transactionID ?? "?") was already used with other content"
    )
}

/// Posts a batch on its view. Tier spells are read only for earns stating another tier than the
/// member's; an earn that needed spells the view lacked sends the batch round again with them.
private func decide(
    _ pushed: [PushedTransaction], view first: PostingView, keys: inout PostingKeys, site: SiteID, now: Timestamp,
    catalogue: ProgramCatalogue, limits: GatewayLimits, db: Database
) throws -> (PostingEngine, [PushedResult]) {
    var view = first
    var passes = 0
    while true {
        var engine = PostingEngine(
            view: view, catalogue: catalogue, site: site, now: now,
            programGraceMilliseconds: limits.programGraceMilliseconds,
            clockSkewMaxMilliseconds: limits.clockSkewMaxMilliseconds)
        let posted = pushed.map {
            PushedResult(sequence: $0.sequence, transactionID: $0.transactionID, result: engine.post($0))
        }
        if engine.missingSpells.isEmpty { return (engine, posted) }
        // The second view has every spell the first pass asked for; a third pass would mean the
        // loader cannot give what the engine needs, which must fail loudly, not spin.
        passes += 1
        guard passes < 3 else { throw PostingViewIncomplete(missingSpells: engine.missingSpells) }
        keys.spellMembers.formUnion(engine.missingSpells)
        view = try SQLitePosting.load(db, keys: keys, catalogue: catalogue)
    }
}

/// The loaded view still lacked what the posting rules asked for after a second load: a defect of
/// the store, reported (INTERNAL, nothing applied) rather than retried for ever.
struct PostingViewIncomplete: Error, CustomStringConvertible {
    let missingSpells: Set<MemberID>
    var description: String {
        "the posting view lacked the tier history of \(missingSpells.map(\.description).sorted()) after a second load"
    }
}

/// Where the writer's time went, for benchmarks: loading views, deciding, applying effects.
package struct PostingStatistics: Sendable {
    package var pushes = 0
    /// Transactions the pushes were written in (several sites' pushes share one).
    package var commits = 0
    package var transactions = 0
    package var loading = Duration.zero
    package var deciding = Duration.zero
    package var applying = Duration.zero
    /// The protocol's checks before the view is loaded (sequence, chain, replays, ids).
    package var checking = Duration.zero

    package init() {}
}

extension SQLiteLedgerStore {
    // MARK: Push

    package func push(
        site: SiteID, batch: [PushItem], exposure: Points, sentAt: Timestamp
    ) async throws -> PushOutcome {
        let now = clock.now()
        let catalogue = programs
        let limits = self.limits
        do {
            return try await pushWriter.submit { db in
                try Self.apply(
                    db, site: site, batch: batch, exposure: exposure, sentAt: sentAt, now: now, catalogue: catalogue,
                    limits: limits, statistics: self.statistics)
            }
        } catch let refusal as SyncRefusal {
            // Nothing of the batch was applied; record the violation for an operator.
            try await database.pool.write { db in
                try SQLitePosting.flag(db, site: site, [.protocolViolation])
                try SQLitePosting.insert(
                    db,
                    ConflictEntry(
                        kind: .protocolViolation, site: site, transactionID: nil, member: nil,
                        resolution: "batch refused, site flagged", detail: refusal.message), at: now)
            }
            throw refusal
        }
    }

    /// One push inside the group transaction: the protocol's checks (sequence, chain, replays), then
    /// the posting rules on the batch's view, then their effects.
    private static func apply(
        _ db: Database, site: SiteID, batch items: [PushItem], exposure: Points, sentAt: Timestamp,
        now clock: Timestamp, catalogue: ProgramCatalogue, limits: GatewayLimits,
        statistics: borrowing Mutex<PostingStatistics>
    ) throws -> PushOutcome {
        let start = ContinuousClock.now
        let now = try LedgerWriter(db: db).postingInstant(clock)
        try db.cachedStatement(
            sql: "INSERT INTO sites (site_id, last_hash) VALUES (?, ?) ON CONFLICT (site_id) DO NOTHING"
        ).execute(arguments: [site.rawValue, Data(count: 32)])
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT high_water_mark, last_hash, flags FROM sites WHERE site_id = ?"),
                arguments: [site.rawValue])
        else { preconditionFailure("site row vanished") }
        let highWater: Int64 = row["high_water_mark"]
        var previousHash: Data = row["last_hash"]
        try db.cachedStatement(sql: "UPDATE sites SET last_seen_at_ms = ? WHERE site_id = ?")
            .execute(arguments: [now.milliseconds, site.rawValue])
        // The site's exposure figure is taken from a push that carries its current state (new
        // transactions, or none): a replayed old push carries an old figure and changes nothing.
        let exposureUpdate = try db.cachedStatement(
            sql: "UPDATE sites SET unsynced_exposure_points = ? WHERE site_id = ?")
        guard let first = items.first?.sequence else {
            try exposureUpdate.execute(arguments: [exposure.value, site.rawValue])
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
            for row in try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT site_sequence, transaction_id, previous_hash, payload, outbox_occurred_at_ms, outcome, reason,
                            posted_points FROM transactions WHERE site_id = ? AND site_sequence BETWEEN ? AND ?
                        """),
                arguments: [site.rawValue, first, last])
            {
                stored[row["site_sequence"]] = PushChecks.Stored(
                    transactionID: row["transaction_id"], previousHash: row["previous_hash"], payload: row["payload"],
                    occurredAtMilliseconds: row["outbox_occurred_at_ms"],
                    result: PostingResult(
                        outcome: PostingResult.Outcome(rawValue: row["outcome"]) ?? .rejected, reason: row["reason"],
                        points: Points(row["posted_points"])))
            }
            (results, previousHash) = try PushChecks.replayed(replayed, stored: stored, head: previousHash)
        }
        // A batch wholly below the high-water mark (an old batch replayed) changes neither the
        // mark nor the chain head: its last hash is not the head.
        let fresh = items.dropFirst(replayed.count)
        guard !fresh.isEmpty else {
            return PushOutcome(status: .alreadyApplied, highWaterMark: highWater, results: results)
        }
        try exposureUpdate.execute(arguments: [exposure.value, site.rawValue])
        // The chain. Transaction ids never used before (by any site) are checked by the ledger's
        // unique index when the batch is written (`reuseRefusal`).
        let outbox: [Int64: SQLitePosting.Outbox]
        (outbox, previousHash) = try PushChecks.chained(fresh, head: previousHash)
        // The posting rules decide on the batch's view; the effects are written as they are.
        let pushed = fresh.map(\.pushed)
        let t0 = ContinuousClock.now
        var keys = PostingEngine.keys(for: pushed, catalogue: catalogue, now: now)
        keys.site = site
        var t1 = ContinuousClock.now
        var t2 = t1
        var effects: PostingEffects
        var firstPosition: Int64
        while true {
            // Receipts claimed before the batch are read only when the batch turns out to reuse one
            // (the ledger's unique index says so when the effects are written): a batch of new
            // receipts, the usual case, reads none.
            let view = try SQLitePosting.load(db, keys: keys, catalogue: catalogue)
            firstPosition = view.position + 1
            t1 = ContinuousClock.now
            let (engine, posted) = try decide(
                pushed, view: view, keys: &keys, site: site, now: now, catalogue: catalogue, limits: limits, db: db)
            effects = engine.finish()
            // The edge's clock is kept for audit but ordering is by posting; a large skew is flagged.
            let skew = sentAt.milliseconds.subtractingReportingOverflow(clock.milliseconds).partialValue.magnitude
            if skew > limits.clockSkewMaxMilliseconds.magnitude,
                !(row["flags"] as String).contains(SiteFlag.clockSkew.rawValue)
            {
                effects.flags.insert(.clockSkew)
                effects.conflicts.append(
                    ConflictEntry(
                        kind: .clockSkew, site: site, transactionID: fresh.last?.transactionID, member: nil,
                        resolution: "occurred_at kept; ordered by posting",
                        detail: "edge clock differs by \(skew / 1000) s"))
            }
            t2 = ContinuousClock.now
            do {
                try db.inSavepoint {
                    try SQLitePosting.apply(db, effects, outbox: outbox, now: now)
                    return .commit
                }
                results += posted
                break
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                if error.message?.contains("transactions.transaction_id") == true {
                    throw try reuseRefusal(db, fresh: Array(fresh), before: firstPosition)
                }
                guard error.message?.contains("transactions.receipt") == true, !keys.claimedReceipts else {
                    throw error
                }
                keys.claimedReceipts = true
            }
        }
        let t3 = ContinuousClock.now
        statistics.withLock {
            $0.pushes += 1
            $0.transactions += pushed.count
            $0.loading += t1 - t0
            $0.deciding += t2 - t1
            $0.applying += t3 - t2
            $0.checking += t0 - start
        }
        try SQLitePosting.flag(db, site: site, effects.flags)
        let newHighWater = max(highWater, items.last?.sequence ?? 0)
        let newest = items.map(\.occurredAtMilliseconds).max() ?? 0
        try db.cachedStatement(
            sql:
                "UPDATE sites SET high_water_mark = ?, last_hash = ?, last_push_at_ms = ?, newest_occurred_at_ms = MAX(COALESCE(newest_occurred_at_ms, 0), ?) WHERE site_id = ?"
        ).execute(arguments: [newHighWater, previousHash, now.milliseconds, newest, site.rawValue])
        return PushOutcome(status: .applied, highWaterMark: newHighWater, results: results)
    }
}
