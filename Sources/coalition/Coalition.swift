import ArgumentParser

/// The one command-line entry point of Coalition.
@main
struct Coalition: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coalition",
        abstract: "A points network shared by the properties of one group.",
        discussion: """
            Servers (`edge serve`, `gateway serve`), certificates (`ca`), operations (`admin`) and \
            `demo` arrive with their issues; `program` works on program files locally today.
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
