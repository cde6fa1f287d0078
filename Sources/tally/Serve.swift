import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import TallyCatalog
import TallyCore
import TallyHTTP
import TallyJobs
import TallyResources
import TallyStore

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending migrations, then serve the HTTP API until SIGTERM or SIGINT.")

    @Option(help: "Address to listen on (default TALLY_HOST or 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on (default TALLY_PORT or 8080; 0 picks a free one).") var port: Int?
    @Option(help: "Database connections in the pool.") var connections: Int = 32
    @Option(help: "A catalog file to load when the catalog is empty (e.g. catalog/demo.json).") var loadCatalog: String?
    @Option(help: "Seconds between runs of the scheduled jobs inside serve (0: leave them to `tally jobs run`).") var jobsInterval: Int = 60
    @Option(help: "Seconds a SIGTERM may drain in-flight requests before the process exits anyway.") var shutdownSeconds: Int = 20

    func run() async throws {
        let environment = TallyEnvironment()
        let logger = environment.bootstrapLogging()
        let migrations = try environment.migrations()
        let catalogFile = try loadCatalog.map { try Array(Data(contentsOf: URL(fileURLWithPath: $0))) }
        let openAPI = TallyResources.openAPIDocument
        if environment.platformKey == nil {
            logger.warning("TALLY_PLATFORM_KEY is not set: only keys made with 'tally keys create' will work")
        }
        let session = try await DatabaseSession.open(environment, logger: logger)
        defer { session.close(logger: logger) }
        logger.info("database", metadata: ["db.url": "\(session.location.redacted)", "db.embedded": "\(session.embedded != nil)"])

        let pooler = try environment.pooler
        let pool = try DatabasePool(location: session.location, maximumConnections: connections, pooler: pooler, logger: logger)
        // Migrations take a session lock: straight to PostgreSQL when TALLY_MIGRATION_DATABASE_URL says where.
        let migrationPool = try environment.migrationDatabaseURL.map {
            try DatabasePool(location: try DatabaseLocation(url: $0), maximumConnections: 2, logger: logger)
        } ?? pool
        let clock = SystemWallClock()
        let stores = Stores(database: Database(pool: pool, logger: logger), spendTransactions: try environment.spendTransactions)
        // The background jobs wait for the migrations: on a first start their tables do not exist yet.
        let (migrated, migrationsDone) = AsyncStream.makeStream(of: Void.self)
        let services = AppServices(
            stores: stores,
            clock: clock,
            platformKey: PlatformKey(environment.platformKey),
            migrations: migrations,
            openAPIDocument: openAPI,
            allowPrivateWebhookTargets: environment.allowPrivateWebhookTargets,
            rateLimits: environment.rateLimits,
            publicURL: environment.publicURL
        )
        let background = BackgroundJobs(
            runner: JobRunner(stores: stores, logger: logger, retention: environment.retention),
            deliverer: WebhookDeliverer(store: stores.webhooks, allowPrivateTargets: environment.allowPrivateWebhookTargets, clock: clock, logger: logger),
            clock: clock, jobsIntervalSeconds: jobsInterval > 0 ? jobsInterval : nil, logger: logger,
            startAfter: migrated
        )
        let host = self.host ?? environment.host
        let application = TallyApplication.application(
            services: services, host: host, port: port ?? environment.port,
            backgroundServices: [background], logger: logger,
            // Migrations run before the server listens and before the background jobs start.
            beforeServerStarts: {
                try await Self.applyMigrations(migrations, pool: migrationPool, logger: logger)
                if migrationPool !== pool { await migrationPool.close() }
                migrationsDone.yield()
                migrationsDone.finish()
                if let catalogFile, try await services.stores.catalog.isEmpty() {
                    let report = try await CatalogImport.load(catalogFile, into: services.stores.catalog, at: clock.now())
                    logger.info("catalog loaded", metadata: ["catalog.created": "\(report.created.count)"])
                }
            },
            onServerRunning: { port in logger.info("listening", metadata: ["http.host": "\(host)", "http.port": "\(port)"]) }
        )
        let deadline = ShutdownDeadline(seconds: shutdownSeconds, logger: logger)
        var configuration = ServiceGroupConfiguration(services: [application], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // Past this the drain turns into cancellation; the deadline above ends the process for sure.
        configuration.maximumGracefulShutdownDuration = .seconds(max(1, shutdownSeconds - 5))
        try await ServiceGroup(configuration: configuration).run()
        await pool.close()
        deadline.disarm()
        logger.info("stopped")
    }

    /// Waits for the database at start (a container may start before its database), for at most
    /// 60 s, then applies the pending migrations under an advisory lock.
    static func applyMigrations(_ migrations: [Migration], pool: DatabasePool, logger: Logger) async throws {
        let start = ContinuousClock.now
        var logged = false
        while true {
            do {
                _ = try await MigrationRunner(pool: pool, logger: logger).apply(migrations)
                return
            } catch let error where DatabaseUnavailable.isConnectionLoss(error) && ContinuousClock.now - start < .seconds(60) {
                if !logged {
                    logger.warning("waiting for the database", metadata: ["error": "\(error)"])
                    logged = true
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
