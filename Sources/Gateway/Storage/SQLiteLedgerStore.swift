import Core
import Crypto
import Foundation
import GRDB
import NodeSupport
import Synchronization
import Wire

/// The ledger on one SQLite file: single writer, so positions commit in order and every page
/// an edge pulls is below the commit point by construction.
package final class SQLiteLedgerStore: LedgerStore {
    package let database: GatewayDatabase
    let clock: any WallClock
    let limits: GatewayLimits
    private let catalogue: Mutex<ProgramCatalogue>
    /// Pushes of several sites arriving together are written in one transaction (one fsync).
    let pushWriter: GroupCommitter
    let statistics = Mutex(PostingStatistics())

    /// Where the posting writer's time went so far.
    package var postingStatistics: PostingStatistics {
        var statistics = self.statistics.withLock { $0 }
        statistics.commits = pushWriter.statistics.batches
        return statistics
    }

    /// Opens the store and loads the published programs.
    package init(database: GatewayDatabase, clock: any WallClock, limits: GatewayLimits) throws {
        self.database = database
        self.clock = clock
        self.limits = limits
        pushWriter = GroupCommitter(
            pool: database.pool, batchMax: limits.pushGroupMax, queueMax: limits.pushQueueMax, selfDriven: true)
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
            let lots = try writer.openLots(of: member).map {
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
                        "SELECT site_sequence, transaction_id, previous_hash, payload, outbox_occurred_at_ms FROM transactions WHERE site_id = ? AND site_sequence >= ? ORDER BY site_sequence LIMIT ?"
                ),
                arguments: [site.rawValue, sequence, count])
            var response = Coalition_Sync_V1_RecoverResponse()
            response.highWaterMark = UInt64(highWater)
            response.transactions = rows.map { row in
                Coalition_Sync_V1_OutboxTransaction(
                    sequence: row["site_sequence"], transactionID: row["transaction_id"],
                    previousHash: row["previous_hash"], payload: row["payload"],
                    occurredAtMs: row["outbox_occurred_at_ms"])
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
                unacknowledged -= try writer.posted(member, site: site, after: request.acknowledgedSequence)
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
