import ArgumentParser
import NIOCore
import NIOPosix

@main
struct Tally: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "Tally: a multi-tenant credit billing service.",
        subcommands: [Serve.self, Migrate.self, Jobs.self, Keys.self, Verify.self, CatalogCommand.self]
    )

    static func main() async {
        // Swift concurrency's tasks run on NIO's event loop threads: a request handler awaiting
        // PostgreSQL then continues where the reply arrived, instead of hopping between two thread
        // pools (which cost more CPU per request than the handler itself).
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        await main(nil)
    }
}
