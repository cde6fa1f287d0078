import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyStore

/// The repository root, found from this file's path (tests run from any working directory).
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

public let testLogger: Logger = {
    var logger = Logger(label: "tally-test")
    logger.logLevel = ProcessInfo.processInfo.environment["TALLY_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

public func loadMigrations() throws -> [Migration] {
    try Migration.load(from: repositoryRoot.appendingPathComponent("sql"))
}

/// Hands out one fresh, fully migrated database per test, cloned from a template database that
/// is migrated once per run. The server is the real PostgreSQL that `make test` starts
/// (`TALLY_TEST_DATABASE_URL`); nothing is mocked.
public actor TestDatabases {
    public static let shared = TestDatabases()

    /// Databases alive at once: bounds the load on a 2-core machine running tests in parallel.
    static let concurrentDatabasesMaximum = 6

    private var templateName: String?
    private var active = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public nonisolated var server: DatabaseLocation {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["TALLY_TEST_DATABASE_URL"] else {
                throw TestSetupError("TALLY_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL.")
            }
            return try DatabaseLocation(url: url)
        }
    }

    private func acquire() async {
        if active < Self.concurrentDatabasesMaximum {
            active += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty {
            active -= 1
        } else {
            waiters.removeFirst().resume()
        }
    }

    /// A new empty database (no migrations), for tests of the migration runner itself.
    public func makeEmptyDatabase() async throws -> DatabaseLocation {
        let server = try server
        let name = "tally_t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        _ = try await Self.admin(server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: testLogger)
        }
        return server.with(database: name)
    }

    /// A new database with every migration applied.
    public func makeMigratedDatabase() async throws -> DatabaseLocation {
        let template = try await ensureTemplate()
        let server = try server
        let name = "tally_t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        _ = try await Self.admin(server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name) TEMPLATE \(template)"), logger: testLogger)
        }
        return server.with(database: name)
    }

    public func drop(_ location: DatabaseLocation) async {
        _ = try? await Self.admin(try server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(location.database) WITH (FORCE)"), logger: testLogger)
        }
    }

    /// Runs `body` with a migrated database and a running client, then drops the database.
    public func withDatabase<T: Sendable>(
        maximumConnections: Int = 8,
        _ body: @Sendable (DatabasePool, DatabaseLocation) async throws -> T
    ) async throws -> T {
        await acquire()
        let location: DatabaseLocation
        do {
            location = try await makeMigratedDatabase()
        } catch {
            release()
            throw error
        }
        let result: Result<T, any Error>
        do {
            result = .success(try await runClient(location, maximumConnections: maximumConnections, body))
        } catch {
            result = .failure(error)
        }
        await drop(location)
        release()
        return try result.get()
    }

    private nonisolated func runClient<T: Sendable>(
        _ location: DatabaseLocation, maximumConnections: Int,
        _ body: @Sendable (DatabasePool, DatabaseLocation) async throws -> T
    ) async throws -> T {
        let pool = try DatabasePool(location: location, maximumConnections: maximumConnections, logger: testLogger)
        do {
            let result = try await body(pool, location)
            await pool.close()
            return result
        } catch {
            await pool.close()
            throw error
        }
    }

    /// The template is named after the migrations' checksums, so a changed migration gets a new one.
    private func ensureTemplate() async throws -> String {
        if let templateName { return templateName }
        let migrations = try loadMigrations()
        let fingerprint = migrations.map(\.checksum).joined().utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
        let name = "tally_template_\(String(fingerprint, radix: 16))"
        let server = try server
        // One admin session holds the advisory lock while the template is made, so that two test
        // processes never clone a half-migrated template.
        try await Self.admin(server) { connection in
            try await connection.query("SELECT pg_advisory_lock(4242)", logger: testLogger)
            let rows = try await connection.query("SELECT 1 FROM pg_database WHERE datname = \(name)", logger: testLogger).collect()
            if rows.isEmpty {
                try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: testLogger)
                _ = try await self.runClient(server.with(database: name), maximumConnections: 2) { pool, _ in
                    try await MigrationRunner(pool: pool, logger: testLogger).apply(migrations)
                }
            }
            try await connection.query("SELECT pg_advisory_unlock(4242)", logger: testLogger)
        }
        templateName = name
        return name
    }

    /// One connection to the server's `postgres` database for administrative statements.
    static func admin<T: Sendable>(_ server: DatabaseLocation, _ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let configuration = PostgresConnection.Configuration(
            host: server.host, port: server.port, username: server.username, password: server.password,
            database: server.database, tls: .disable
        )
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: testLogger)
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A clock the test moves by hand.
public final class ManualClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Instant

    public init(_ start: Instant = Instant(secondsSinceEpoch: 1_780_000_000)) {
        current = start
    }

    public init(_ rfc3339: String) {
        current = try! Instant(rfc3339: rfc3339)
    }

    public func now() -> Instant {
        lock.withLock { current }
    }

    public func set(_ instant: Instant) {
        lock.withLock { current = instant }
    }

    public func set(_ rfc3339: String) {
        set(try! Instant(rfc3339: rfc3339))
    }

    public func advance(seconds: Int64) {
        lock.withLock { current = current.adding(seconds: seconds) }
    }

    public func advance(microseconds: Int64) {
        lock.withLock { current = current.adding(microseconds: microseconds) }
    }
}
