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
        subcommands: [
            Sites.self, Certificates.self, Conflicts.self, Member.self, ProgramAdmin.self, Settle.self, Expire.self,
            Audit.self, Catalog.self, Orders.self, Vouchers.self, LotteryAdmin.self, ConsoleAdmin.self, Report.self,
            Allowances.self, Quotas.self,
        ]
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
}
