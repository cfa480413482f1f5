import ArgumentParser
import Foundation
import Wire

/// `coalition admin audit`: calls refused for who the caller is.
extension AdminCommand {
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Calls the gateway refused for who the caller was, newest first.",
            discussion: """
                Each refused Sync or Ops call (no certificate, another CA, a revoked certificate or site, a site
                naming another site's merchant, a site certificate calling Ops) is logged at warning, counted and
                kept here (the newest limits.refused_calls_max). Page back with --before NEXT.
                """)
        @OptionGroup var connection: Connection
        @Option(help: "Only calls older than this id (the 'next' a page prints).") var before: Int64 = 0
        @Option(help: "How many (1-1000).") var limit: Int32 = 100

        func run() async throws {
            var request = Coalition_Ops_V1_ListRefusedCallsRequest()
            request.before = before
            request.pageSize = limit
            let response = try await connection.withOps { try await $0.listRefusedCalls(request) }
            try connection.show(response) {
                let counts = response.countsSinceStart.map { "\($0.kind) \($0.count)" }.joined(separator: ", ")
                return Table.render(
                    ["id", "at", "service", "method", "peer", "address", "kind", "reason"],
                    response.calls.map {
                        [
                            "\($0.id)", Date(timeIntervalSince1970: Double($0.atMs) / 1_000).ISO8601Format(),
                            $0.service, $0.method, $0.peer, $0.address, $0.kind, $0.reason,
                        ]
                    })
                    + "\nrefused since the gateway started: \(counts.isEmpty ? "none" : counts)"
                    + (response.unwrittenSinceStart > 0
                        ? " (\(response.unwrittenSinceStart) over the per-minute bound, logged only)" : "")
                    + (response.nextBefore > 0 ? "\nnext: --before \(response.nextBefore)" : "")
            }
        }
    }
}
