import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyEmbeddedPostgres
import TallyHTTP
import TallyResources
import TallyStore

/// Settings every command reads from the environment (flags may override some):
/// `DATABASE_URL`, `TALLY_PLATFORM_KEY`, `TALLY_HOST`, `TALLY_PORT`, `TALLY_LOG_LEVEL`,
/// `TALLY_STATE_DIR` (embedded data, `.tally`). The migrations and the OpenAPI document are
/// compiled into the binary (`TallyResources`): it runs from any folder.
struct TallyEnvironment {
    let variables = ProcessInfo.processInfo.environment

    var databaseURL: String? { nonEmpty("DATABASE_URL") }
    /// `transaction` behind PgBouncer in transaction pooling; `none` (default) for a direct connection.
    var pooler: DatabasePool.Pooler {
        get throws {
            guard let text = nonEmpty("TALLY_DATABASE_POOLER") else { return .none }
            guard let pooler = DatabasePool.Pooler(rawValue: text.lowercased()) else {
                throw CommandFailure("TALLY_DATABASE_POOLER must be none or transaction, not '\(text)'")
            }
            return pooler
        }
    }
    /// A direct connection for the migrations (a session advisory lock), when DATABASE_URL is a pooler.
    var migrationDatabaseURL: String? { nonEmpty("TALLY_MIGRATION_DATABASE_URL") }
    var platformKey: String? { nonEmpty("TALLY_PLATFORM_KEY") }
    /// Spend transactions running at once (each carries every organisation waiting); default one
    /// per 24 connections of the pool, 2 to 8.
    var spendTransactions: Int? {
        get throws {
            guard let text = nonEmpty("TALLY_SPEND_TRANSACTIONS") else { return nil }
            guard let count = Int(text), (1...64).contains(count) else {
                throw CommandFailure("TALLY_SPEND_TRANSACTIONS must be a whole number from 1 to 64, not '\(text)'")
            }
            return count
        }
    }
    var host: String { nonEmpty("TALLY_HOST") ?? "127.0.0.1" }
    var port: Int { nonEmpty("TALLY_PORT").flatMap(Int.init) ?? 8080 }
    var logLevel: Logger.Level { nonEmpty("TALLY_LOG_LEVEL").flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info }
    var stateDirectory: URL { URL(fileURLWithPath: nonEmpty("TALLY_STATE_DIR") ?? ".tally") }
    /// Organisation admins may point webhooks at private addresses (off by default).
    var allowPrivateWebhookTargets: Bool { nonEmpty("TALLY_WEBHOOKS_ALLOW_PRIVATE") == "1" }
    /// Where people reach this service (`https://billing.example.com`): the base of credits portal
    /// links, and HTTPS there marks the portal's cookie Secure. Unset: the request's Host.
    var publicURL: String? { nonEmpty("TALLY_PUBLIC_URL") }
    /// Requests per second per key: "200" (burst twice that) or "200/400"; "0" turns it off.
    var rateLimits: RateLimits {
        RateLimits(perKey: RateLimiter.Limit.parse(nonEmpty("TALLY_RATE_LIMIT_PER_KEY"), default: RateLimits.defaultPerKey),
                   platform: RateLimiter.Limit.parse(nonEmpty("TALLY_RATE_LIMIT_PLATFORM"), default: RateLimits.defaultPlatform))
    }

    private func nonEmpty(_ name: String) -> String? {
        guard let value = variables[name], !value.isEmpty else { return nil }
        return value
    }

    func bootstrapLogging() -> Logger {
        let level = logLevel
        switch LogFormat.resolve(nonEmpty("TALLY_LOG_FORMAT")) {
        case .json: LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        case .human: LoggingSystem.bootstrap { _ in HumanLogHandler(level: level) }
        }
        return Logger(label: "tally")
    }

    /// What the retention job keeps: `TALLY_IDEMPOTENCY_RETENTION_DAYS` (30, at least 1) and
    /// `TALLY_EVENT_RETENTION_DAYS` (90).
    var retention: RetentionPolicy {
        RetentionPolicy(idempotencyDays: nonEmpty("TALLY_IDEMPOTENCY_RETENTION_DAYS").flatMap(Int.init) ?? 30,
                        eventDays: nonEmpty("TALLY_EVENT_RETENTION_DAYS").flatMap(Int.init) ?? 90)
    }

    /// The migrations compiled into this binary.
    func migrations() throws -> [Migration] {
        try Migration.parse(TallyResources.migrationFiles)
    }
}

/// The database a command talks to: `DATABASE_URL`, or the embedded server under `.tally/`.
struct DatabaseSession {
    let location: DatabaseLocation
    let embedded: EmbeddedPostgres?
    let running: EmbeddedPostgres.Running?

    static func open(_ environment: TallyEnvironment, logger: Logger) async throws -> DatabaseSession {
        if let url = environment.databaseURL {
            return DatabaseSession(location: try DatabaseLocation(url: url), embedded: nil, running: nil)
        }
        let embedded = EmbeddedPostgres(stateDirectory: environment.stateDirectory, logger: logger)
        let running = try await embedded.start()
        return DatabaseSession(location: running.location, embedded: embedded, running: running)
    }

    /// Stops the embedded server if this process started it.
    func close(logger: Logger) {
        guard let embedded, let running else { return }
        do {
            try embedded.stop(running)
        } catch {
            logger.error("could not stop the embedded postgres", metadata: ["error": "\(error)"])
        }
    }

    /// Runs `body` with a connection pool, then closes it. An unreachable database fails the
    /// command within seconds with one line naming it (what a cron's log needs), not a pool's
    /// retries until a deadline.
    func withPool<T: Sendable>(logger: Logger, maximumConnections: Int = 10, deadlineSeconds: Int = 60, pooler: DatabasePool.Pooler = .none,
                               location override: DatabaseLocation? = nil,
                               _ body: @escaping @Sendable (DatabasePool) async throws -> T) async throws -> T {
        // The pool's own outage log line would be a second line for the same failure.
        var poolLogger = logger
        poolLogger.logLevel = .critical
        let location = override ?? self.location
        let pool = try DatabasePool(location: location, maximumConnections: maximumConnections, pooler: pooler, logger: poolLogger)
        do {
            let result = try await withDeadline(seconds: deadlineSeconds, "the database command") { try await body(pool) }
            await pool.close()
            return result
        } catch let error where DatabaseUnavailable.isConnectionLoss(error) {
            await pool.close()
            throw CommandFailure("the database at \(location.redacted) is unavailable: \(DatabaseUnavailable.describe(error))")
        } catch {
            await pool.close()
            throw error
        }
    }
}

struct SystemWallClock: WallClock {
    func now() -> Instant {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Instant(microsecondsSinceEpoch: Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000)
    }
}

/// A command's failure as one line for the operator (ArgumentParser prints it after "Error: ").
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
