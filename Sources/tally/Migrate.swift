import ArgumentParser
import TallyStore

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending migrations from sql/ and exit.")

    func run() async throws {
        let environment = TallyEnvironment()
        let logger = environment.bootstrapLogging()
        let migrations = try environment.migrations()
        let session = try await DatabaseSession.open(environment, logger: logger)
        defer { session.close(logger: logger) }
        let applied = try await session.withPool(logger: logger) { pool in
            try await MigrationRunner(pool: pool, logger: logger).apply(migrations)
        }
        print(applied.isEmpty ? "schema is current (\(migrations.count) migrations)" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
    }
}
