import ArgumentParser
import Foundation
import Wire

/// `coalition admin catalog` and `coalition admin vouchers`: the points mall for operators.
extension AdminCommand {
    struct Catalog: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The points mall's items and their units: stock, sold, added or removed, left.",
            subcommands: [List.self, Stock.self], defaultSubcommand: List.self)

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Each item of the catalog with its units.")
            @OptionGroup var connection: Connection

            func run() async throws {
                let response = try await connection.withOps {
                    try await $0.listCatalogStock(Coalition_Ops_V1_ListCatalogStockRequest())
                }
                try connection.show(response) {
                    Table.render(
                        ["item", "kind", "stock", "sold", "adjusted", "left", "name"],
                        response.items.map {
                            [$0.itemID, $0.kind, "\($0.stock)", "\($0.sold)", "\($0.adjusted)", "\($0.left)", $0.name]
                        })
                }
            }
        }

        struct Stock: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Adds units of an item (--add 20) or removes them (--add -3), with a reason.",
                discussion: "Recorded with your operator name. Removing more units than are left is refused.")
            @OptionGroup var connection: Connection
            @Argument(help: "The catalog item's id.") var item: String
            @Option(help: "Units to add (negative: to remove), -100000 to 100000.") var add: Int64
            @Option(help: "Why (1-200 characters).") var reason: String

            func run() async throws {
                var request = Coalition_Ops_V1_AdjustStockRequest()
                request.itemID = item
                request.units = add
                request.reason = reason
                let response = try await connection.withOps { try await $0.adjustStock(request) }
                try connection.show(response) {
                    let item = response.item
                    return
                        "\(item.itemID): \(item.left) left (stock \(item.stock), sold \(item.sold), adjusted \(item.adjusted))"
                }
            }
        }
    }

    struct Vouchers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The points mall's vouchers, newest first, with the use that stands of each.",
            discussion: """
                A voucher honoured a second time (two offline sites) is not listed twice: the second use is a
                conflict, `coalition admin conflicts --kind voucher_double_use`.
                """)
        @OptionGroup var connection: Connection
        @Option(help: "Only this member's.") var member: String = ""
        @Option(help: "Only vouchers of this item.") var item: String = ""
        @Option(help: "issued, used or cancelled.") var status: String = ""
        @Option(help: "Only vouchers used at this site.") var usedAt: String = ""
        @Option(help: "How many (1-1000).") var limit: Int32 = 100
        @Option(help: "The page after this voucher id (the 'next' a page prints).") var after: String = ""

        func run() async throws {
            var request = Coalition_Ops_V1_ListVouchersRequest()
            request.memberID = member
            request.itemID = item
            request.status = status
            request.usedSiteID = usedAt
            request.pageSize = limit
            request.pageToken = after
            let response = try await connection.withOps { try await $0.listVouchers(request) }
            try connection.show(response) {
                func time(_ ms: Int64) -> String {
                    ms == 0 ? "" : Date(timeIntervalSince1970: Double(ms) / 1_000).ISO8601Format()
                }
                return Table.render(
                    ["voucher", "item", "member", "status", "valid until", "used at", "merchant", "when"],
                    response.vouchers.map {
                        [
                            $0.voucherID, $0.itemID, $0.memberID, $0.status, time($0.validUntilMs), $0.usedSiteID,
                            $0.usedMerchantID, time($0.usedAtMs),
                        ]
                    })
                    + (response.nextPageToken.isEmpty ? "" : "\nnext: --after \(response.nextPageToken)")
            }
        }
    }
}
