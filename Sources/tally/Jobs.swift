import ArgumentParser
import TallyStore

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Scheduled work.", subcommands: [Run.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run every due job once and exit: what a cron calls every minute.")

        func run() async throws {
            let environment = TallyEnvironment()
            let logger = environment.bootstrapLogging()
            let session = try await DatabaseSession.open(environment, logger: logger)
            defer { session.close(logger: logger) }
            logger.info("jobs run: nothing is due")
        }
    }
}
