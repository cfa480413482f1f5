import ArgumentParser
import Foundation
import Wire

/// `coalition admin orders show|report`: an order's story and the points mall's sales.
extension AdminCommand {
    struct Orders: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The points mall's orders: one order's story, or a sales report.",
            subcommands: [Show.self, Report.self])

        static func time(_ ms: Int64) -> String {
            ms == 0 ? "" : Date(timeIntervalSince1970: Double(ms) / 1_000).ISO8601Format()
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract:
                    "An order: what, for whom, its vouchers and every use of them at the tills, its cancellation.",
                discussion: """
                    A use marked with a conflict (voucher_double_use, voucher_cancelled, voucher_expired) was
                    honoured by a till that did not know better; its points were booked to that site's offline_risk.
                    """)
            @OptionGroup var connection: Connection
            @Argument(help: "The order's id.") var order: String

            func run() async throws {
                var request = Coalition_Ops_V1_GetOrderRequest()
                request.orderID = order
                let response = try await connection.withOps { try await $0.getOrder(request) }
                try connection.show(response) {
                    var lines = [
                        "order \(response.orderID): \(response.quantity) × \(response.itemID) (\(response.kind)) for \(response.points) points"
                            + (response.moneyMinor > 0 ? " + \(response.moneyMinor) fen" : ""),
                        "  placed \(Orders.time(response.placedAtMs)) by channel \(response.channel), request \(response.requestID)",
                        "  member \(response.memberID)"
                            + (response.requestedMemberID == response.memberID
                                ? "" : " (asked for \(response.requestedMemberID), merged into it)"),
                        "  status \(response.status)"
                            + (response.cancelledAtMs == 0
                                ? ""
                                : " at \(Orders.time(response.cancelledAtMs)) (transaction \(response.cancelTransactionID))"),
                    ]
                    if !response.vouchers.isEmpty {
                        lines.append("vouchers:")
                        lines.append(
                            Table.render(
                                ["voucher", "status", "valid until"],
                                response.vouchers.map { [$0.voucherID, $0.status, Orders.time($0.validUntilMs)] }))
                    }
                    if !response.uses.isEmpty {
                        lines.append("uses at the tills, in posting order:")
                        lines.append(
                            Table.render(
                                ["voucher", "site", "merchant", "when", "transaction", "conflict"],
                                response.uses.map {
                                    [
                                        $0.voucherID, $0.siteID, $0.merchantID, Orders.time($0.usedAtMs),
                                        $0.transactionID, $0.conflict.isEmpty ? "stands" : $0.conflict,
                                    ]
                                }))
                    }
                    return lines.joined(separator: "\n")
                }
            }
        }

        struct Report: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Sales per item of the orders placed from one day to another (inclusive, program time zone).")
            @OptionGroup var connection: Connection
            @Option(help: "The first day, YYYY-MM-DD.") var from: String
            @Option(help: "The last day, YYYY-MM-DD (at most 366 days after --from).") var to: String

            func run() async throws {
                var request = Coalition_Ops_V1_SalesReportRequest()
                request.from = from
                request.to = to
                let response = try await connection.withOps { try await $0.salesReport(request) }
                try connection.show(response) {
                    "sales of the points mall, \(response.from) to \(response.to) (points and money of orders not cancelled)\n"
                        + Table.render(
                            [
                                "item", "kind", "sponsor", "orders", "units", "cancelled", "points", "money (fen)",
                                "vouchers used", "open",
                            ],
                            response.items.map {
                                [
                                    $0.itemID, $0.kind, $0.sponsor, "\($0.orders)", "\($0.units)",
                                    "\($0.unitsCancelled)",
                                    "\($0.points)", "\($0.moneyMinor)", "\($0.vouchersUsed)", "\($0.vouchersOpen)",
                                ]
                            })
                }
            }
        }
    }
}
