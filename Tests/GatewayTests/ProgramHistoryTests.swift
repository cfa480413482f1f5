// Goal (issue #13, item 2, its second part): the ledger's published history wins over the
// gateway's `program_file`, which is only the first version. Before, a restart published the file
// again over an operator's later publish, silently putting the old program back in force.
import Core
import Foundation
import GRPCCore
import Gateway
import TestSupport
import Testing
import Wire

@Suite("Program history")
struct ProgramHistoryTests {
    @Test(
        "a restart keeps the operator's published program; program_file is only the first version",
        arguments: LedgerKind.allCases)
    func restartKeepsPublishedProgram(ledger: LedgerKind) async throws {
        let directory = try TemporaryDirectory()
        let dir = directory.url.path
        let certificates = try TestCertificates(directory: dir, sites: ["mall-01"])
        try certificates.issue(.operator("alice"), name: "alice")
        try await Network.withLedger(ledger, try Network.gatewayConfiguration(dir, certificates: certificates)) {
            configuration in
            try await Self.restart(configuration, certificates: certificates)
        }
    }

    static func restart(_ configuration: GatewayConfiguration, certificates: TestCertificates) async throws {
        try await Network.withGateway(configuration, clock: ManualWallClock()) { gateway in
            try await OpsServiceTests.withOps(port: gateway.port, certificates: certificates, certificate: "alice") {
                ops in
                var publish = Coalition_Ops_V1_PublishProgramRequest()
                publish.requestID = "PUB-1"
                publish.document = Data(
                    try Repository.exampleProgram(replacing: [("signup_points: 200", "signup_points: 300")]).utf8)
                #expect(try await ops.publishProgram(publish).version == 2)
            }
        }
        // The same configuration, its program_file unchanged, started again: twice.
        for _ in 0..<2 {
            try await Network.withGateway(configuration, clock: ManualWallClock()) { gateway in
                try await OpsServiceTests.withOps(port: gateway.port, certificates: certificates, certificate: "alice")
                {
                    ops in
                    let programs = try await ops.listPrograms(Coalition_Ops_V1_ListProgramsRequest()).programs
                    #expect(programs.map(\.version) == [1, 2])
                    #expect(programs.map(\.publishedBy) == ["program_file", "alice"])
                }
                #expect(gateway.ledger.programs.latest?.program.earn.signupPoints.value == 300)
            }
        }
    }
}
