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
            let report = try await session.withClient(logger: logger, deadlineSeconds: 600) { client in
                try await JobRunner(stores: Stores(database: Database(client: client, logger: logger)), logger: logger)
                    .runOnce(at: SystemWallClock().now())
            }
            logger.info("jobs run", metadata: ["report": "\(report)"])
            print(report)
        }
    }
}
