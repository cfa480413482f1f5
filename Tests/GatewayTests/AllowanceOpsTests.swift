// Goal (#18, through the real Ops and sync services on both ledgers): an operator grants an
// allowance at a site, the site spends from it (the escrow pays, no offline risk), the operator
// lists it with the site's escrow and ends it (what is left goes back to the member); bad requests
// are refused with a status naming the problem and change nothing; the reclaim job takes back an
// allowance only after its lease and margin.
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Allowances by operators")
struct AllowanceOpsTests {
    static func grant(
        _ ops: Coalition_Ops_V1_Ops.Client<HTTP2ClientTransport.Posix>, site: String, member: String,
        points: Int64 = 0, leaseUntil: Int64 = 0, request: String = UUID().uuidString
    ) async throws -> Coalition_Ops_V1_GrantAllowanceResponse {
        var message = Coalition_Ops_V1_GrantAllowanceRequest()
        message.requestID = request
        message.siteID = site
        message.memberID = member
        message.points = points
        message.leaseUntilMs = leaseUntil
        message.reason = "front desk"
        return try await ops.grantAllowance(message)
    }

    static func list(
        _ ops: Coalition_Ops_V1_Ops.Client<HTTP2ClientTransport.Posix>, site: String = "", member: String = "",
        activeOnly: Bool = false
    ) async throws -> Coalition_Ops_V1_ListAllowancesResponse {
        var message = Coalition_Ops_V1_ListAllowancesRequest()
        message.siteID = site
        message.memberID = member
        message.activeOnly = activeOnly
        return try await ops.listAllowances(message)
    }

    static func end(_ ops: Coalition_Ops_V1_Ops.Client<HTTP2ClientTransport.Posix>, _ id: String) async throws
        -> Coalition_Ops_V1_ReturnAllowanceResponse
    {
        var message = Coalition_Ops_V1_ReturnAllowanceRequest()
        message.allowanceID = id
        message.reason = "checked out"
        return try await ops.returnAllowance(message)
    }

    @Test(
        "grant, spend from escrow, list, end: the member's points are right and no risk arises",
        arguments: LedgerKind.allCases)
    func grantSpendEnd(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite("hotel-01", merchant: "hotel-rooms", members: 2, ledger: ledger) { site in
            let (member, other) = (site.members[0], site.members[1])
            try await OpsServiceTests.withOps(
                port: site.gateway.port, certificates: site.certificates, certificate: "alice"
            ) { ops in
                // 200 sign-up points; the hotel's rule allows 20,000: all 200 are reserved.
                let request = UUID().uuidString
                let granted = try await Self.grant(ops, site: "hotel-01", member: member, request: request)
                let allowance = granted.allowance
                #expect(!granted.alreadyGranted)
                #expect(allowance.grantedPoints == 200 && allowance.leftPoints == 200 && allowance.status == "active")
                #expect(allowance.leaseUntilMs == ManualClockTime.now.milliseconds + 4_320 * 60_000)
                #expect(try await site.gateway.balance(member) == 0)
                #expect(try await site.gateway.account("escrow:hotel-01") == 200)
                // The operator sees the member's 200 points, all of them reserved.
                var show = Coalition_Ops_V1_GetMemberRequest()
                show.memberID = member
                let shown = try await ops.getMember(show)
                #expect(shown.balancePoints == 200 && shown.escrowedPoints == 200)
                #expect(shown.lots.reduce(0) { $0 + $1.remainingPoints } == 200)
                // The same request answers the first grant and reserves nothing more.
                let again = try await Self.grant(ops, site: "hotel-01", member: member, request: request)
                #expect(again.alreadyGranted && again.allowance == allowance)
                // A second allowance at the site for the member is refused.
                await expectStatus(.failedPrecondition, reason: "ALLOWANCE_ACTIVE") {
                    _ = try await Self.grant(ops, site: "hotel-01", member: member)
                }
                // The hotel spends 150 of it (offline, from the allowance): escrow pays.
                let spend = AllowanceSyncTests.spend(
                    member: member, points: 150, fromAllowance: 150, allowance: allowance.allowanceID,
                    merchant: "hotel-rooms")
                #expect(try await site.push([spend]).results.map(\.outcome) == [.posted])
                #expect(try await site.gateway.account("escrow:hotel-01") == 50)
                #expect(try await site.gateway.account("offline_risk:hotel-01") == 0)
                #expect(try await site.gateway.balance(member) == 0)
                let listed = try await Self.list(ops, site: "hotel-01")
                #expect(listed.allowances.map(\.spentPoints) == [150])
                #expect(listed.allowances.map(\.leftPoints) == [50])
                #expect(listed.escrow.map(\.siteID) == ["hotel-01"] && listed.escrow.map(\.escrowedPoints) == [50])
                #expect(try await Self.list(ops, member: other).allowances.isEmpty)
                // Ending it gives the 50 left back; ending it again answers its state.
                let ended = try await Self.end(ops, allowance.allowanceID)
                #expect(!ended.alreadyEnded && ended.allowance.status == "returned")
                #expect(ended.allowance.releasedPoints == 50 && ended.allowance.leftPoints == 0)
                #expect(try await site.gateway.balance(member) == 50)
                #expect(try await site.gateway.account("escrow:hotel-01") == 0)
                let twice = try await Self.end(ops, allowance.allowanceID)
                #expect(twice.alreadyEnded && twice.allowance == ended.allowance)
                #expect(try await Self.list(ops, activeOnly: true).allowances.isEmpty)
                #expect(try await Self.list(ops).escrow.isEmpty)
                // A spend from the ended allowance, pushed late, falls to the floor limit with its
                // conflict: the member pays, the hotel carries no risk while the member has the points.
                let late = try await site.push(batches: [
                    [spend],
                    [
                        AllowanceSyncTests.spend(
                            member: member, points: 20, fromAllowance: 20, allowance: allowance.allowanceID,
                            merchant: "hotel-rooms")
                    ],
                ])
                #expect(late.map { $0.results.map(\.outcome) } == [[.posted], [.postedWithConflict]])
                #expect(late.last?.results.first?.reason == "allowance_reclaimed")
                #expect(try await site.gateway.balance(member) == 30)
                #expect(try await site.gateway.account("offline_risk:hotel-01") == 0)
            }
        }
    }

    @Test("bad grants are refused with a status naming the problem, and write nothing", arguments: LedgerKind.allCases)
    func badGrants(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite("hotel-01", merchant: "hotel-rooms", ledger: ledger) { site in
            let member = site.members[0]
            let now = ManualClockTime.now.milliseconds
            try await OpsServiceTests.withOps(
                port: site.gateway.port, certificates: site.certificates, certificate: "alice"
            ) { (ops) async throws -> Void in
                await expectStatus(.notFound, reason: "UNKNOWN_SITE") {
                    _ = try await Self.grant(ops, site: "moon-01", member: member)
                }
                let noRule = await expectStatus(.failedPrecondition, reason: "ALLOWANCE_TERMS") {
                    _ = try await Self.grant(ops, site: "mall-01", member: member)
                }
                #expect(noRule.contains("mall"))
                let tooMany = await expectStatus(.failedPrecondition, reason: "ALLOWANCE_TERMS") {
                    _ = try await Self.grant(ops, site: "hotel-01", member: member, points: 201)
                }
                #expect(tooMany.contains("201"))
                let past = await expectStatus(.invalidArgument) {
                    _ = try await Self.grant(ops, site: "hotel-01", member: member, leaseUntil: now - 1)
                }
                #expect(past.hasPrefix("lease_until_ms"))
                await expectStatus(.invalidArgument) {
                    _ = try await Self.grant(
                        ops, site: "hotel-01", member: member, leaseUntil: now + 4_321 * 60_000)
                }
                await expectStatus(.notFound, reason: "UNKNOWN_MEMBER") {
                    _ = try await Self.grant(ops, site: "hotel-01", member: "01JAAAAAAAAAAAAAAAAAAAAAAA")
                }
                let malformed: [(String, (inout Coalition_Ops_V1_GrantAllowanceRequest) -> Void)] = [
                    ("member_id", { $0.memberID = "x" }),
                    ("site_id", { $0.siteID = "Not A Site" }),
                    ("request_id", { $0.requestID = "" }),
                    ("points", { $0.points = -5 }),
                    ("points", { $0.points = Int64.max }),
                    ("lease_until_ms", { $0.leaseUntilMs = Int64.min }),
                    ("reason", { $0.reason = "" }),
                ]
                for (field, edit) in malformed {
                    var message = Coalition_Ops_V1_GrantAllowanceRequest()
                    message.requestID = UUID().uuidString
                    message.siteID = "hotel-01"
                    message.memberID = member
                    message.reason = "desk"
                    edit(&message)
                    let refused = await expectStatus(.invalidArgument) { _ = try await ops.grantAllowance(message) }
                    #expect(refused.hasPrefix(field), "\(refused)")
                }
                await expectStatus(.notFound, reason: "UNKNOWN_ALLOWANCE") { _ = try await Self.end(ops, "al_none") }
                #expect(try await Self.list(ops).allowances.isEmpty)
                #expect(try await site.gateway.balance(member) == 200)
                #expect(try await site.gateway.account("escrow:hotel-01") == 0)
                // Still serving: a good grant after them all.
                #expect(
                    try await Self.grant(ops, site: "hotel-01", member: member, points: 80).allowance.grantedPoints
                        == 80)
            }
        }
    }

    @Test(
        "the reclaim job waits for the lease, its margin and the site's catching up (or its long silence)",
        arguments: LedgerKind.allCases)
    func reclaim(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite("hotel-01", merchant: "hotel-rooms", ledger: ledger) { site in
            let member = site.members[0]
            let start = ManualClockTime.now
            let lease = start.milliseconds + 60 * 60_000
            let ledger = site.gateway.ledger
            let id = try await OpsServiceTests.withOps(
                port: site.gateway.port, certificates: site.certificates, certificate: "alice"
            ) { ops in
                try await Self.grant(ops, site: "hotel-01", member: member, points: 120, leaseUntil: lease)
                    .allowance.allowanceID
            }
            func at(minutesAfterLease minutes: Int64) {
                site.clock.set(Timestamp(milliseconds: lease + minutes * 60_000))
            }
            // The site caught up during the lease: it may still be carrying spends made after.
            let hotel = SiteID(unchecked: "hotel-01")
            site.clock.set(Timestamp(milliseconds: lease - 10 * 60_000))
            try await ledger.recordCaughtUp(site: hotel, sentAt: site.clock.now())
            at(minutesAfterLease: 29)
            // Sent 9 minutes after the lease by a clock that may be 10 minutes fast: not evidence.
            try await ledger.recordCaughtUp(site: hotel, sentAt: Timestamp(milliseconds: lease + 9 * 60_000))
            #expect(try await ledger.reclaimAllowances(limit: 100) == 0)
            at(minutesAfterLease: 31)
            #expect(try await ledger.reclaimAllowances(limit: 100) == 0)
            #expect(try await ledger.allowance(id)?.status == .active)
            // Caught up after the lease (and its tolerance): reclaimed once the margin has passed,
            // the 120 points back to the member.
            try await ledger.recordCaughtUp(site: hotel, sentAt: site.clock.now())
            #expect(try await ledger.reclaimAllowances(limit: 100) == 1)
            let reclaimed = try #require(try await ledger.allowance(id))
            #expect(reclaimed.status == .reclaimed && reclaimed.released == Points(120))
            #expect(try await site.gateway.balance(member) == 200)
            #expect(try await site.gateway.account("escrow:hotel-01") == 0)
            #expect(try await ledger.reclaimAllowances(limit: 100) == 0)
            // A site that never catches up again: reclaimed after `unheard_reclaim_hours` (72).
            let second = try await OpsServiceTests.withOps(
                port: site.gateway.port, certificates: site.certificates, certificate: "alice"
            ) { ops in
                try await Self.grant(ops, site: "hotel-01", member: member, points: 50).allowance
            }
            let secondLease = second.leaseUntilMs
            site.clock.set(Timestamp(milliseconds: secondLease + 72 * 3_600_000 - 60_000))
            #expect(try await ledger.reclaimAllowances(limit: 100) == 0)
            site.clock.set(Timestamp(milliseconds: secondLease + 72 * 3_600_000))
            #expect(try await ledger.reclaimAllowances(limit: 100) == 1)
            #expect(try await site.gateway.balance(member) == 200)
            #expect(try await ledger.reclaimAllowances(limit: 100) == 0)
        }
    }

    static func giveBack(member: String, allowance: String, points: Int64) -> Coalition_Sync_V1_LocalTransaction {
        var local = RawSync.header(merchant: "hotel-rooms", prefix: "RET", time: ManualClockTime.now)
        var record = Coalition_Sync_V1_AllowanceReturnRecord()
        record.memberID = member
        record.allowanceID = allowance
        record.points = points
        local.allowanceReturn = record
        return local
    }

    @Test(
        "a site gives back at most what is left, of its own allowance; the rest is rejected with nothing posted",
        arguments: LedgerKind.allCases)
    func pushedReturns(ledger: LedgerKind) async throws {
        try await RawSync.withEnrolledSite("hotel-01", merchant: "hotel-rooms", members: 2, ledger: ledger) { site in
            let (member, other) = (site.members[0], site.members[1])
            let id = try await OpsServiceTests.withOps(
                port: site.gateway.port, certificates: site.certificates, certificate: "alice"
            ) { ops in try await Self.grant(ops, site: "hotel-01", member: member, points: 150).allowance.allowanceID }
            let answers = try await site.push(batches: [
                [
                    Self.giveBack(member: member, allowance: id, points: 151),
                    Self.giveBack(member: other, allowance: id, points: 10),
                    Self.giveBack(member: member, allowance: "al_none", points: 10),
                    Self.giveBack(member: member, allowance: id, points: 0),
                    Self.giveBack(member: member, allowance: id, points: 100),
                    Self.giveBack(member: member, allowance: id, points: 60),
                    Self.giveBack(member: member, allowance: id, points: 50),
                    Self.giveBack(member: member, allowance: id, points: 50),
                ]
            ])
            let results = try #require(answers.first?.results)
            #expect(
                results.map(\.outcome) == [
                    .rejected, .rejected, .rejected, .rejected, .posted, .rejected, .posted, .posted,
                ])
            #expect(results.filter { $0.outcome == .rejected }.allSatisfy { $0.reason == "allowance_return" })
            let record = try #require(try await site.gateway.ledger.allowance(id))
            #expect(record.status == .returned && record.released == Points(150))
            // 200 sign-up points: 150 reserved, all given back (the last return found it ended).
            #expect(try await site.gateway.balance(member) == 200)
            #expect(try await site.gateway.balance(other) == 200)
            #expect(try await site.gateway.account("escrow:hotel-01") == 0)
        }
    }
}
