import ArgumentParser
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NodeSupport
import SwiftProtobuf
import Wire

/// `coalition admin program validate|publish|list`.
extension AdminCommand {
    struct ProgramAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "program", abstract: "Validate, publish and list program versions.",
            subcommands: [Validate.self, Publish.self, List.self])

        static func read(_ file: String) throws -> Data {
            do { return try ReadableFile.contents(of: file) } catch { throw CommandFailure("\(error)") }
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
}
