import Core
import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Wire
import X509

/// The settlement calls of `coalition.ops.v1.Ops`: close, show and export a day.
extension OpsService {
    package func closeSettlement(
        request: ServerRequest<Coalition_Ops_V1_CloseSettlementRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_CloseSettlementResponse> {
        try await handle(request, context) { name, message in
            let period = try Self.period(message.period)
            let closed: ClosedSettlement
            do {
                closed = try await store.closeSettlement(period: period, by: name)
            } catch let refusal as SettlementRefusal {
                throw ServiceError(.failedPrecondition, refusal.description)
            }
            var response = Coalition_Ops_V1_CloseSettlementResponse()
            response.result = Self.result(closed)
            response.alreadyClosed = closed.alreadyClosed
            return response
        }
    }

    package func getSettlement(
        request: ServerRequest<Coalition_Ops_V1_GetSettlementRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_GetSettlementResponse> {
        try await handle(request, context) { _, message in
            guard let closed = try await store.storedSettlement(try Self.period(message.period)) else {
                throw ServiceError.notFound("period", "\(message.period) is not closed")
            }
            var response = Coalition_Ops_V1_GetSettlementResponse()
            response.result = Self.result(closed)
            return response
        }
    }

    package func exportSettlement(
        request: ServerRequest<Coalition_Ops_V1_ExportSettlementRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ExportSettlementResponse> {
        try await handle(request, context) { _, message in
            guard let closed = try await store.storedSettlement(try Self.period(message.period)) else {
                throw ServiceError.notFound("period", "\(message.period) is not closed")
            }
            var response = Coalition_Ops_V1_ExportSettlementResponse()
            response.files = SettlementStatement.exportFiles(closed).map { name, content in
                var file = Coalition_Ops_V1_StatementFile()
                file.name = name
                file.content = content
                return file
            }
            response.contentHash = closed.contentHash
            return response
        }
    }

    static func result(_ closed: ClosedSettlement) -> Coalition_Ops_V1_SettlementResult {
        var result = Coalition_Ops_V1_SettlementResult()
        result.period = closed.period.description
        result.contentHash = closed.contentHash
        result.closedAtMs = closed.closedAt.milliseconds
        result.closedBy = closed.closedBy
        guard let file = try? JSONSerialization.jsonObject(with: closed.json) as? [String: Any] else { return result }
        // The statement is the file's `statement` object (a period closed before files carried
        // their hash is the whole file).
        let object = file["statement"] as? [String: Any] ?? file
        result.currencyCode = object["currency"] as? String ?? ""
        result.minorUnitsPerMajor = (object["minor_units_per_major"] as? NSNumber)?.int64Value ?? 0
        result.timeZone = object["time_zone"] as? String ?? ""
        result.merchantsWithoutActivity = object["merchants_without_activity"] as? [String] ?? []
        for item in object["late_items"] as? [[String: Any]] ?? [] {
            var late = Coalition_Ops_V1_LateItem()
            late.transactionID = item["transaction_id"] as? String ?? ""
            late.kind = item["kind"] as? String ?? ""
            late.merchantID = item["merchant_id"] as? String ?? ""
            late.occurredAtMs = (item["occurred_at_ms"] as? NSNumber)?.int64Value ?? 0
            late.postedAtMs = (item["posted_at_ms"] as? NSNumber)?.int64Value ?? 0
            late.points = (item["points"] as? NSNumber)?.int64Value ?? 0
            late.amountMinor = (item["amount_minor"] as? NSNumber)?.int64Value ?? 0
            result.lateItems.append(late)
        }
        result.fromMs = (object["from_ms"] as? NSNumber)?.int64Value ?? 0
        result.toMs = (object["to_ms"] as? NSNumber)?.int64Value ?? 0
        result.journalDebitsMinor = (object["journal_debits_minor"] as? NSNumber)?.int64Value ?? 0
        result.journalCreditsMinor = (object["journal_credits_minor"] as? NSNumber)?.int64Value ?? 0
        if let platform = object["platform"] as? [String: Any] {
            result.platform.spreadMinor = (platform["spread_minor"] as? NSNumber)?.int64Value ?? 0
            result.platform.breakageMinor = (platform["breakage_minor"] as? NSNumber)?.int64Value ?? 0
            result.platform.riskMinor = (platform["risk_minor"] as? NSNumber)?.int64Value ?? 0
            result.platform.netMinor = (platform["net_minor"] as? NSNumber)?.int64Value ?? 0
            result.platform.adjustedPoints = (platform["adjusted_points"] as? NSNumber)?.int64Value ?? 0
            result.platform.adjustmentsMinor = (platform["adjustments_minor"] as? NSNumber)?.int64Value ?? 0
            result.platform.marginMinor = (platform["margin_minor"] as? NSNumber)?.int64Value ?? 0
            result.platform.bonusPoints = (platform["bonus_points"] as? NSNumber)?.int64Value ?? 0
            result.platform.bonusMinor = (platform["bonus_minor"] as? NSNumber)?.int64Value ?? 0
            result.platform.vouchersSponsored = (platform["vouchers_sponsored"] as? NSNumber)?.int64Value ?? 0
            result.platform.vouchersSponsoredMinor =
                (platform["vouchers_sponsored_minor"] as? NSNumber)?.int64Value ?? 0
            let liability = platform["liability"] as? [String: Any] ?? [:]
            func figure(_ name: String) -> Coalition_Ops_V1_LiabilityFigure {
                var figure = Coalition_Ops_V1_LiabilityFigure()
                figure.points = (liability["\(name)_points"] as? NSNumber)?.int64Value ?? 0
                figure.minor = (liability["\(name)_minor"] as? NSNumber)?.int64Value ?? 0
                return figure
            }
            result.platform.liability.opening = figure("opening")
            result.platform.liability.issued = figure("issued")
            result.platform.liability.redeemed = figure("redeemed")
            result.platform.liability.expired = figure("expired")
            result.platform.liability.reversed = figure("reversed")
            result.platform.liability.adjusted = figure("adjusted")
            result.platform.liability.closing = figure("closing")
        }
        for merchant in object["merchants"] as? [[String: Any]] ?? [] {
            func int(_ key: String) -> Int64 { (merchant[key] as? NSNumber)?.int64Value ?? 0 }
            var wire = Coalition_Ops_V1_MerchantSettlement()
            wire.merchantID = merchant["merchant_id"] as? String ?? ""
            wire.siteID = merchant["site_id"] as? String ?? ""
            // Base points (`points_issued` in a period closed before bonuses had funders).
            wire.pointsIssued = merchant["base_points"] == nil ? int("points_issued") : int("base_points")
            wire.bonusPoints = int("bonus_points")
            wire.programVersion = int("program_version")
            wire.pointsReversed = int("points_reversed")
            wire.pointsRedeemed = int("points_redeemed")
            wire.parkingPoints = int("parking_points")
            wire.offlineRiskPoints = int("offline_risk_points")
            wire.payableMinor = int("payable_minor")
            wire.receivableMinor = int("receivable_minor")
            wire.netMinor = int("net_minor")
            wire.lateItems = int("late_items")
            wire.pointsAdjusted = int("points_adjusted")
            wire.riskChargeMinor = int("risk_charge_minor")
            wire.vouchersHonoured = int("vouchers_honoured")
            wire.vouchersHonouredMinor = int("vouchers_honoured_minor")
            wire.vouchersSponsored = int("vouchers_sponsored")
            wire.vouchersSponsoredMinor = int("vouchers_sponsored_minor")
            result.merchants.append(wire)
        }
        return result
    }
}
