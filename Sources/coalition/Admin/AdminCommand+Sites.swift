import ArgumentParser
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Wire

/// `coalition admin sites` and `conflicts`.
extension AdminCommand {
    struct Sites: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sites: list them; revoke or reinstate one.",
            subcommands: [SiteList.self, Revoke.self, Reinstate.self],
            defaultSubcommand: SiteList.self)

        /// Sets a site's status, audited with the operator's name and the reason.
        static func set(_ site: String, status: String, reason: String, connection: Connection) async throws {
            var request = Coalition_Ops_V1_SetSiteStatusRequest()
            request.requestID = "SITE-\(status)-\(site)-\(UUID().uuidString.prefix(8))"
            request.siteID = site
            request.status = status
            request.reason = reason
            let response = try await connection.withOps { try await $0.setSiteStatus(request) }
            try connection.show(response) { "site \(response.site.siteID) is \(response.site.status)" }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke a site: every sync call of its certificates is refused (SITE_REVOKED).")
            @OptionGroup var connection: Connection
            @Argument(help: "The site id.") var site: String
            @Option(help: "Why (1-200 characters); recorded with your operator name.") var reason: String

            func run() async throws {
                try await Sites.set(site, status: "revoked", reason: reason, connection: connection)
            }
        }

        struct Reinstate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Reinstate a revoked site.")
            @OptionGroup var connection: Connection
            @Argument(help: "The site id.") var site: String
            @Option(help: "Why (1-200 characters); recorded with your operator name.") var reason: String

            func run() async throws {
                try await Sites.set(site, status: "active", reason: reason, connection: connection)
            }
        }
    }

    struct SiteList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Sites: last seen, high-water mark, lag, exposure, flags.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let response = try await connection.withOps { try await $0.listSites(Coalition_Ops_V1_ListSitesRequest()) }
            try connection.show(response) {
                Table.render(
                    ["site", "format", "status", "last seen (UTC)", "hwm", "lag ms", "exposure", "risk", "flags"],
                    response.sites.map {
                        [
                            $0.siteID, $0.format, $0.status,
                            $0.lastSeenAtMs == 0
                                ? "never"
                                : ISO8601DateFormatter().string(
                                    from: Date(timeIntervalSince1970: Double($0.lastSeenAtMs) / 1000)),
                            "\($0.highWaterMark)", "\($0.syncLagMs)", "\($0.unsyncedExposurePoints)",
                            "\($0.offlineRiskPoints)",
                            $0.flags.joined(separator: ","),
                        ]
                    })
            }
        }
    }

    struct Conflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Conflicts the posting rules found, with their resolution.")
        @OptionGroup var connection: Connection
        @Option(help: "Only this site.") var site: String = ""
        @Option(help: "Only this kind (offline_overdraw, duplicate_receipt, …).") var kind: String = ""
        @Option(help: "Only those found on this day, YYYY-MM-DD (UTC).") var period: String?

        func run() async throws {
            var request = Coalition_Ops_V1_ListConflictsRequest()
            request.siteID = site
            request.kind = kind
            if let period {
                guard let day = CivilDate(parsing: period) else {
                    throw ValidationError("--period: YYYY-MM-DD, not '\(period)'")
                }
                request.fromMs = day.daysSinceEpoch * Timestamp.day
                request.toMs = request.fromMs + Timestamp.day
            }
            request.pageSize = 1_000
            let response = try await connection.withOps { try await $0.listConflicts(request) }
            try connection.show(response) {
                Table.render(
                    ["kind", "site", "member", "points", "resolution"],
                    response.conflicts.map { [$0.kind, $0.siteID, $0.memberID, "\($0.points)", $0.resolution] })
            }
        }
    }
}
