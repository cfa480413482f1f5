import ArgumentParser
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Wire

/// `coalition admin …`: operations over the gateway's `coalition.ops.v1.Ops` service, with an
/// operator certificate (`coalition ca issue --operator NAME`).
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Operate the network through the gateway's Ops service (operator certificate).",
        discussion: """
            The admin config file (YAML) names the gateway and the operator's certificate:
              gateway: 127.0.0.1:7443          (or gateway_port_file: FILE holding the port, host 127.0.0.1)
              ca_certificate: certs/ca.pem
              certificate: certs/operator-alice.pem
              private_key: certs/operator-alice.key
            """,
        subcommands: [Sites.self, Conflicts.self, Member.self, ProgramAdmin.self, Settle.self, Expire.self]
    )

    /// Options every admin command takes.
    struct Connection: ParsableArguments {
        @Option(name: .long, help: "The admin config file (see `coalition admin --help`).") var config: String
        @Flag(help: "Print the answer as JSON (for scripts).") var json = false

        /// Runs `body` with an Ops client, turning statuses into readable failures.
        func withOps<R: Sendable>(_ body: (Coalition_Ops_V1_Ops.Client<HTTP2ClientTransport.Posix>) async throws -> R)
            async throws -> R
        {
            let settings = try AdminSettings.load(config)
            do {
                return try await withGRPCClient(
                    transport: .http2NIOPosix(
                        target: .ipv4(address: settings.host, port: settings.port),
                        transportSecurity: .mTLS(
                            certificateChain: [.file(path: settings.certificate, format: .pem)],
                            privateKey: .file(path: settings.privateKey, format: .pem)
                        ) { $0.trustRoots = .certificates([.file(path: settings.ca, format: .pem)]) })
                ) { client in
                    try await body(Coalition_Ops_V1_Ops.Client(wrapping: client))
                }
            } catch let error as RPCError {
                throw CommandFailure("\(error.code): \(error.message)")
            }
        }

        /// Prints a message as JSON when asked, else the readable text.
        func show(_ message: some SwiftProtobuf.Message, _ text: () -> String) throws {
            if json {
                var options = JSONEncodingOptions()
                options.preserveProtoFieldNames = true
                print(try message.jsonString(options: options))
            } else {
                print(text())
            }
        }
    }

    struct Sites: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sites: last seen, high-water mark, lag, exposure, flags.")
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
            @Option(help: "Idempotency key (default: a new one).") var requestID: String =
                "ADJ-\(UUID().uuidString.prefix(12))"

            func run() async throws {
                var request = Coalition_Ops_V1_AdjustMemberRequest()
                request.requestID = requestID
                request.memberID = member
                request.points = points
                request.reason = reason
                let response = try await connection.withOps { try await $0.adjustMember(request) }
                try connection.show(response) {
                    "adjusted: transaction \(response.transactionID), balance \(response.balanceAfterPoints)"
                }
            }
        }
    }

    struct ProgramAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "program", abstract: "Validate, publish and list program versions.",
            subcommands: [Validate.self, Publish.self, List.self])

        static func read(_ file: String) throws -> Data {
            do { return try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                throw CommandFailure("cannot read \(file)")
            }
        }

        struct Validate: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Argument(help: "The program file.") var file: String

            func run() async throws {
                var request = Coalition_Ops_V1_ValidateProgramRequest()
                request.document = try ProgramAdmin.read(file)
                let response = try await connection.withOps { try await $0.validateProgram(request) }
                try connection.show(response) {
                    response.valid
                        ? "\(file): valid" : response.errors.map { "\($0.path): \($0.message)" }.joined(separator: "\n")
                }
                if !response.valid { throw ExitCode(1) }
            }
        }

        struct Publish: AsyncParsableCommand {
            @OptionGroup var connection: Connection
            @Argument(help: "The program file.") var file: String

            func run() async throws {
                var request = Coalition_Ops_V1_PublishProgramRequest()
                request.requestID = "PUB-\(UUID().uuidString.prefix(12))"
                request.document = try ProgramAdmin.read(file)
                let response = try await connection.withOps { try await $0.publishProgram(request) }
                try connection.show(response) {
                    "published version \(response.version) (sha256 \(response.documentSha256.prefix(16))…); edges take it on their next pull"
                }
            }
        }

        struct List: AsyncParsableCommand {
            @OptionGroup var connection: Connection

            func run() async throws {
                let response = try await connection.withOps {
                    try await $0.listPrograms(Coalition_Ops_V1_ListProgramsRequest())
                }
                try connection.show(response) {
                    Table.render(
                        ["version", "effective ms", "published by", "sha256"],
                        response.programs.map {
                            [
                                "\($0.version)", "\($0.effectiveAtMs)", $0.publishedBy,
                                String($0.documentSha256.prefix(16)),
                            ]
                        })
                }
            }
        }
    }

    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close, show and export a day's settlement.", subcommands: [Close.self, Show.self, Export.self])

        static func table(_ result: Coalition_Ops_V1_SettlementResult) -> String {
            Table.render(
                [
                    "merchant", "issued", "reversed", "redeemed", "parking", "risk", "payable", "receivable", "net",
                    "late",
                ],
                result.merchants.map {
                    [
                        $0.merchantID, "\($0.pointsIssued)", "\($0.pointsReversed)", "\($0.pointsRedeemed)",
                        "\($0.parkingPoints)", "\($0.offlineRiskPoints)",
                        "\($0.payableMinor)", "\($0.receivableMinor)", "\($0.netMinor)", "\($0.lateItems)",
                    ]
                })
                + "\nplatform: spread \(result.platform.spreadMinor), risk \(result.platform.riskMinor), net \(result.platform.netMinor), breakage \(result.platform.breakageMinor)\n"
                + "journal: debits \(result.journalDebitsMinor) = credits \(result.journalCreditsMinor); content hash \(result.contentHash)"
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
            @Option(help: "The folder to write PERIOD.json and PERIOD.csv into.") var out: String

            func run() async throws {
                var request = Coalition_Ops_V1_ExportSettlementRequest()
                request.period = period
                let response = try await connection.withOps { try await $0.exportSettlement(request) }
                let folder = URL(fileURLWithPath: out)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                for file in response.files {
                    try file.content.write(to: folder.appendingPathComponent(file.name), options: .atomic)
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
                    "expired \(response.pointsExpired) points of \(response.membersAffected) members"
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

/// The admin config file.
struct AdminSettings {
    var host: String
    var port: Int
    var ca: String
    var certificate: String
    var privateKey: String

    static func load(_ path: String) throws -> AdminSettings {
        let url = URL(fileURLWithPath: path)
        let document: DocumentNode
        do {
            document = try ProgramDocumentParser.parse(Array(try Data(contentsOf: url)))
        } catch {
            throw CommandFailure("cannot read \(path): \(error)")
        }
        let base = url.deletingLastPathComponent()
        func resolve(_ value: String) -> String {
            value.hasPrefix("/") ? value : base.appendingPathComponent(value).path
        }
        let diagnostics = DocumentDiagnostics()
        guard let root = MapReader(document, at: .root, diagnostics: diagnostics) else {
            throw CommandFailure("\(path): expected a mapping")
        }
        let gateway = root.string("gateway", required: false, lengthMax: 300)
        let portFile = root.string("gateway_port_file", required: false, lengthMax: 4096)
        let ca = root.string("ca_certificate", lengthMax: 4096)
        let certificate = root.string("certificate", lengthMax: 4096)
        let key = root.string("private_key", lengthMax: 4096)
        root.finish()
        guard diagnostics.errors.isEmpty, let ca, let certificate, let key else {
            throw CommandFailure("\(path): " + diagnostics.errors.map(\.description).joined(separator: "; "))
        }
        var host = "127.0.0.1"
        var port = 0
        if let gateway {
            do { (host, port) = try Address.parse(gateway, key: "gateway") } catch {
                throw CommandFailure("\(path): \(error)")
            }
        } else if let portFile {
            guard let text = try? String(contentsOfFile: resolve(portFile), encoding: .utf8),
                let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else {
                throw CommandFailure("\(path): cannot read a port from \(resolve(portFile)) (is the gateway running?)")
            }
            port = value
        } else {
            throw CommandFailure("\(path): set gateway (host:port) or gateway_port_file")
        }
        return AdminSettings(
            host: host, port: port, ca: resolve(ca), certificate: resolve(certificate), privateKey: resolve(key))
    }
}

/// Plain text tables for readable output.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in
            all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
        }
        return all.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}
