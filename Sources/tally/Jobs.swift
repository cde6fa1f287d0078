import ArgumentParser
import TallyJobs
import TallyStore

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Scheduled work.", subcommands: [Run.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run every due job once and exit: what a cron calls every minute.",
            discussion: "Renewals (with rollover, expiry and charges), bucket expiry and expired holds. Safe to run twice, concurrently or late."
        )

        func run() async throws {
            let environment = TallyEnvironment()
            let logger = environment.bootstrapLogging()
            let session = try await DatabaseSession.open(environment, logger: logger)
            defer { session.close(logger: logger) }
            let allowPrivate = environment.allowPrivateWebhookTargets
            let retention = environment.retention
            let report = try await session.withPool(logger: logger, maximumConnections: 32, deadlineSeconds: 600) { pool in
                let stores = Stores(database: Database(pool: pool, logger: logger))
                let now = SystemWallClock().now()
                let due = try await stores.subscriptions.countDue(.realClock, until: now)
                let progress = CLIProgress("renewals", logger: logger)
                let deliverer = WebhookDeliverer(store: stores.webhooks, allowPrivateTargets: allowPrivate, clock: SystemWallClock(), logger: logger)
                let runner = JobRunner(stores: stores, logger: logger, retention: retention,
                                       renewalProgress: { progress.report(done: $0, total: due, unit: "periods renewed") })
                return try await runner.runOnce(at: now, deliverer: deliverer)
            }
            logger.info("jobs run", metadata: ["report": "\(report)"])
            print(report)
        }
    }
}
