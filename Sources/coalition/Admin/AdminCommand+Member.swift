import ArgumentParser
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Wire

/// `coalition admin member show|history|adjust`.
extension AdminCommand {
    struct Member: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a member, their history, or adjust their points.",
            subcommands: [Show.self, History.self, Adjust.self])

        struct Show: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Argument(help: "Member id, +phone, or card:NUMBER.") var key: String

            func run() async throws {
                var request = Coalition_Ops_V1_GetMemberRequest()
                if key.hasPrefix("+") {
                    request.phone = key
                } else if key.hasPrefix("card:") {
                    request.cardNumber = String(key.dropFirst(5))
                } else {
                    request.memberID = key
                }
                let m = try await connection.withOps { try await $0.getMember(request) }
                try connection.show(m) {
                    "member \(m.memberID) tier \(m.tier) (review \(m.tierReviewDate)), balance \(m.balancePoints), held \(m.heldPoints), qualifying \(m.qualifyingPoints12M)\n"
                        + Table.render(
                            ["lot", "remaining", "of", "expires ms"],
                            m.lots.map {
                                [$0.lotID, "\($0.remainingPoints)", "\($0.originalPoints)", "\($0.expiresAtMs)"]
                            })
                }
            }
        }

        struct History: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Argument(help: "Member id.") var member: String

            func run() async throws {
                var request = Coalition_Ops_V1_MemberHistoryRequest()
                request.memberID = member
                request.pageSize = 1_000
                let response = try await connection.withOps { try await $0.memberHistory(request) }
                try connection.show(response) {
                    Table.render(
                        ["kind", "points", "site", "merchant", "posted ms", "detail"],
                        response.entries.map {
                            [$0.kind, "\($0.points)", $0.siteID, $0.merchantID, "\($0.postedAtMs)", $0.detail]
                        })
                }
            }
        }

        struct Adjust: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Argument(help: "Member id.") var member: String
            @Option(help: "Signed points.") var points: Int64
            @Option(help: "Why (1-200 characters); recorded with your operator name.") var reason: String
            @Option(
                help:
                    "Who pays for the points: 'platform' or a merchant id (charged at its issue price). Required for a credit; a debit gives them back to the platform unless it names a merchant."
            ) var fundedBy: String = ""
            @Option(help: "Idempotency key (default: a new one).") var requestID: String =
                "ADJ-\(UUID().uuidString.prefix(12))"

            func run() async throws {
                var request = Coalition_Ops_V1_AdjustMemberRequest()
                request.requestID = requestID
                request.memberID = member
                request.points = points
                request.reason = reason
                request.fundedBy = fundedBy
                let response = try await connection.withOps { try await $0.adjustMember(request) }
                try connection.show(response) {
                    "adjusted: transaction \(response.transactionID), balance \(response.balanceAfterPoints)"
                }
            }
        }
    }
}
