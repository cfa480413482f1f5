import Core
import GRPCCore
import Logging
import Wire

/// `coalition.member.v1.Member`: the group's member app backend's calls (docs/member-api.md), on
/// the gateway's mTLS port. Only a channel certificate (`coalition://channel/NAME`) is accepted;
/// the channel's name scopes its orders' request ids.
package struct MemberService<Store: OperationsLedger & MallLedger & LotteryLedger>: Coalition_Member_V1_Member
        .ServiceProtocol
{
    let store: Store
    private let phoneHashKey: [UInt8]?
    let limits: GatewayLimits
    /// Signs the vouchers orders issue; nil when the gateway has no voucher key.
    let vouchers: VoucherIssuer?
    let logger: Logger
    private let refusals: RefusalRecorder

    package init(
        store: Store, phoneHashKey: [UInt8]?, voucherKey: VoucherSigningKey?, limits: GatewayLimits, logger: Logger,
        refusals: RefusalRecorder? = nil
    ) {
        self.store = store
        self.phoneHashKey = phoneHashKey
        vouchers = voucherKey.map { key in VoucherIssuer(keyID: key.id) { try key.sign($0) } }
        self.limits = limits
        self.logger = logger
        self.refusals = refusals ?? .logging(logger)
    }
}

extension MemberService {
    /// The largest page of history or orders.
    static var pageSizeMax: Int { 500 }

    package func lookupMember(
        request: ServerRequest<Coalition_Member_V1_LookupMemberRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_LookupMemberResponse> {
        try await handle(request, context) { _, message in
            let id: MemberID?
            switch message.key {
            case .phone(let text): id = try await MemberLookup.byPhone(text, phoneHashKey: phoneHashKey, store: store)
            case .cardNumber(let card): id = try await MemberLookup.byCard(card, store: store)
            case nil: throw ServiceError.invalid("key", "set one of phone or card_number")
            }
            guard let id else { throw ServiceError(.notFound, "no such member", reason: "UNKNOWN_MEMBER") }
            var response = Coalition_Member_V1_LookupMemberResponse()
            response.memberID = id.description
            return response
        }
    }

    package func getAccount(
        request: ServerRequest<Coalition_Member_V1_GetAccountRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_GetAccountResponse> {
        try await handle(request, context) { _, message in
            let (detail, program) = try await member(message.memberID)
            let now = store.clockNow
            let year = AccountView.yearStart(now: now, timeZone: program.timeZone)
            let (entries, partial) = try await activity(of: detail.id, since: year.start)
            var response = Coalition_Member_V1_GetAccountResponse(
                detail, program: program, now: now, year: year.year,
                totals: AccountView.totalsByFormat(entries.filter { $0.occurredAt >= year.start }, program: program),
                partial: partial)
            response.benefits = try await benefits(detail, program: program, now: now)
            return response
        }
    }

    package func listHistory(
        request: ServerRequest<Coalition_Member_V1_ListHistoryRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_ListHistoryResponse> {
        try await handle(request, context) { _, message in
            let (detail, program) = try await member(message.memberID)
            let size = try Self.pageSize(message.pageSize)
            let before = try Self.positionToken(message.pageToken)
            let rows = try await store.memberHistory(detail.id, before: before, limit: size + 1)
            var response = Coalition_Member_V1_ListHistoryResponse()
            response.entries = rows.prefix(size).map { Coalition_Member_V1_HistoryEntry($0, program: program) }
            if rows.count > size, let last = rows.prefix(size).last { response.nextPageToken = String(last.position) }
            return response
        }
    }

    package func listCatalog(
        request: ServerRequest<Coalition_Member_V1_ListCatalogRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_ListCatalogResponse> {
        try await handle(request, context) { _, message in
            let now = store.clockNow
            let catalog = try program(at: now).catalog
            let items = catalog.items.filter { message.includeClosed || $0.onSale(at: now) }
            let stock = try await store.stock(items.map(\.id))
            var response = Coalition_Member_V1_ListCatalogResponse()
            response.items = items.map { Coalition_Member_V1_CatalogItem($0, left: Self.left($0, stock)) }
            return response
        }
    }

    package func recommend(
        request: ServerRequest<Coalition_Member_V1_RecommendRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Member_V1_RecommendResponse> {
        try await handle(request, context) { _, message in
            let limit = message.limit == 0 ? 10 : Int(message.limit)
            guard (1...50).contains(limit) else { throw ServiceError.invalid("limit", "0 (default 10) or 1 to 50") }
            let (detail, program) = try await member(message.memberID)
            let now = store.clockNow
            let since = now.adding(milliseconds: -Int64(Recommendations.windowDays) * 86_400_000)
            let (entries, _) = try await activity(of: detail.id, since: since)
            let stock = try await store.stock(program.catalog.items.map(\.id))
            let ranked = Recommendations.rank(
                program.catalog, left: { Self.left($0, stock) }, tier: TierID(unchecked: detail.tier),
                available: detail.balance - detail.held,
                habits: Recommendations.habits(entries, program: program, now: now), now: now, limit: limit)
            var response = Coalition_Member_V1_RecommendResponse()
            response.recommendations = ranked.map { recommendation in
                var wire = Coalition_Member_V1_Recommendation()
                wire.item = Coalition_Member_V1_CatalogItem(
                    recommendation.item, left: Self.left(recommendation.item, stock))
                wire.score = recommendation.score
                wire.reasons = recommendation.reasons
                return wire
            }
            return response
        }
    }

    // MARK: Helpers

    /// The benefits of the member's tier, with this period's vouchers when issued.
    func benefits(_ detail: MemberDetail, program: Program, now: Timestamp) async throws
        -> [Coalition_Member_V1_TierBenefitStatus]
    {
        guard let tier = program.tiers.tiers.first(where: { $0.id.rawValue == detail.tier }), !tier.benefits.isEmpty
        else { return [] }
        let today = program.timeZone.date(of: now)
        var periods: [String: String] = [:]
        for benefit in tier.benefits {
            if let period = benefit.per.period(today: today, birthMonth: detail.birthMonth) {
                periods["\(tier.id)/\(benefit.id)"] = period
            }
        }
        let grants = try await store.benefitGrants(member: detail.id, periods: periods)
        return tier.benefits.map { benefit in
            var wire = Coalition_Member_V1_TierBenefitStatus(benefit)
            let key = "\(tier.id)/\(benefit.id)"
            wire.period = periods[key] ?? ""
            wire.vouchers = (grants[key] ?? []).map(Coalition_Member_V1_Voucher.init)
            return wire
        }
    }

    /// Binds the call to a channel certificate and maps every error to an explicit status.
    func handle<Input: Sendable, Output: Sendable>(
        _ request: ServerRequest<Input>, _ context: ServerContext, _ body: (String, Input) async throws -> Output
    ) async throws -> ServerResponse<Output> {
        try await ServiceError.mapping {
            let channel: String
            do {
                channel = try await CallerCertificate.require(
                    context, role: "channel", calls: "Member", isRevoked: { try await store.isRevoked(serial: $0) }
                ) { identity in
                    if case .channel(let name) = identity { return name }
                    return nil
                }
            } catch let error as ServiceError {
                await refusals.record(error, service: "member", context: context)
                throw error
            }
            do {
                return ServerResponse(message: try await body(channel, request.message))
            } catch let refusal as OrderRefusal {
                throw ServiceError(Self.code(refusal), refusal.message, reason: refusal.reason)
            } catch let refusal as MallCancelRefusal {
                switch refusal {
                case .unknownOrder(let id):
                    throw ServiceError(.notFound, "order_id: no order '\(id.prefix(64))'", reason: "UNKNOWN_ORDER")
                case .notCancellable(let kind):
                    throw ServiceError(
                        .failedPrecondition,
                        "a \(kind.rawValue) order is handed over by the app's fulfilment and cannot be cancelled here",
                        reason: "NOT_CANCELLABLE")
                case .voucherUsed(let id):
                    throw ServiceError(
                        .failedPrecondition, "voucher \(id) of the order has been used", reason: "VOUCHER_USED")
                }
            } catch is MallVouchersDisabled {
                throw ServiceError(
                    .failedPrecondition, "the gateway has no voucher_key_file configured: vouchers cannot be issued",
                    reason: "VOUCHERS_DISABLED")
            } catch let busy as MallBusy {
                throw ServiceError(.resourceExhausted, "\(busy)", reason: "BUSY")
            } catch let conflict as MallRequestConflict {
                throw ServiceError(
                    .alreadyExists,
                    "request_id '\(conflict.requestID)' was used for another order (\(conflict.orderID))",
                    reason: "REQUEST_ID_REUSED")
            }
        }
    }

    static func code(_ refusal: OrderRefusal) -> RPCError.Code {
        switch refusal {
        case .unknownMember, .unknownItem: .notFound
        case .soldOut: .resourceExhausted
        default: .failedPrecondition
        }
    }

    /// The program in force at `instant`.
    func program(at instant: Timestamp) throws -> Program {
        guard let program = store.programs.active(at: instant)?.program else {
            throw ServiceError(.unavailable, "the gateway has no program in force")
        }
        return program
    }

    /// The member a request names (after merges), with the program in force.
    func member(_ text: String) async throws -> (MemberDetail, Program) {
        guard let id = MemberID(text) else {
            throw ServiceError.invalid("member_id", "must be a 26-character member id")
        }
        guard let detail = try await store.memberDetail(id) else {
            throw ServiceError(.notFound, "member_id: no member \(id)", reason: "UNKNOWN_MEMBER")
        }
        return (detail, try program(at: store.clockNow))
    }

    /// The member's entries posted since `since`, newest first, at most `account_entries_max`;
    /// true when there were more.
    func activity(of member: MemberID, since: Timestamp) async throws -> ([MemberActivity], partial: Bool) {
        var entries: [MemberActivity] = []
        var before: Int64?
        while true {
            // At the limit, one entry more says whether the figures miss any.
            let asked = max(1, min(Self.pageSizeMax, limits.accountEntriesMax - entries.count))
            let page = try await store.memberHistory(member, before: before, limit: asked)
            for entry in page {
                if entry.postedAt < since { return (entries, false) }
                if entries.count == limits.accountEntriesMax { return (entries, true) }
                entries.append(MemberActivity(entry))
            }
            guard page.count == asked, let last = page.last else { return (entries, false) }
            before = last.position
        }
    }

    static func pageSize(_ requested: Int32) throws -> Int {
        let size = requested == 0 ? 50 : Int(requested)
        guard (1...pageSizeMax).contains(size) else {
            throw ServiceError.invalid("page_size", "0 (default 50) or 1 to \(pageSizeMax)")
        }
        return size
    }

    static func positionToken(_ token: String) throws -> Int64? {
        guard !token.isEmpty else { return nil }
        guard let position = Int64(token), position > 0 else {
            throw ServiceError.invalid("page_token", "is not a token from a previous page")
        }
        return position
    }

    /// Units of an item left to sell, from the store's counts.
    static func left(_ item: CatalogItem, _ stock: [ItemID: MallStock]) -> Int64 {
        let counted = stock[item.id] ?? MallStock(sold: 0, adjusted: 0)
        return OrderRules.left(item, sold: counted.sold, adjusted: counted.adjusted)
    }
}
