import ArgumentParser
import Foundation
import TallyCatalog
import TallyStore

struct CatalogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "catalog", abstract: "The catalog of plans, operations and credit packs.",
                                                    subcommands: [Load.self])

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a catalog file (JSON, the API's shapes): creates what is missing, leaves what exists.",
            discussion: "catalog/demo.json holds the plans, packs and operations of the seed documents."
        )

        @Argument(help: "The catalog file, e.g. catalog/demo.json.") var file: String

        func run() async throws {
            let environment = TallyEnvironment()
            let logger = environment.bootstrapLogging()
            let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: file)))
            let migrations = try environment.migrations()
            let session = try await DatabaseSession.open(environment, logger: logger)
            defer { session.close(logger: logger) }
            let report = try await session.withPool(logger: logger) { pool in
                try await MigrationRunner(pool: pool, logger: logger).apply(migrations)
                let stores = Stores(database: Database(pool: pool, logger: logger))
                return try await CatalogImport.load(bytes, into: stores.catalog, at: SystemWallClock().now())
            }
            for name in report.created { print("created \(name)") }
            for name in report.skipped { print("exists  \(name)") }
        }
    }
}
