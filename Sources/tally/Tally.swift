import ArgumentParser

@main
struct Tally: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "Tally: a multi-tenant credit billing service.",
        subcommands: [Serve.self, Migrate.self, Jobs.self, Keys.self, Verify.self, CatalogCommand.self]
    )
}
