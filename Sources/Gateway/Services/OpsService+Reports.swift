import Core
import GRPCCore
import Logging
import Wire

// The console's sign-in, and the figures of its "today" and "liability" pages (which `coalition
// admin report` prints too: both read them here).
extension OpsService {
    /// The most merchants `GetActivity` lists.
    static var topMerchantsMax: Int { 10 }

    /// The program in force at `now` (else the latest published); FAILED_PRECONDITION
    /// `NO_PROGRAM` before any is published.
    func programInForce(at now: Timestamp) throws -> Program {
        guard let program = store.programs.active(at: now)?.program ?? store.programs.latest?.program else {
            throw ServiceError(.failedPrecondition, "no program is published", reason: "NO_PROGRAM")
        }
        return program
    }

    package func createConsoleLogin(
        request: ServerRequest<Coalition_Ops_V1_CreateConsoleLoginRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_CreateConsoleLoginResponse> {
        try await handle(request, context) { name, _ in
            guard let console else {
                throw ServiceError(
                    .failedPrecondition, "this gateway serves no console: add console: to its config",
                    reason: "CONSOLE_OFF")
            }
            let link: (url: String, expiresAt: Timestamp)
            do {
                link = try await console.mint(for: name, now: store.clockNow)
            } catch is ConsoleSessions.Refusal {
                throw ServiceError(
                    .resourceExhausted, "too many unused console login links; wait for them to expire",
                    reason: "TOO_MANY_LOGIN_LINKS")
            }
            logger.notice("console login link issued", metadata: ["operator": "\(name)"])
            var response = Coalition_Ops_V1_CreateConsoleLoginResponse()
            response.url = link.url
            response.expiresAtMs = link.expiresAt.milliseconds
            response.operator = name
            return response
        }
    }

    package func getActivity(
        request: ServerRequest<Coalition_Ops_V1_GetActivityRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_GetActivityResponse> {
        try await handle(request, context) { _, message in
            let now = store.clockNow
            let program = try programInForce(at: now)
            let zone = program.timeZone
            let day = message.day.isEmpty ? zone.date(of: now) : try Self.period(message.day, field: "day")
            let rows = try await store.activity(
                from: zone.startOfDay(day), to: zone.startOfDay(day.adding(days: 1)))
            let given = try await store.monitoringFigures().promotionsGiven
            return Coalition_Ops_V1_GetActivityResponse(
                day: day, rows: rows, program: program, promotionsGiven: given, topMerchantsMax: Self.topMerchantsMax)
        }
    }

    package func getLiability(
        request: ServerRequest<Coalition_Ops_V1_GetLiabilityRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_GetLiabilityResponse> {
        try await handle(request, context) { _, _ in
            let now = store.clockNow
            let program = try programInForce(at: now)
            let figures = try await store.liability(at: now)
            let price = program.highestRedeemPrice
            var response = Coalition_Ops_V1_GetLiabilityResponse()
            response.outstandingPoints = figures.outstanding.value
            response.outstandingValueMinor = price.halfEvenTimes(figures.outstanding.value)
            response.redeemPrice = price.description
            response.expiring30DaysPoints = figures.expiring30Days.value
            response.expiring60DaysPoints = figures.expiring60Days.value
            response.expiring90DaysPoints = figures.expiring90Days.value
            response.expiredPoints = figures.expired.value
            response.membersWithPoints = figures.membersWithPoints
            response.asOfMs = now.milliseconds
            return response
        }
    }
}

extension Program {
    /// The most any merchant receives per point it takes (its format's price or its own): what
    /// the points members hold could cost the platform at most.
    var highestRedeemPrice: Rate {
        let prices =
            settlement.formatPrices.values.map(\.redeemPrice)
            + sites.flatMap { $0.merchants.compactMap(\.settlementPrices?.redeemPrice) }
        return prices.max() ?? .zero
    }
}

extension Coalition_Ops_V1_GetActivityResponse {
    /// The day's rows summed by hour and format (a site's format; "platform" for none), by
    /// merchant (the top ones by points issued, then redeemed, then id), and the budgeted
    /// promotions with what they gave.
    init(
        day: CivilDate, rows: [ActivityRow], program: Program, promotionsGiven: [PromotionID: Points],
        topMerchantsMax: Int
    ) {
        self.init()
        self.day = day.description
        var hourly: [String: Coalition_Ops_V1_HourlyActivity] = [:]
        var merchants: [String: Coalition_Ops_V1_MerchantActivity] = [:]
        for row in rows {
            let format = row.site.flatMap(SiteID.init).flatMap { program.site($0)?.format.rawValue } ?? "platform"
            let key = "\(row.hour)/\(format)"
            var hour = hourly[key] ?? Coalition_Ops_V1_HourlyActivity()
            hour.hour = Int32(clamping: row.hour)
            hour.format = format
            hour.issuedPoints += row.issued
            hour.redeemedPoints += row.redeemed
            hourly[key] = hour
            issuedPoints += row.issued
            redeemedPoints += row.redeemed
            guard let merchant = row.merchant else { continue }
            var entry = merchants[merchant] ?? Coalition_Ops_V1_MerchantActivity()
            entry.merchantID = merchant
            entry.siteID = row.site ?? ""
            entry.issuedPoints += row.issued
            entry.redeemedPoints += row.redeemed
            entry.transactions += row.transactions
            merchants[merchant] = entry
        }
        hours = hourly.values.sorted { ($0.hour, $0.format) < ($1.hour, $1.format) }
        topMerchants = Array(
            merchants.values.sorted {
                ($0.issuedPoints, $0.redeemedPoints, $1.merchantID) > (
                    $1.issuedPoints, $1.redeemedPoints, $0.merchantID
                )
            }
            .prefix(topMerchantsMax))
        promotions = program.earn.promotions.compactMap { promotion in
            guard let budget = promotion.budget else { return nil }
            var entry = Coalition_Ops_V1_PromotionActivity()
            entry.promotionID = promotion.id.rawValue
            entry.budgetPoints = budget.value
            entry.givenPoints = (promotionsGiven[promotion.id] ?? .zero).value
            entry.leftPoints = max(0, budget.value - entry.givenPoints)
            return entry
        }
    }
}
