import ArgumentParser
import Core
import Foundation
import NodeSupport
import Wire

/// `coalition program …`: work with a program file on this machine, no server needed.
struct ProgramCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "program",
        abstract: "Check a program file and try its rules locally.",
        subcommands: [Check.self, Earn.self, Redeem.self, Parking.self]
    )

    /// Reads and validates a program file, turning its errors into one readable failure.
    static func load(_ path: String) throws -> Program {
        let bytes: [UInt8]
        do {
            bytes = Array(try ReadableFile.contents(of: path))
        } catch {
            throw CommandFailure("\(error)")
        }
        do {
            return try ProgramDocumentParser.load(bytes)
        } catch {
            let lines = error.errors.map { "  \($0.path): \($0.message)" }.joined(separator: "\n")
            throw CommandFailure("\(path) is not a valid program (\(error.errors.count) problems):\n\(lines)")
        }
    }

    /// Parses a local time in the program's zone, or now when absent.
    static func instant(_ text: String?, in program: Program) throws -> Timestamp {
        guard let text else { return SystemWallClock().now() }
        guard let local = CivilDateTime(parsing: text) else {
            throw ValidationError("--at must look like 2026-11-28T12:00 (program time zone), not '\(text)'")
        }
        return program.timeZone.instant(of: local)
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a program file and summarise it; every problem is listed with its key path.")

        @Argument(help: "The program file (YAML or JSON).")
        var file: String

        func run() async throws {
            let program = try ProgramCommand.load(file)
            let merchants = program.sites.reduce(0) { $0 + $1.merchants.count }
            print("\(file): valid program '\(program.id)' (\(program.name))")
            print("  currency \(program.currency.code), time zone \(program.timeZone)")
            print("  \(program.sites.count) sites, \(merchants) merchants")
            for site in program.sites {
                let parking = site.parking.map { " · parking \(Self.major($0.pricePerHour, program.currency))/h" } ?? ""
                print(
                    "    \(site.id) (\(site.format)): \(site.merchants.map(\.id.rawValue).joined(separator: ", "))\(parking)"
                )
            }
            print(
                "  tiers: \(program.tiers.tiers.map { "\($0.id) ≥\($0.threshold) ×\($0.multiplier)" }.joined(separator: ", "))"
            )
            print(
                "  promotions: "
                    + program.earn.promotions.map { "\($0.id) (funded by \($0.fundedBy))" }.joined(separator: ", "))
            let funding = program.earn.funding
            print(
                "  bonuses funded by: "
                    + BonusFunding.keys.map { "\($0) \(funding[key: $0].map { "\($0)" } ?? "?")" }
                    .joined(separator: ", ") + "; base points by the issuing merchant")
            print(
                "  redeem: \(program.redeem.pointValuePoints) points = \(program.redeem.pointValueMoney) minor units, minimum \(program.redeem.minimumPoints), at most \(program.redeem.maximumBillShare) of a bill"
            )
            print("  expiry: end of the month \(program.expiry.months) months after earning")
            if !program.catalog.items.isEmpty {
                print(
                    "  catalog: "
                        + program.catalog.items.map { item in
                            "\(item.id) (\(item.kind.rawValue), \(item.pricePoints) points, \(item.stock) units, by \(item.sponsor))"
                        }.joined(separator: ", "))
            }
            for lottery in program.lotteries.items {
                let prizes = lottery.prizes.map { prize in
                    "\(prize.id) \(prize.parts) ppm × \(prize.stock)"
                }
                print(
                    "  lottery \(lottery.id): \(lottery.cost) points a draw, \(lottery.perMemberDailyMax) a day; "
                        + prizes.joined(separator: ", ") + "; nothing \(lottery.losingParts) ppm")
            }
        }

        /// `12.34 CNY` for 1234 minor units of a two-digit currency.
        static func major(_ money: Money, _ currency: Currency) -> String {
            let whole = money.minorUnits / currency.minorPerMajor
            guard currency.minorUnitDigits > 0 else { return "\(whole) \(currency.code)" }
            let fraction = String(money.minorUnits % currency.minorPerMajor)
            let padded = String(repeating: "0", count: currency.minorUnitDigits - fraction.count) + fraction
            return "\(whole).\(padded) \(currency.code)"
        }
    }

    struct Earn: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compute the points a bill earns, with its breakdown.")

        @Argument(help: "The program file.") var file: String
        @Option(help: "The merchant id.") var merchant: String
        @Option(help: "The bill in minor units (fen).") var amountMinor: Int64
        @Option(help: "The member's tier.") var tier: String?
        @Option(help: "Local time in the program's zone, e.g. 2026-11-28T12:00 (default now).") var at: String?
        @Option(help: "The member's birth month 1-12.") var birthMonth: Int?

        func run() async throws {
            let program = try ProgramCommand.load(file)
            guard let merchantID = MerchantID(merchant) else { throw ValidationError("--merchant: \(Slug.rule)") }
            let tierID =
                try tier.map { text -> TierID in
                    guard let id = TierID(text) else { throw ValidationError("--tier: \(Slug.rule)") }
                    return id
                } ?? program.tiers.tiers[0].id
            let input = EarnInput(
                merchant: merchantID, amount: Money(minorUnits: amountMinor),
                occurredAt: try ProgramCommand.instant(at, in: program),
                member: MemberEarnState(tier: tierID, birthMonth: birthMonth))
            do {
                let result = try EarnCalculator.earn(program: program, input: input)
                print("\(result.total) points")
                for component in result.components {
                    print(
                        "  \(component.kind.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \(component.points)  \(component.description)"
                    )
                }
            } catch {
                throw CommandFailure("\(error.field): \(error.message)")
            }
        }
    }

    struct Redeem: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Quote paying part of a bill with points.")

        @Argument(help: "The program file.") var file: String
        @Option(help: "The merchant id.") var merchant: String
        @Option(help: "The bill in minor units (fen).") var billMinor: Int64
        @Option(help: "Points to use (0 = the most allowed).") var points: Int64 = 0
        @Option(help: "The member's balance.") var balance: Int64

        func run() async throws {
            let program = try ProgramCommand.load(file)
            guard let merchantID = MerchantID(merchant) else { throw ValidationError("--merchant: \(Slug.rule)") }
            do {
                let quote = try RedeemCalculator.quote(
                    program: program,
                    input: RedeemInput(
                        merchant: merchantID, bill: Money(minorUnits: billMinor), requestedPoints: Points(points),
                        availablePoints: Points(balance)))
                if let refusal = quote.refusal {
                    print("refused (\(refusal.rawValue)): \(quote.message) At most \(quote.maxPoints) points.")
                } else {
                    print(
                        "\(quote.points) points pay \(quote.value) minor units; \(quote.remainingDue) left to pay (at most \(quote.maxPoints) points)"
                    )
                }
            } catch {
                throw CommandFailure("\(error.field): \(error.message)")
            }
        }
    }

    struct Parking: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Price a car park stay.")

        @Argument(help: "The program file.") var file: String
        @Option(help: "The parking site id.") var site: String
        @Option(help: "Length of the stay in minutes.") var minutes: Int64
        @Option(help: "The member's tier (omit for a non-member).") var tier: String?

        func run() async throws {
            let program = try ProgramCommand.load(file)
            guard let siteID = SiteID(site) else { throw ValidationError("--site: \(Slug.rule)") }
            let entry = Timestamp(milliseconds: 1_795_000_000_000)
            do {
                let quote = try ParkingCalculator.quote(
                    program: program,
                    input: ParkingInput(
                        site: siteID, entry: entry, exit: entry.adding(milliseconds: minutes * Timestamp.minute),
                        tier: tier.flatMap(TierID.init)))
                print(
                    "fee \(quote.fee) minor units for \(quote.stayMinutes) minutes (\(quote.freeMinutesApplied) free, \(quote.chargedMinutes) charged); \(quote.pointsForFullFee) points pay it all"
                )
            } catch {
                throw CommandFailure("\(error.field): \(error.message)")
            }
        }
    }
}
