import ArgumentParser
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Wire

/// `coalition admin settle close|show|export` and `expire run|reminders`.
extension AdminCommand {
    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close, show and export a day's settlement.", subcommands: [Close.self, Show.self, Export.self])

        static func table(_ result: Coalition_Ops_V1_SettlementResult) -> String {
            let platform = result.platform
            let closedAt = Date(timeIntervalSince1970: Double(result.closedAtMs) / 1_000).ISO8601Format()
            let unit = result.currencyCode.isEmpty ? "minor units" : "minor units of \(result.currencyCode)"
            return "settlement of \(result.period) (\(result.timeZone)); points in points, money in \(unit); "
                + "net > 0: the platform pays the merchant\n"
                + Table.render(
                    [
                        "merchant", "base pts", "bonus pts", "reversed pts", "redeemed pts", "parking pts",
                        "risk pts", "adjusted pts", "payable", "receivable", "risk charge", "net", "late items",
                    ],
                    result.merchants.map {
                        [
                            $0.merchantID, "\($0.pointsIssued)", "\($0.bonusPoints)", "\($0.pointsReversed)",
                            "\($0.pointsRedeemed)",
                            "\($0.parkingPoints)", "\($0.offlineRiskPoints)", "\($0.pointsAdjusted)",
                            "\($0.payableMinor)", "\($0.receivableMinor)", "\($0.riskChargeMinor)", "\($0.netMinor)",
                            "\($0.lateItems)",
                        ]
                    })
                + "\nplatform (minor units): spread \(platform.spreadMinor), risk \(platform.riskMinor), net \(platform.netMinor); "
                + "margin \(platform.marginMinor), breakage \(platform.breakageMinor), adjustments \(platform.adjustmentsMinor), "
                + "bonuses it funds \(platform.bonusPoints) points worth \(platform.bonusMinor)\n"
                + "liability: \(platform.liability.closing.points) points worth \(platform.liability.closing.minor) at the close "
                + "(opening \(platform.liability.opening.points) worth \(platform.liability.opening.minor))\n"
                + "journal: debits \(result.journalDebitsMinor) = credits \(result.journalCreditsMinor); content hash \(result.contentHash)\n"
                + (result.lateItems.isEmpty
                    ? ""
                    : "late items: "
                        + result.lateItems.map { "\($0.transactionID) (\($0.merchantID), \($0.points) pts)" }
                        .joined(separator: ", ") + "\n")
                + (result.merchantsWithoutActivity.isEmpty
                    ? "" : "no activity: \(result.merchantsWithoutActivity.joined(separator: ", "))\n")
                + "closed by \(result.closedBy) at \(closedAt)"
        }

        struct Close: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Option(help: "The day, YYYY-MM-DD (program time zone).") var period: String

            func run() async throws {
                var request = Coalition_Ops_V1_CloseSettlementRequest()
                request.requestID = "SETTLE-\(period)"
                request.period = period
                let response = try await connection.withOps { try await $0.closeSettlement(request) }
                try connection.show(response) {
                    (response.alreadyClosed ? "already closed\n" : "closed\n") + Settle.table(response.result)
                }
            }
        }

        struct Show: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Option(help: "The day, YYYY-MM-DD.") var period: String

            func run() async throws {
                var request = Coalition_Ops_V1_GetSettlementRequest()
                request.period = period
                let response = try await connection.withOps { try await $0.getSettlement(request) }
                try connection.show(response) { Settle.table(response.result) }
            }
        }

        struct Export: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Option(help: "The day, YYYY-MM-DD.") var period: String
            @Option(
                help:
                    "The folder to write PERIOD.json, PERIOD.csv, PERIOD.manifest.txt and PERIOD/MERCHANT.csv into.")
            var out: String

            func run() async throws {
                var request = Coalition_Ops_V1_ExportSettlementRequest()
                request.period = period
                let response = try await connection.withOps { try await $0.exportSettlement(request) }
                let folder = URL(fileURLWithPath: out)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                for file in response.files {
                    // Names are the gateway's ("2026-11-24/mall-fashion.csv"); none may leave the folder.
                    guard !file.name.hasPrefix("/"), !file.name.split(separator: "/").contains("..") else {
                        throw ValidationError("the gateway sent a file name outside the folder: '\(file.name)'")
                    }
                    let target = folder.appendingPathComponent(file.name)
                    try FileManager.default.createDirectory(
                        at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try file.content.write(to: target, options: .atomic)
                }
                try connection.show(response) {
                    "wrote \(response.files.map(\.name).joined(separator: ", ")) to \(out) (content hash \(response.contentHash))"
                }
            }
        }
    }

    struct Expire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run expiry, or list members with points expiring soon.", subcommands: [Run.self, Reminders.self])

        struct Run: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Option(help: "Expire what expires by the end of this day, YYYY-MM-DD (default: yesterday).") var asOf:
                String = ""

            func run() async throws {
                var request = Coalition_Ops_V1_RunExpiryRequest()
                request.requestID = "EXPIRE-\(asOf)"
                request.asOf = asOf
                let response = try await connection.withOps { try await $0.runExpiry(request) }
                try connection.show(response) {
                    if response.alreadyRun {
                        "expiry as of the end of \(response.asOf) had already run: nothing more was due "
                            + "(that run expired \(response.pointsExpired) points of \(response.membersAffected) members)"
                    } else if response.pointsExpired == 0 {
                        "expiry as of the end of \(response.asOf): nothing was due"
                    } else {
                        "expired \(response.pointsExpired) points of \(response.membersAffected) members as of the end of \(response.asOf)"
                    }
                }
            }
        }

        struct Reminders: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Option(help: "The day the reminder window starts, YYYY-MM-DD (default: today).") var asOf: String = ""

            func run() async throws {
                var request = Coalition_Ops_V1_ListExpiryRemindersRequest()
                request.asOf = asOf
                let response = try await connection.withOps { try await $0.listExpiryReminders(request) }
                try connection.show(response) {
                    Table.render(
                        ["member", "points", "expires ms"],
                        response.reminders.map { [$0.memberID, "\($0.points)", "\($0.expiresAtMs)"] })
                }
            }
        }
    }
}
