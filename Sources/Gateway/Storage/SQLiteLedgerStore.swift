import Core
import Crypto
import Foundation
import GRDB
import Synchronization
import Wire

/// The ledger on one SQLite file: single writer, so positions commit in order and every page
/// an edge pulls is below the commit point by construction.
package final class SQLiteLedgerStore: LedgerStore {
    package let database: GatewayDatabase
    private let clock: any WallClock
    private let limits: GatewayLimits
    private let catalogue: Mutex<ProgramCatalogue>

    /// Opens the store and loads the published programs.
    package init(database: GatewayDatabase, clock: any WallClock, limits: GatewayLimits) throws {
        self.database = database
        self.clock = clock
        self.limits = limits
        let rows = try database.pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT version, document, effective_at_ms FROM program_versions ORDER BY version"
            )
            .map { row -> (Int64, Data, Int64) in (row["version"], row["document"], row["effective_at_ms"]) }
        }
        var versions: [ProgramCatalogue.Version] = []
        for (version, document, effective) in rows {
            versions.append(
                ProgramCatalogue.Version(
                    version: version, effectiveAt: Timestamp(milliseconds: effective),
                    program: try ProgramDocumentParser.load(Array(document))))
        }
        catalogue = Mutex(ProgramCatalogue(versions: versions))
    }

    /// The programs published so far.
    package var programs: ProgramCatalogue { catalogue.withLock { $0 } }

    /// The store's current instant (the injected clock).
    package var clockNow: Timestamp { clock.now() }

    /// Validates and publishes a program document as the next version, unless it is byte for byte
    /// the latest one. Returns the version in force after the call.
    @discardableResult
    package func publish(document: [UInt8], effectiveAt: Timestamp? = nil, by publisher: String) throws -> Int64 {
        let program = try ProgramDocumentParser.load(document)
        let now = clock.now()
        let hash = SHA256.hash(data: document).map { String(format: "%02x", $0) }.joined()
        let version: Int64 = try database.pool.write { db in
            if let latest = try Row.fetchOne(
                db, sql: "SELECT version, sha256 FROM program_versions ORDER BY version DESC LIMIT 1"),
                (latest["sha256"] as String) == hash
            {
                return latest["version"]
            }
            let next = (try Int64.fetchOne(db, sql: "SELECT MAX(version) FROM program_versions") ?? 0) + 1
            let position = try LedgerWriter(db: db).nextPosition()
            try db.cachedStatement(
                sql:
                    "INSERT INTO program_versions (version, document, sha256, effective_at_ms, published_at_ms, published_by, changed_position) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [
                next, Data(document), hash, (effectiveAt ?? now).milliseconds, now.milliseconds, publisher, position,
            ])
            return next
        }
        catalogue.withLock { catalogue in
            if !catalogue.versions.contains(where: { $0.version == version }) {
                catalogue.versions.append(
                    ProgramCatalogue.Version(version: version, effectiveAt: effectiveAt ?? now, program: program))
            }
        }
        return version
    }

    // MARK: Sites

    package func siteStatus(_ site: SiteID) async throws -> SiteRecord? {
        guard let program = programs.latest?.program, program.site(site) != nil else { return nil }
        @Sendable func record(_ db: Database) throws -> SiteRecord? {
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT status, high_water_mark, flags FROM sites WHERE site_id = ?"),
                arguments: [site.rawValue]
            )
            .map { row in
                SiteRecord(
                    site: site, revoked: (row["status"] as String) == "revoked", highWaterMark: row["high_water_mark"],
                    flags: (row["flags"] as String).split(separator: ",").map(String.init))
            }
        }
        // Every sync call asks this: a read, and a write only on the site's first contact.
        if let known = try await database.pool.read({ db in try record(db) }) { return known }
        return try await database.pool.write { db in
            try db.cachedStatement(
                sql: "INSERT INTO sites (site_id, last_hash) VALUES (?, ?) ON CONFLICT (site_id) DO NOTHING"
            ).execute(arguments: [site.rawValue, Data(count: 32)])
            guard let created = try record(db) else { preconditionFailure("site row vanished") }
            return created
        }
    }

    package func isRevoked(serial: String) async throws -> Bool {
        try await database.pool.read { db in
            try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT 1 FROM revoked_certificates WHERE serial = ?"), arguments: [serial])
                ?? false
        }
    }

    /// Revokes or reinstates a site.
    package func setSite(_ site: SiteID, revoked: Bool) async throws {
        try await database.pool.write { db in
            try db.cachedStatement(
                sql:
                    "INSERT INTO sites (site_id, last_hash, status) VALUES (?, ?, ?) ON CONFLICT (site_id) DO UPDATE SET status = excluded.status"
            ).execute(arguments: [site.rawValue, Data(count: 32), revoked ? "revoked" : "active"])
        }
    }

    /// Revokes one certificate by serial number.
    package func revokeCertificate(serial: String, reason: String) async throws {
        let now = clock.now()
        try await database.pool.write { db in
            try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO revoked_certificates (serial, revoked_at_ms, reason) VALUES (?, ?, ?)"
            ).execute(arguments: [serial, now.milliseconds, reason])
        }
    }

    /// A conflict the posting rules found, as operators list them.
    package struct ConflictRecord: Sendable, Equatable {
        package var kind: String
        package var site: String?
        package var transaction: String?
        package var member: String?
        package var resolution: String
        package var points: Int64
        package var detectedAt: Timestamp
        package var detail: String
    }

    /// Conflicts in the order they were found, optionally of one site or kind.
    package func conflicts(site: SiteID? = nil, kind: String? = nil, limit: Int = 1_000) async throws
        -> [ConflictRecord]
    {
        try await database.pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT kind, site_id, transaction_id, member_id, resolution, points, detected_at_ms, detail FROM conflicts
                        WHERE (? IS NULL OR site_id = ?) AND (? IS NULL OR kind = ?) ORDER BY conflict_id LIMIT ?
                        """),
                arguments: [site?.rawValue, site?.rawValue, kind, kind, limit]
            ).map { row in
                ConflictRecord(
                    kind: row["kind"], site: row["site_id"], transaction: row["transaction_id"],
                    member: row["member_id"],
                    resolution: row["resolution"], points: row["points"],
                    detectedAt: Timestamp(milliseconds: row["detected_at_ms"]),
                    detail: row["detail"])
            }
        }
    }

    // MARK: Push

    package func push(
        site: SiteID, batch: [PushItem], exposure: Points, sentAt: Timestamp
    ) async throws -> PushOutcome {
        let now = clock.now()
        let catalogue = programs
        let limits = self.limits
        do {
            return try await database.pool.write { db in
                try Self.apply(
                    db, site: site, batch: batch, exposure: exposure, sentAt: sentAt, now: now, catalogue: catalogue,
                    limits: limits)
            }
        } catch let refusal as SyncRefusal {
            // Nothing of the batch was applied; record the violation for an operator.
            try await database.pool.write { db in
                let writer = LedgerWriter(db: db)
                try writer.flag(site, .protocolViolation)
                try writer.conflict(
                    .protocolViolation, site: site, transaction: nil, member: nil,
                    resolution: "batch refused, site flagged", at: now, detail: refusal.message)
            }
            throw refusal
        }
    }

    private static func apply(
        _ db: Database, site: SiteID, batch items: [PushItem], exposure: Points, sentAt: Timestamp,
        now: Timestamp, catalogue: ProgramCatalogue, limits: GatewayLimits
    ) throws -> PushOutcome {
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
        let writer = LedgerWriter(db: db)
        let batch = items.map(\.transaction)
        try db.cachedStatement(
            sql: "UPDATE sites SET last_seen_at_ms = ?, unsynced_exposure_points = ? WHERE site_id = ?"
        ).execute(arguments: [now.milliseconds, exposure.value, site.rawValue])
        guard let first = batch.first?.sequence else {
            return PushOutcome(status: .applied, highWaterMark: highWater, results: [])
        }
        guard Int64(first) <= highWater + 1 else {
            return PushOutcome(status: .resendFrom(highWater + 1), highWaterMark: highWater, results: [])
        }
        // A range already applied must match byte for byte.
        var results: [Coalition_Sync_V1_TransactionResult] = []
        var fresh = 0
        for item in items {
            let transaction = item.transaction
            let sequence = Int64(transaction.sequence)
            if sequence <= highWater {
                guard
                    let stored = try Row.fetchOne(
                        db.cachedStatement(
                            sql:
                                "SELECT transaction_id, previous_hash, payload, occurred_at_ms, outcome, reason, posted_points FROM site_transactions WHERE site_id = ? AND sequence = ?"
                        ),
                        arguments: [site.rawValue, sequence])
                else { preconditionFailure("a sequence below the high-water mark is missing") }
                guard (stored["transaction_id"] as String) == transaction.transactionID,
                    (stored["previous_hash"] as Data) == transaction.previousHash,
                    (stored["payload"] as Data) == transaction.payload,
                    (stored["occurred_at_ms"] as Int64) == transaction.occurredAtMs
                else {
                    throw SyncRefusal(
                        reason: "PROTOCOL_VIOLATION",
                        message: "sequence \(sequence) differs from the transaction already applied")
                }
                results.append(
                    Self.result(
                        sequence: sequence, id: transaction.transactionID, outcome: stored["outcome"],
                        reason: stored["reason"], points: stored["posted_points"]))
                previousHash = Data(SHA256.hash(data: transaction.payload))
                continue
            }
            fresh += 1
            guard transaction.previousHash == previousHash else {
                throw SyncRefusal(
                    reason: "PROTOCOL_VIOLATION",
                    message: "sequence \(sequence): previous_hash does not match the chain")
            }
            if try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT 1 FROM site_transactions WHERE transaction_id = ?"),
                arguments: [transaction.transactionID]) == true
            {
                throw SyncRefusal(
                    reason: "PROTOCOL_VIOLATION",
                    message:
                        "sequence \(sequence): transaction id \(transaction.transactionID) was already used with other content"
                )
            }
            let result: PostingResult
            if let local = item.local, local.transactionID == transaction.transactionID {
                let poster = Poster(
                    writer: writer, catalogue: catalogue, site: site, now: now,
                    programGraceMilliseconds: limits.programGraceMilliseconds,
                    clockSkewMaxMilliseconds: limits.clockSkewMaxMilliseconds)
                result = try poster.apply(local, sequence: sequence)
            } else {
                try writer.conflict(
                    .rejected, site: site, transaction: transaction.transactionID, member: nil,
                    resolution: "rejected: malformed", at: now,
                    detail: "the payload does not decode or names another transaction")
                result = PostingResult(outcome: .rejected, reason: RejectionReason.malformed.rawValue, points: .zero)
            }
            try db.cachedStatement(
                sql:
                    "INSERT INTO site_transactions (site_id, sequence, transaction_id, previous_hash, payload, occurred_at_ms, outcome, reason, posted_points) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [
                site.rawValue, sequence, transaction.transactionID, transaction.previousHash, transaction.payload,
                transaction.occurredAtMs,
                result.outcome.rawValue, result.reason, result.points.value,
            ])
            results.append(
                Self.result(
                    sequence: sequence, id: transaction.transactionID, outcome: result.outcome.rawValue,
                    reason: result.reason, points: result.points.value))
            previousHash = Data(SHA256.hash(data: transaction.payload))
        }
        // A batch wholly below the high-water mark (an old batch replayed) changes neither the
        // mark nor the chain head: its last hash is not the head.
        guard fresh > 0 else { return PushOutcome(status: .alreadyApplied, highWaterMark: highWater, results: results) }
        let newHighWater = max(highWater, Int64(batch.last?.sequence ?? 0))
        let newest = batch.map(\.occurredAtMs).max() ?? 0
        try db.cachedStatement(
            sql:
                "UPDATE sites SET high_water_mark = ?, last_hash = ?, last_push_at_ms = ?, newest_occurred_at_ms = MAX(COALESCE(newest_occurred_at_ms, 0), ?) WHERE site_id = ?"
        ).execute(arguments: [newHighWater, previousHash, now.milliseconds, newest, site.rawValue])
        // The edge's clock is kept for audit but ordering is by posting; a large skew is flagged.
        let skew = abs(sentAt.milliseconds - now.milliseconds)
        if skew > limits.clockSkewMaxMilliseconds, !(row["flags"] as String).contains(SiteFlag.clockSkew.rawValue) {
            try writer.flag(site, .clockSkew)
            try writer.conflict(
                .clockSkew, site: site, transaction: batch.last?.transactionID, member: nil,
                resolution: "occurred_at kept; ordered by posting", at: now,
                detail: "edge clock differs by \(skew / 1000) s")
        }
        return PushOutcome(status: .applied, highWaterMark: newHighWater, results: results)
    }

    private static func result(sequence: Int64, id: String, outcome: String, reason: String, points: Int64)
        -> Coalition_Sync_V1_TransactionResult
    {
        var result = Coalition_Sync_V1_TransactionResult()
        result.sequence = UInt64(sequence)
        result.transactionID = id
        switch outcome {
        case "posted": result.outcome = .posted
        case "posted_with_conflict": result.outcome = .postedWithConflict
        default: result.outcome = .rejected
        }
        result.reason = reason
        result.postedPoints = points
        return result
    }

    // MARK: Pull

    package func pull(site: SiteID, cursor: Int64, pageSize: Int) async throws -> Coalition_Sync_V1_PullResponse {
        let catalogue = programs
        let now = clock.now()
        return try await database.pool.read { db in
            let highWater =
                try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT high_water_mark FROM sites WHERE site_id = ?"),
                    arguments: [site.rawValue]) ?? 0
            // Up to pageSize + 1 of each kind after the cursor, merged in position order.
            let changes = try Self.changes(
                db, condition: "changed_position > ?", argument: cursor, limit: pageSize + 1, siteHighWater: highWater,
                catalogue: catalogue, now: now)
            var response = Coalition_Sync_V1_PullResponse()
            if changes.count <= pageSize {
                response.changes = changes
            } else {
                // One position can change several rows (a referral touches two members, a merge a
                // member and a merge record). A page never ends inside a position: the cursor is a
                // position, and rows after it at the same position would be skipped for good.
                let boundary = changes[pageSize].position
                response.changes = changes.filter { $0.position < boundary }
                if response.changes.isEmpty {
                    // More rows share one position than a page holds (a handful at most): send them all.
                    response.changes = try Self.changes(
                        db, condition: "changed_position = ?", argument: Int64(boundary), limit: nil,
                        siteHighWater: highWater, catalogue: catalogue,
                        now: now)
                }
                response.hasMore_p = true
            }
            response.nextCursor = response.changes.last?.position ?? UInt64(max(0, cursor))
            response.siteHighWaterMark = UInt64(highWater)
            if let program = catalogue.latest?.program {
                let left = PromotionBudgets.left(program, given: try LedgerWriter(db: db).promotionsGiven())
                response.promotionBudgets = left.sorted { $0.key.rawValue < $1.key.rawValue }.map { id, points in
                    var budget = Coalition_Sync_V1_PromotionBudget()
                    budget.promotionID = id.rawValue
                    budget.pointsLeft = points.value
                    return budget
                }
            }
            return response
        }
    }

    /// The member, program and merge changes whose `changed_position` meets `condition`, at most
    /// `limit` of each kind, in position order.
    private static func changes(
        _ db: Database, condition: String, argument: Int64, limit: Int?, siteHighWater: Int64,
        catalogue: ProgramCatalogue, now: Timestamp
    ) throws -> [Coalition_Sync_V1_Change] {
        // Two shapes of statement (after a cursor, at one position), each prepared once; a
        // negative LIMIT is no limit.
        let order = "ORDER BY changed_position LIMIT ?"
        let arguments: StatementArguments = [argument, limit ?? -1]
        var changes: [Coalition_Sync_V1_Change] = []
        for row in try Row.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM members WHERE merged_into IS NULL AND \(condition) \(order)"),
            arguments: arguments)
        {
            var change = Coalition_Sync_V1_Change()
            change.position = UInt64(row["changed_position"] as Int64)
            change.member = try snapshot(db, row, siteHighWater: siteHighWater, catalogue: catalogue, now: now)
            changes.append(change)
        }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT version, document, effective_at_ms, changed_position FROM program_versions WHERE \(condition) \(order)"
            ),
            arguments: arguments)
        {
            var change = Coalition_Sync_V1_Change()
            change.position = UInt64(row["changed_position"] as Int64)
            var program = Coalition_Sync_V1_ProgramVersion()
            program.version = row["version"]
            program.document = row["document"]
            program.effectiveAtMs = row["effective_at_ms"]
            change.program = program
            changes.append(change)
        }
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT from_member, into_member, changed_position FROM merges WHERE \(condition) \(order)"),
            arguments: arguments)
        {
            var change = Coalition_Sync_V1_Change()
            change.position = UInt64(row["changed_position"] as Int64)
            var merge = Coalition_Sync_V1_MemberMerge()
            merge.fromMemberID = row["from_member"]
            merge.intoMemberID = row["into_member"]
            change.merge = merge
            changes.append(change)
        }
        // Stable: within one position, members before programs before merges.
        return changes.enumerated().sorted { ($0.element.position, $0.offset) < ($1.element.position, $1.offset) }.map(
            \.element)
    }

    private static func snapshot(
        _ db: Database, _ row: Row, siteHighWater: Int64, catalogue: ProgramCatalogue, now: Timestamp
    ) throws -> Coalition_Sync_V1_MemberSnapshot {
        let id: String = row["member_id"]
        guard let member = MemberID(id) else { preconditionFailure("a stored member id is malformed") }
        let writer = LedgerWriter(db: db)
        var snapshot = Coalition_Sync_V1_MemberSnapshot()
        snapshot.memberID = id
        snapshot.phoneHash = row["phone_hash"] ?? Data()
        snapshot.cardNumber = row["card_number"] ?? ""
        snapshot.tier = row["tier"]
        // The ledger balance, not balance minus holds: a hold that expires or is released changes
        // no posting and republishes nothing, so a snapshot net of holds would stay low for good.
        // Holds are enforced where they are placed, by online authorisation.
        snapshot.balancePoints = max(0, try writer.balance(.member(member)).value)
        snapshot.birthMonth = Int32(row["birth_month"] as Int? ?? 0)
        snapshot.includesSiteSequence = UInt64(siteHighWater)
        snapshot.lastEarnAtMsByFormat = Dictionary(
            uniqueKeysWithValues: LastEarnEncoding.decode(row["last_earn"]).map {
                ($0.key.rawValue, $0.value.milliseconds)
            })
        snapshot.streakLastDay = row["streak_last_day"] ?? ""
        snapshot.streakDays = Int32(row["streak_days"] as Int)
        snapshot.tierReviewDate = row["tier_review_date"]
        snapshot.enrolledAtMs = row["enrolled_at_ms"]
        if let rules = catalogue.latest?.program.expiry {
            let lots = try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT lot_id, remaining_points, expires_at_ms FROM lots WHERE member_id = ? AND remaining_points > 0"
                ), arguments: [id]
            ).map {
                Lot(
                    id: TransactionID(value: 0), remaining: Points($0["remaining_points"]),
                    expiresAt: Timestamp(milliseconds: $0["expires_at_ms"]))
            }
            let reminder = ExpiryCalculator.reminder(lots, asOf: now, rules: rules)
            snapshot.expiringPoints = reminder.points.value
            snapshot.nextExpiryAtMs = reminder.first?.milliseconds ?? 0
        }
        return snapshot
    }

    // MARK: Recover

    package func recover(site: SiteID, from sequence: Int64, count: Int) async throws
        -> Coalition_Sync_V1_RecoverResponse
    {
        try await database.pool.read { db in
            let highWater =
                try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT high_water_mark FROM sites WHERE site_id = ?"),
                    arguments: [site.rawValue]) ?? 0
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT sequence, transaction_id, previous_hash, payload, occurred_at_ms FROM site_transactions WHERE site_id = ? AND sequence >= ? ORDER BY sequence LIMIT ?"
                ),
                arguments: [site.rawValue, sequence, count])
            var response = Coalition_Sync_V1_RecoverResponse()
            response.highWaterMark = UInt64(highWater)
            response.transactions = rows.map { row in
                Coalition_Sync_V1_OutboxTransaction(
                    sequence: row["sequence"], transactionID: row["transaction_id"], previousHash: row["previous_hash"],
                    payload: row["payload"], occurredAtMs: row["occurred_at_ms"])
            }
            response.hasMore_p = Int64(response.transactions.last?.sequence ?? UInt64(highWater)) < highWater
            return response
        }
    }

    // MARK: Holds

    package func authorize(site: SiteID, request: AuthorizeCommand) async throws
        -> Coalition_Sync_V1_AuthorizeRedeemResponse
    {
        let now = clock.now()
        let limits = self.limits
        return try await database.pool.write { db in
            let writer = LedgerWriter(db: db)
            var response = Coalition_Sync_V1_AuthorizeRedeemResponse()
            if let existing = try Row.fetchOne(
                db.cachedStatement(
                    sql: "SELECT hold_id, member_id, points, expires_at_ms, status FROM holds WHERE transaction_id = ?"),
                arguments: [request.transaction.description])
            {
                // A retry of the same authorisation.
                response.approved = (existing["status"] as String) != "released"
                response.holdID = existing["hold_id"]
                response.holdExpiresAtMs = existing["expires_at_ms"]
                if let member = MemberID(existing["member_id"] as String) {
                    response.availablePoints = max(0, try writer.available(member, now: now).value)
                }
                return response
            }
            guard let member = try writer.resolve(request.member) else {
                response.approved = false
                response.reason = .unknownMember
                response.message = "The member is not known to the centre yet."
                return response
            }
            // The site's change the gateway has not acknowledged counts towards the member (the site
            // bears it if it does not post), less what the gateway has in fact posted of the site's
            // transactions after the sequence it was counted from: an acknowledgement lost on its
            // way back leaves those in the edge's count and already in the balance.
            var unacknowledged = request.unacknowledged
            if unacknowledged > .zero {
                unacknowledged -= Points(
                    try Int64.fetchOne(
                        db.cachedStatement(
                            sql: """
                                SELECT COALESCE(SUM(points), 0) FROM transactions
                                WHERE member_id = ? AND site_id = ? AND site_sequence > ?
                                """),
                        arguments: [member.description, site.rawValue, request.acknowledgedSequence]) ?? 0)
            }
            let fromBalance = try writer.available(member, now: now)
            let available = fromBalance + max(.zero, unacknowledged)
            guard request.points <= available else {
                response.approved = false
                response.availablePoints = max(0, available.value)
                response.reason = .insufficientPoints
                response.message = "The member has \(max(.zero, available)) points available, not \(request.points)."
                return response
            }
            var generator = SystemRandomNumberGenerator()
            let hold = "h_" + TransactionID(time: now, using: &generator).description
            let expires = now.adding(milliseconds: limits.holdMilliseconds)
            try db.cachedStatement(
                sql:
                    "INSERT INTO holds (hold_id, member_id, site_id, merchant_id, transaction_id, request_id, points, balance_points, created_at_ms, expires_at_ms, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active')"
            ).execute(arguments: [
                hold, member.description, site.rawValue, request.merchant.rawValue, request.transaction.description,
                request.requestID.rawValue,
                request.points.value, min(request.points, max(.zero, fromBalance)).value, now.milliseconds,
                expires.milliseconds,
            ])
            try writer.touch(member, position: try writer.nextPosition())
            response.approved = true
            response.holdID = hold
            response.holdExpiresAtMs = expires.milliseconds
            response.availablePoints = (available - request.points).value
            return response
        }
    }

    package func release(site: SiteID, hold: String) async throws -> Bool {
        try await database.pool.write { db in
            guard
                let member = try String.fetchOne(
                    db.cachedStatement(
                        sql: "SELECT member_id FROM holds WHERE hold_id = ? AND site_id = ? AND status = 'active'"),
                    arguments: [hold, site.rawValue])
            else { return false }
            try db.cachedStatement(sql: "UPDATE holds SET status = 'released' WHERE hold_id = ?").execute(arguments: [
                hold
            ])
            if let id = MemberID(member) {
                let writer = LedgerWriter(db: db)
                try writer.touch(id, position: try writer.nextPosition())
            }
            return true
        }
    }
}
