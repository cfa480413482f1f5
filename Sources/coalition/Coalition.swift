import ArgumentParser

/// The one command-line entry point of Coalition.
@main
struct Coalition: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coalition",
        abstract: "A points network shared by the properties of one group.",
        discussion: """
            Each property runs an edge (`edge serve`) for its tills and barriers; the centre runs the \
            gateway (`gateway serve`), which keeps the ledger and settles between merchants. `ca` \
            makes the network's certificates, `admin` operates a running gateway, `program` checks \
            program files and `bench` measures. New here? Run `coalition demo`: it plays a day across \
            three sites on this machine and closes its settlement.
            """,
        subcommands: [
            ProgramCommand.self, EdgeCommand.self, GatewayCommand.self, CACommand.self, AdminCommand.self,
            DemoCommand.self, BenchCommand.self,
        ]
    )
}

/// A failure the CLI reports on stderr with exit code 1, without a stack of Swift types.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
