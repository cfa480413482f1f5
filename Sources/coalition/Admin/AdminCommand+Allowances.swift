import ArgumentParser
import Core
import Foundation
import Wire

/// `coalition admin allowances list|grant|end`: points reserved for sites (docs/protocol.md,
/// "Allowances"), with what each site's escrow holds.
extension AdminCommand {
    struct Allowances: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "allowances", abstract: "Points reserved for members at sites (escrow): list, grant, end.",
            subcommands: [List.self, Grant.self, End.self], defaultSubcommand: List.self)

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Allowances, newest first, and what each site's escrow holds.")
            @OptionGroup var connection: Connection
            @Option(help: "Only this site's.") var site: String = ""
            @Option(help: "Only this member's.") var member: String = ""
            @Flag(help: "Only active allowances.") var active = false
            @Option(help: "At most this many (1-1000).") var limit: Int32 = 100

            func run() async throws {
                var request = Coalition_Ops_V1_ListAllowancesRequest()
                request.siteID = site
                request.memberID = member
                request.activeOnly = active
                request.pageSize = limit
                let response = try await connection.withOps { try await $0.listAllowances(request) }
                try connection.show(response) {
                    Table.render(
                        [
                            "allowance", "site", "member", "granted", "spent", "released", "left", "lease until",
                            "status",
                        ],
                        response.allowances.map {
                            [
                                $0.allowanceID, $0.siteID, $0.memberID, "\($0.grantedPoints)", "\($0.spentPoints)",
                                "\($0.releasedPoints)", "\($0.leftPoints)",
                                Orders.time($0.leaseUntilMs), $0.status,
                            ]
                        })
                        + "\n\nescrow by site:\n"
                        + Table.render(
                            ["site", "escrowed points"],
                            response.escrow.map { [$0.siteID, "\($0.escrowedPoints)"] })
                }
            }
        }

        struct Grant: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Reserves points of a member for a site, by the program's rule for the site's format.")
            @OptionGroup var connection: Connection
            @Option(help: "The site.") var site: String
            @Option(help: "The member.") var member: String
            @Option(help: "Points (default: as many as the rule allows and the member may spend).") var points: Int64 =
                0
            @Option(help: "The lease's end, Unix ms (default: the rule's lease from now).") var leaseUntilMs: Int64 = 0
            @Option(help: "Why (1-200 characters); recorded with your operator name.") var reason: String
            @Option(help: "Idempotency key (default: a new one).") var requestID: String =
                "ALW-\(UUID().uuidString.prefix(12))"

            func run() async throws {
                var request = Coalition_Ops_V1_GrantAllowanceRequest()
                request.requestID = requestID
                request.siteID = site
                request.memberID = member
                request.points = points
                request.leaseUntilMs = leaseUntilMs
                request.reason = reason
                let response = try await connection.withOps { try await $0.grantAllowance(request) }
                try connection.show(response) {
                    let allowance = response.allowance
                    return (response.alreadyGranted ? "already granted: " : "granted: ")
                        + "\(allowance.allowanceID), \(allowance.grantedPoints) points at \(allowance.siteID) until "
                        + Orders.time(allowance.leaseUntilMs)
                }
            }
        }

        struct End: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Ends an allowance now: what it has left goes back to the member.",
                discussion: """
                    A spend the site made offline from it and pushes later is then posted as a floor-limit one
                    (conflict `allowance_reclaimed`). Prefer letting the lease run out.
                    """)
            @OptionGroup var connection: Connection
            @Argument(help: "The allowance id.") var allowance: String
            @Option(help: "Why (1-200 characters); recorded with your operator name.") var reason: String

            func run() async throws {
                var request = Coalition_Ops_V1_ReturnAllowanceRequest()
                request.allowanceID = allowance
                request.reason = reason
                let response = try await connection.withOps { try await $0.returnAllowance(request) }
                try connection.show(response) {
                    (response.alreadyEnded ? "already ended (\(response.allowance.status)): " : "ended: ")
                        + "\(response.allowance.releasedPoints) points back to \(response.allowance.memberID)"
                }
            }
        }
    }
}

/// `coalition admin quotas`: each budgeted promotion's budget and what each site holds of it
/// (docs/protocol.md, "Promotion quotas").
extension AdminCommand {
    struct Quotas: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "quotas",
            abstract: "Budgeted promotions: budget, given, reserved for sites and the pool; each site's quota.")
        @OptionGroup var connection: Connection
        @Option(help: "Only this promotion.") var promotion: String = ""
        @Option(help: "Only this site's quotas.") var site: String = ""

        func run() async throws {
            var request = Coalition_Ops_V1_ListPromotionQuotasRequest()
            request.promotionID = promotion
            request.siteID = site
            let response = try await connection.withOps { try await $0.listPromotionQuotas(request) }
            try connection.show(response) {
                Table.render(
                    ["promotion", "budget", "given", "reserved", "pool", "ended"],
                    response.promotions.map {
                        [
                            $0.promotionID, "\($0.budgetPoints)", "\($0.givenPoints)", "\($0.reservedPoints)",
                            "\($0.poolPoints)", $0.ended ? "yes" : "no",
                        ]
                    })
                    + "\n\nquotas by site:\n"
                    + Table.render(
                        ["promotion", "site", "given", "reserved", "quota left", "issue", "issued at", "recent use"],
                        response.quotas.map {
                            [
                                $0.promotionID, $0.siteID, "\($0.givenPoints)", "\($0.reservedPoints)",
                                "\($0.quotaLeftPoints)", "\($0.issue)", Orders.time($0.issuedAtMs),
                                "\($0.recentPoints)",
                            ]
                        })
            }
        }
    }
}
