import Core
import GRPCCore
import Wire

/// The points mall for operators: stock by item, stock adjustments, the voucher list.
extension OpsService {
    package func listCatalogStock(
        request: ServerRequest<Coalition_Ops_V1_ListCatalogStockRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListCatalogStockResponse> {
        try await handle(request, context) { _, _ in
            let items = store.programs.latest?.program.catalog.items ?? []
            let stock = try await store.stock(items.map(\.id))
            var response = Coalition_Ops_V1_ListCatalogStockResponse()
            response.items = items.map { Self.itemStock($0, stock[$0.id] ?? MallStock(sold: 0, adjusted: 0)) }
            return response
        }
    }

    package func adjustStock(
        request: ServerRequest<Coalition_Ops_V1_AdjustStockRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_AdjustStockResponse> {
        try await handle(request, context) { name, message in
            guard let id = ItemID(message.itemID) else { throw ServiceError.invalid("item_id", Slug.rule) }
            guard let item = store.programs.latest?.program.catalog.item(id) else {
                throw ServiceError.notFound("item_id", "no item '\(id)' is in the program's catalog")
            }
            guard message.units != 0, (-100_000...100_000).contains(message.units) else {
                throw ServiceError.invalid("units", "must be -100000 to 100000 and not 0 (found \(message.units))")
            }
            try Self.requireReason(message.reason)
            do {
                let stock = try await store.adjustStock(item, units: message.units, reason: message.reason, by: name)
                var response = Coalition_Ops_V1_AdjustStockResponse()
                response.item = Self.itemStock(item, stock)
                return response
            } catch let refusal as MallStockRefusal {
                throw ServiceError(
                    .failedPrecondition,
                    "units: \(refusal.units) would leave \(refusal.left + refusal.units) units of '\(refusal.item)' (\(refusal.left) left)",
                    reason: "NOT_ENOUGH_STOCK")
            } catch let busy as MallBusy {
                throw ServiceError(
                    .resourceExhausted, "the points mall is busy: \(busy); retry shortly", reason: "BUSY")
            }
        }
    }

    package func listVouchers(
        request: ServerRequest<Coalition_Ops_V1_ListVouchersRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Ops_V1_ListVouchersResponse> {
        try await handle(request, context) { _, message in
            let size = try Self.pageSize(message.pageSize)
            var filter = VoucherFilter()
            if !message.memberID.isEmpty {
                guard let member = MemberID(message.memberID) else {
                    throw ServiceError.invalid("member_id", "must be a 26-character member id")
                }
                filter.member = member
            }
            if !message.itemID.isEmpty {
                guard let item = ItemID(message.itemID) else { throw ServiceError.invalid("item_id", Slug.rule) }
                filter.item = item
            }
            if !message.status.isEmpty {
                guard let status = VoucherStatus(rawValue: message.status) else {
                    throw ServiceError.invalid("status", "issued, used or cancelled (found '\(message.status)')")
                }
                filter.status = status
            }
            if !message.usedSiteID.isEmpty {
                guard let site = SiteID(message.usedSiteID) else {
                    throw ServiceError.invalid("used_site_id", Slug.rule)
                }
                filter.usedSite = site
            }
            let page = try await store.vouchers(
                filter, before: try VoucherFilter.pageStart(message.pageToken), limit: size + 1)
            var response = Coalition_Ops_V1_ListVouchersResponse()
            response.vouchers = page.prefix(size).map(Coalition_Ops_V1_VoucherEntry.init)
            if page.count > size, let last = response.vouchers.last { response.nextPageToken = last.voucherID }
            return response
        }
    }

    static func itemStock(_ item: CatalogItem, _ stock: MallStock) -> Coalition_Ops_V1_ItemStock {
        var wire = Coalition_Ops_V1_ItemStock()
        wire.itemID = item.id.rawValue
        wire.name = item.name
        wire.kind = item.kind.rawValue
        wire.stock = item.stock
        wire.sold = stock.sold
        wire.adjusted = stock.adjusted
        wire.left = item.stock + stock.adjusted - stock.sold
        return wire
    }
}

extension Coalition_Ops_V1_VoucherEntry {
    init(_ entry: VoucherEntry) {
        self.init()
        voucherID = entry.voucherID
        orderID = entry.orderID
        itemID = entry.item
        memberID = entry.member
        status = entry.status
        validUntilMs = entry.validUntil.milliseconds
        usedTransactionID = entry.usedTransactionID ?? ""
        usedSiteID = entry.usedSite ?? ""
        usedMerchantID = entry.usedMerchant ?? ""
        usedAtMs = entry.usedAt?.milliseconds ?? 0
    }
}

extension VoucherFilter {
    /// The voucher id a page token names (the last voucher of the previous page); nil for the
    /// first page. Anything else is INVALID_ARGUMENT.
    static func pageStart(_ token: String) throws -> String? {
        guard !token.isEmpty else { return nil }
        guard TransactionID(token) != nil else {
            throw ServiceError.invalid("page_token", "is not a token from a previous page")
        }
        return token
    }
}
