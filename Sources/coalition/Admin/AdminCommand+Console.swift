import ArgumentParser
import Core
import Foundation
import Wire

/// `coalition admin console login` and `coalition admin report today|liability`: the web console's
/// sign-in, and the figures of its "today" and "liability" pages on the command line.
extension AdminCommand {
    struct ConsoleAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "console", abstract: "The gateway's web console.", subcommands: [Login.self])

        struct Login: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Prints a one-time link that signs you in to the web console (your operator certificate).",
                discussion: """
                    Open the link in a browser within the console's login_link_ms (5 minutes by default); it works
                    once, and opens a session for session_ms (8 hours). The session is an HttpOnly, SameSite=Strict
                    cookie; everything you do in the console is recorded under your operator name.
                    """)
            @OptionGroup var connection: Connection

            func run() async throws {
                let response = try await connection.withOps {
                    try await $0.createConsoleLogin(Coalition_Ops_V1_CreateConsoleLoginRequest())
                }
                try connection.show(response) {
                    "\(response.url)\n(signs in \(response.operator), once, until \(Self.time(response.expiresAtMs)))"
                }
            }

            static func time(_ milliseconds: Int64) -> String {
                ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1_000))
            }
        }
    }

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The console's figures: a day's activity, the points liability.",
            subcommands: [Today.self, Liability.self])

        struct Today: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Points issued and redeemed per hour and format, top merchants, promotion budgets.")
            @OptionGroup var connection: Connection
            @Option(help: "The day, YYYY-MM-DD in the program's time zone (default today).") var day: String = ""

            func run() async throws {
                var request = Coalition_Ops_V1_GetActivityRequest()
                request.day = day
                let response = try await connection.withOps { try await $0.getActivity(request) }
                try connection.show(response) {
                    "\(response.day): issued \(response.issuedPoints) points, redeemed \(response.redeemedPoints)\n\n"
                        + Table.render(
                            ["hour", "format", "issued", "redeemed"],
                            response.hours.map {
                                ["\($0.hour)", $0.format, "\($0.issuedPoints)", "\($0.redeemedPoints)"]
                            })
                        + "\n"
                        + Table.render(
                            ["merchant", "site", "issued", "redeemed", "transactions"],
                            response.topMerchants.map {
                                [
                                    $0.merchantID, $0.siteID, "\($0.issuedPoints)", "\($0.redeemedPoints)",
                                    "\($0.transactions)",
                                ]
                            })
                        + "\n"
                        + Table.render(
                            ["promotion", "budget", "given", "left"],
                            response.promotions.map {
                                [$0.promotionID, "\($0.budgetPoints)", "\($0.givenPoints)", "\($0.leftPoints)"]
                            })
                }
            }
        }

        struct Liability: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Points members hold, their value at the redeem price, expiring soon, breakage to date.")
            @OptionGroup var connection: Connection

            func run() async throws {
                let response = try await connection.withOps {
                    try await $0.getLiability(Coalition_Ops_V1_GetLiabilityRequest())
                }
                try connection.show(response) {
                    Table.render(
                        ["figure", "value"],
                        [
                            ["outstanding points", "\(response.outstandingPoints)"],
                            [
                                "value at redeem price \(response.redeemPrice) (minor units)",
                                "\(response.outstandingValueMinor)",
                            ],
                            ["members holding points", "\(response.membersWithPoints)"],
                            ["expiring within 30 days", "\(response.expiring30DaysPoints)"],
                            ["expiring within 60 days", "\(response.expiring60DaysPoints)"],
                            ["expiring within 90 days", "\(response.expiring90DaysPoints)"],
                            ["expired to date (breakage)", "\(response.expiredPoints)"],
                        ])
                }
            }
        }
    }
}
