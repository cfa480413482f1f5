import Core
import GRPCCore
import Logging
import Wire

/// Allowances (escrow) for operators: grant one at a site, end one, list them with each site's
/// escrow (docs/protocol.md, "Allowances and promotion quotas").
extension OpsService {
    package func grantAllowance(
        request: ServerRequest<Coalition_Ops_V1_GrantAllowanceRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_GrantAllowanceResponse> {
        try await handle(request, context) { name, message in
            guard let requestID = RequestID(message.requestID) else {
                throw ServiceError.invalid("request_id", RequestID.rule)
            }
            guard let site = SiteID(message.siteID) else { throw ServiceError.invalid("site_id", Slug.rule) }
            guard let member = MemberID(message.memberID) else {
                throw ServiceError.invalid("member_id", "must be a 26-character member id")
            }
            guard (0...1_000_000_000).contains(message.points) else {
                throw ServiceError.invalid(
                    "points", "must be 0 (the rule's most) or 1 to 10^9 (found \(message.points))")
            }
            guard message.leaseUntilMs >= 0 else {
                throw ServiceError.invalid(
                    "lease_until_ms", "must be 0 (the rule's lease) or an instant (found \(message.leaseUntilMs))")
            }
            try Self.requireReason(message.reason)
            let grant = try await Self.allowanceCall {
                try await store.grantAllowance(
                    AllowanceGrantCommand(
                        site: site, member: member, trigger: .operatorOnly,
                        points: message.points == 0 ? nil : Points(message.points),
                        leaseUntil: message.leaseUntilMs == 0 ? nil : Timestamp(milliseconds: message.leaseUntilMs),
                        requestID: requestID, operatorName: name, reason: message.reason))
            }
            if !grant.alreadyGranted {
                logger.notice(
                    "allowance granted",
                    metadata: [
                        "allowance.id": "\(grant.record.allowanceID)", "site.id": "\(site)", "member.id": "\(member)",
                        "points": "\(grant.record.granted.value)", "operator": "\(name)",
                    ])
            }
            var response = Coalition_Ops_V1_GrantAllowanceResponse()
            response.allowance = Coalition_Ops_V1_Allowance(grant.record)
            response.alreadyGranted = grant.alreadyGranted
            return response
        }
    }

    package func returnAllowance(
        request: ServerRequest<Coalition_Ops_V1_ReturnAllowanceRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ReturnAllowanceResponse> {
        try await handle(request, context) { name, message in
            guard !message.allowanceID.isEmpty, message.allowanceID.utf8.count <= 64 else {
                throw ServiceError.invalid("allowance_id", "required, at most 64 characters")
            }
            try Self.requireReason(message.reason)
            var response = Coalition_Ops_V1_ReturnAllowanceResponse()
            guard let found = try await store.allowance(message.allowanceID) else {
                throw ServiceError(
                    .notFound, "allowance_id: no allowance '\(message.allowanceID)'", reason: "UNKNOWN_ALLOWANCE")
            }
            if found.status != .active {
                response.allowance = Coalition_Ops_V1_Allowance(found)
                response.alreadyEnded = true
                return response
            }
            let record = try await Self.allowanceCall {
                try await store.returnAllowance(
                    found.allowanceID, site: found.site, points: nil, by: "\(name): \(message.reason)")
            }
            logger.notice(
                "allowance returned",
                metadata: [
                    "allowance.id": "\(record.allowanceID)", "points": "\(found.left.value)", "operator": "\(name)",
                ])
            response.allowance = Coalition_Ops_V1_Allowance(record)
            return response
        }
    }

    package func listAllowances(
        request: ServerRequest<Coalition_Ops_V1_ListAllowancesRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListAllowancesResponse> {
        try await handle(request, context) { _, message in
            var site: SiteID?
            if !message.siteID.isEmpty {
                guard let id = SiteID(message.siteID) else { throw ServiceError.invalid("site_id", Slug.rule) }
                site = id
            }
            var member: MemberID?
            if !message.memberID.isEmpty {
                guard let id = MemberID(message.memberID) else {
                    throw ServiceError.invalid("member_id", "must be a 26-character member id")
                }
                member = id
            }
            let size = try Self.pageSize(message.pageSize)
            var response = Coalition_Ops_V1_ListAllowancesResponse()
            response.allowances = try await store.allowances(
                site: site, member: member, activeOnly: message.activeOnly, limit: size
            ).map(Coalition_Ops_V1_Allowance.init)
            response.escrow = try await store.escrowBySite().sorted { $0.key.rawValue < $1.key.rawValue }.map {
                var entry = Coalition_Ops_V1_SiteEscrow()
                entry.siteID = $0.key.rawValue
                entry.escrowedPoints = $0.value.value
                return entry
            }
            return response
        }
    }

    /// Runs a ledger call, turning its refusal into a status naming the problem.
    static func allowanceCall<Result>(_ call: () async throws -> Result) async throws -> Result {
        do {
            return try await call()
        } catch let refusal as AllowanceLedgerRefusal {
            throw ServiceError(refusal)
        }
    }
}

extension ServiceError {
    init(_ refusal: AllowanceLedgerRefusal) {
        let message = refusal.message
        switch refusal {
        case .unknownMember: self.init(.notFound, "member_id: \(message)", reason: "UNKNOWN_MEMBER")
        case .unknownSite: self.init(.notFound, "site_id: \(message)", reason: "UNKNOWN_SITE")
        case .terms(.lease): self = .invalid("lease_until_ms", message)
        case .terms: self.init(.failedPrecondition, message, reason: "ALLOWANCE_TERMS")
        case .unknownAllowance: self.init(.notFound, "allowance_id: \(message)", reason: "UNKNOWN_ALLOWANCE")
        case .otherSite, .moreThanLeft: self.init(.failedPrecondition, message, reason: "ALLOWANCE_TERMS")
        case .notActive: self.init(.failedPrecondition, message, reason: "ALLOWANCE_ENDED")
        case .alreadyActive: self.init(.failedPrecondition, message, reason: "ALLOWANCE_ACTIVE")
        }
    }
}

extension Coalition_Ops_V1_Allowance {
    init(_ record: AllowanceRecord) {
        self.init()
        allowanceID = record.allowanceID
        siteID = record.site.rawValue
        memberID = record.member.description
        grantedPoints = record.granted.value
        spentPoints = record.spent.value
        releasedPoints = record.released.value
        leftPoints = record.left.value
        grantedAtMs = record.grantedAt.milliseconds
        leaseUntilMs = record.leaseUntil.milliseconds
        status = record.status.rawValue
    }
}
