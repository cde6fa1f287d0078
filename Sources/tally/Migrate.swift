import ArgumentParser
import TallyStore

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the pending migrations this binary carries and exit.")

    func run() async throws {
        let environment = TallyEnvironment()
        let logger = environment.bootstrapLogging()
        let migrations = try environment.migrations()
        let session = try await DatabaseSession.open(environment, logger: logger)
        defer { session.close(logger: logger) }
        // TALLY_MIGRATION_DATABASE_URL: straight to PostgreSQL; else through DATABASE_URL as configured.
        let direct = try environment.migrationDatabaseURL.map { try DatabaseLocation(url: $0) }
        let applied = try await session.withPool(logger: logger, pooler: direct == nil ? try environment.pooler : .none, location: direct) { pool in
            try await MigrationRunner(pool: pool, logger: logger).apply(migrations)
        }
        print(applied.isEmpty ? "schema is current (\(migrations.count) migrations)" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
    }
}
