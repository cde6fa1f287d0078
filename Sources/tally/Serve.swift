import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import TallyCore
import TallyHTTP
import TallyJobs
import TallyStore
import AsyncHTTPClient

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending migrations, then serve the HTTP API until SIGTERM or SIGINT.")

    @Option(help: "Address to listen on (default TALLY_HOST or 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on (default TALLY_PORT or 8080; 0 picks a free one).") var port: Int?
    @Option(help: "Database connections in the pool.") var connections: Int = 32
    @Option(help: "A catalog file to load when the catalog is empty (e.g. catalog/demo.json).") var loadCatalog: String?
    @Option(help: "Seconds between runs of the scheduled jobs inside serve (0: leave them to `tally jobs run`).") var jobsInterval: Int = 60

    func run() async throws {
        let environment = TallyEnvironment()
        let logger = environment.bootstrapLogging()
        let migrations = try environment.migrations()
        let catalogFile = try loadCatalog.map { try Array(Data(contentsOf: URL(fileURLWithPath: $0))) }
        let openAPI = try Array(Data(contentsOf: environment.home.appendingPathComponent("openapi.json")))
        if environment.platformKey == nil {
            logger.warning("TALLY_PLATFORM_KEY is not set: only keys made with 'tally keys create' will work")
        }
        let session = try await DatabaseSession.open(environment, logger: logger)
        defer { session.close(logger: logger) }
        logger.info("database", metadata: ["db.url": "\(session.location.redacted)", "db.embedded": "\(session.embedded != nil)"])

        let client = PostgresClient(configuration: session.location.clientConfiguration(maximumConnections: connections, keepOpen: true), backgroundLogger: logger)
        let clock = SystemWallClock()
        let stores = Stores(database: Database(client: client, logger: logger))
        let services = AppServices(
            stores: stores,
            clock: clock,
            platformKey: PlatformKey(environment.platformKey),
            migrations: migrations,
            openAPIDocument: openAPI,
            allowPrivateWebhookTargets: environment.allowPrivateWebhookTargets
        )
        let webhookClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let background = BackgroundJobs(
            runner: JobRunner(stores: stores, logger: logger),
            deliverer: WebhookDeliverer(store: stores.webhooks, http: webhookClient, clock: clock, logger: logger),
            clock: clock, jobsIntervalSeconds: jobsInterval > 0 ? jobsInterval : nil, logger: logger
        )
        let host = self.host ?? environment.host
        let application = TallyApplication.application(
            services: services, host: host, port: port ?? environment.port,
            backgroundServices: [client, background], logger: logger,
            // Migrations run after the pool starts and before the server listens.
            beforeServerStarts: {
                try await withDeadline(seconds: 60, "connecting to the database and applying migrations") {
                    _ = try await MigrationRunner(client: client, logger: logger).apply(migrations)
                }
                if let catalogFile, try await services.stores.catalog.isEmpty() {
                    let report = try await CatalogImport.load(catalogFile, into: services.stores.catalog, at: clock.now())
                    logger.info("catalog loaded", metadata: ["catalog.created": "\(report.created.count)"])
                }
            },
            onServerRunning: { port in logger.info("listening", metadata: ["http.host": "\(host)", "http.port": "\(port)"]) }
        )
        try await application.runService()
        try await webhookClient.shutdown()
        logger.info("stopped")
    }
}
