import ArgumentParser
import Core
import EdgeNode
import Foundation
import Gateway
import Wire

/// `coalition admin …`: operations on the network. Today these open the gateway's ledger file
/// directly (on the gateway's machine, safe while it runs); the Ops service over mTLS with an
/// operator certificate replaces this access with the operations issue.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Operate the network (expiry and settlement today; more with the operations issue).",
        subcommands: [Expire.self, Settle.self]
    )

    /// Opens the gateway's store from its config file, without serving.
    static func store(config: String) throws -> SQLiteLedgerStore {
        do {
            let configuration = try GatewayConfiguration.load(file: config)
            let database = try GatewayDatabase.open(path: configuration.databasePath, busyTimeoutMilliseconds: configuration.limits.busyTimeoutMilliseconds)
            return try SQLiteLedgerStore(database: database, clock: SystemWallClock(), limits: configuration.limits)
        } catch let error as ConfigurationError {
            throw CommandFailure(error.description)
        }
    }

    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close, show and export a day's settlement (docs/operations.md).", subcommands: [Close.self, Show.self, Export.self])

        static func day(_ text: String) throws -> CivilDate {
            guard let day = CivilDate(parsing: text) else { throw ValidationError("--period: YYYY-MM-DD, not '\(text)'") }
            return day
        }

        /// Writes DIR/PERIOD.json and DIR/PERIOD.csv.
        static func export(_ closed: ClosedSettlement, to directory: String) throws {
            let url = URL(fileURLWithPath: directory)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            try closed.json.write(to: url.appendingPathComponent("\(closed.period).json"), options: .atomic)
            try closed.csv.write(to: url.appendingPathComponent("\(closed.period).csv"), options: .atomic)
        }

        struct Close: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Close a period (a day of the program's time zone). Closing again returns the same bytes.")

            @Option(help: "The gateway config file.") var config: String
            @Option(help: "The day, YYYY-MM-DD.") var period: String
            @Option(help: "Your name, recorded on the close.") var `operator`: String = NSUserName()
            @Option(help: "Also write PERIOD.json and PERIOD.csv into this folder.") var out: String?

            func run() async throws {
                let store = try AdminCommand.store(config: config)
                let closed: ClosedSettlement
                do {
                    closed = try await store.closeSettlement(period: try Settle.day(period), by: `operator`)
                } catch let refusal as SettlementRefusal {
                    throw CommandFailure(refusal.description)
                }
                if let out { try Settle.export(closed, to: out) }
                print(String(decoding: closed.csv, as: UTF8.self), terminator: "")
                print("\(closed.alreadyClosed ? "already closed" : "closed") \(closed.period), content hash \(closed.contentHash)")
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print a closed period's statement (CSV, or --json).")

            @Option(help: "The gateway config file.") var config: String
            @Option(help: "The day, YYYY-MM-DD.") var period: String
            @Flag(help: "Print the JSON statement of record.") var json = false

            func run() async throws {
                let store = try AdminCommand.store(config: config)
                guard let closed = try await store.storedSettlement(try Settle.day(period)) else {
                    throw CommandFailure("period \(period) is not closed")
                }
                print(String(decoding: json ? closed.json : closed.csv, as: UTF8.self), terminator: "")
            }
        }

        struct Export: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Write a closed period's PERIOD.json and PERIOD.csv into a folder.")

            @Option(help: "The gateway config file.") var config: String
            @Option(help: "The day, YYYY-MM-DD.") var period: String
            @Option(help: "The folder.") var out: String

            func run() async throws {
                let store = try AdminCommand.store(config: config)
                guard let closed = try await store.storedSettlement(try Settle.day(period)) else {
                    throw CommandFailure("period \(period) is not closed")
                }
                try Settle.export(closed, to: out)
                print("wrote \(out)/\(closed.period).json and .csv (content hash \(closed.contentHash))")
            }
        }
    }

    struct Expire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run expiry, or list members with points expiring soon.", subcommands: [Run.self, Reminders.self])

        struct Run: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Expire the lots that expire by the end of a day (program time zone). Running a day again changes nothing.")

            @Option(help: "The gateway config file.") var config: String
            @Option(help: "The day, YYYY-MM-DD (default: yesterday in the program's time zone).") var asOf: String?

            func run() async throws {
                let store = try AdminCommand.store(config: config)
                guard let zone = store.programs.latest?.program.timeZone else { throw CommandFailure("the gateway has no program") }
                let day: CivilDate
                if let asOf {
                    guard let parsed = CivilDate(parsing: asOf) else { throw ValidationError("--as-of: YYYY-MM-DD, not '\(asOf)'") }
                    day = parsed
                } else {
                    day = zone.date(of: store.clockNow).adding(days: -1)
                }
                let run = try await store.runExpiry(asOfEndOf: day)
                print(
                    run.alreadyRun
                        ? "expiry as of the end of \(day) had already run: \(run.points) points of \(run.members) members"
                        : "expired \(run.points) points of \(run.members) members as of the end of \(day)")
            }
        }

        struct Reminders: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Members with points expiring within the program's reminder window.")

            @Option(help: "The gateway config file.") var config: String
            @Option(help: "The day the window starts, YYYY-MM-DD (default: today).") var asOf: String?
            @Option(help: "At most this many members (1 to 100000).") var limit: Int = 1_000

            func run() async throws {
                guard (1...100_000).contains(limit) else { throw ValidationError("--limit: 1 to 100000") }
                let store = try AdminCommand.store(config: config)
                guard let zone = store.programs.latest?.program.timeZone else { throw CommandFailure("the gateway has no program") }
                var start = store.clockNow
                if let asOf {
                    guard let day = CivilDate(parsing: asOf) else { throw ValidationError("--as-of: YYYY-MM-DD, not '\(asOf)'") }
                    start = zone.startOfDay(day)
                }
                let reminders = try await store.expiryReminders(asOf: start, limit: limit)
                print("member\tpoints\texpires")
                for reminder in reminders {
                    print("\(reminder.member)\t\(reminder.points)\t\(zone.date(of: reminder.expiresAt.adding(milliseconds: -1)))")
                }
            }
        }
    }
}
