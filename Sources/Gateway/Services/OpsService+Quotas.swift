import Core
import GRPCCore
import Wire

/// Promotion quotas for operators: each budgeted promotion's budget, given, reserved and pool, and
/// what each site holds of it (docs/protocol.md, "Promotion quotas").
extension OpsService {
    package func listPromotionQuotas(
        request: ServerRequest<Coalition_Ops_V1_ListPromotionQuotasRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListPromotionQuotasResponse> {
        try await handle(request, context) { _, message in
            let budgeted = (store.programs.latest?.program.earn.promotions ?? []).filter { $0.budget != nil }
            var promotion: PromotionID?
            if !message.promotionID.isEmpty {
                guard let id = PromotionID(message.promotionID) else {
                    throw ServiceError.invalid("promotion_id", Slug.rule)
                }
                guard budgeted.contains(where: { $0.id == id }) else {
                    throw ServiceError(
                        .notFound, "promotion_id: no budgeted promotion '\(id)' in the latest program",
                        reason: "UNKNOWN_PROMOTION")
                }
                promotion = id
            }
            var site: SiteID?
            if !message.siteID.isEmpty {
                guard let id = SiteID(message.siteID) else { throw ServiceError.invalid("site_id", Slug.rule) }
                site = id
            }
            let all = try await store.promotionQuotas(promotion: promotion, site: nil)
            let given = try await store.monitoringFigures().promotionsGiven
            let now = store.clockNow
            var response = Coalition_Ops_V1_ListPromotionQuotasResponse()
            for entry in budgeted where promotion == nil || entry.id == promotion {
                let budget = entry.budget ?? .zero
                let spent = given[entry.id] ?? .zero
                let reserved = all.filter { $0.promotion == entry.id }.reduce(Points.zero) {
                    $0 + $1.holding.outstanding
                }
                var state = Coalition_Ops_V1_PromotionBudgetState()
                state.promotionID = entry.id.rawValue
                state.budgetPoints = budget.value
                state.givenPoints = spent.value
                state.reservedPoints = reserved.value
                state.poolPoints = max(.zero, budget - spent - reserved).value
                state.ended = now >= entry.end
                response.promotions.append(state)
            }
            response.quotas = all.filter { site == nil || $0.site == site }.map { record in
                var quota = Coalition_Ops_V1_PromotionQuota()
                quota.promotionID = record.promotion.rawValue
                quota.siteID = record.site.rawValue
                quota.givenPoints = record.holding.given.value
                quota.reservedPoints = record.holding.outstanding.value
                quota.issue = UInt64(max(0, record.holding.issue))
                quota.issuedAtMs = record.issuedAt.milliseconds
                quota.quotaLeftPoints = max(.zero, record.holding.issued - record.holding.given).value
                quota.recentPoints = record.recentPoints.value
                return quota
            }
            return response
        }
    }
}
