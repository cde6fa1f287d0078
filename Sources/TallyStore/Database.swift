import Foundation
import Logging
import PostgresNIO
import TallyCore

/// Where the database is: parsed from `DATABASE_URL` (`postgres://user:pass@host:port/db`).
public struct DatabaseLocation: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var requireTLS: Bool

    public init(host: String, port: Int, username: String, password: String?, database: String, requireTLS: Bool = false) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.requireTLS = requireTLS
    }

    public init(url text: String) throws(TallyError) {
        guard let components = URLComponents(string: text),
              components.scheme == "postgres" || components.scheme == "postgresql",
              let host = components.host, !host.isEmpty else {
            throw TallyError.validation("DATABASE_URL must look like postgres://user:pass@host:port/db")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.username = components.user.map { $0.removingPercentEncoding ?? $0 } ?? "postgres"
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? self.username : path
        let sslMode = components.queryItems?.first { $0.name == "sslmode" }?.value
        self.requireTLS = sslMode == "require" || sslMode == "verify-full"
    }

    /// The URL with the password hidden, for logs.
    public var redacted: String { "postgres://\(username)@\(host):\(port)/\(database)" }

    public var url: String {
        let credentials = password.map { "\(username):\($0)" } ?? username
        return "postgres://\(credentials)@\(host):\(port)/\(database)"
    }

    public func with(database: String) -> DatabaseLocation {
        var copy = self
        copy.database = database
        return copy
    }

    /// `keepOpen` (a long-running server) opens every connection up front and keeps them open.
    public func clientConfiguration(maximumConnections: Int = 20, keepOpen: Bool = false) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: requireTLS ? .require(.makeClientConfiguration()) : .disable
        )
        configuration.options.maximumConnections = maximumConnections
        // Every time a connection goes back to the pool, the pool arms a keep-alive timer, and an
        // idle timer for a connection above the minimum. Each is a `Task.sleep` that, even when
        // cancelled a millisecond later, keeps its memory until its deadline: under load that was
        // over 200 MB of cancelled timers. Without them a dropped connection shows on its next
        // use (the statement fails and the pool replaces the connection).
        configuration.options.keepAliveBehavior = nil
        if keepOpen { configuration.options.minimumConnections = maximumConnections }
        // Bound every statement, so that a stuck lock can never hold a request forever.
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(Database.statementTimeoutMilliseconds)"),
            ("lock_timeout", "\(Database.lockTimeoutMilliseconds)"),
            ("idle_in_transaction_session_timeout", "60000"),
            ("application_name", "tally"),
        ]
        return configuration
    }
}

/// The connection pool and the one way Tally runs a transaction.
public struct Database: Sendable {
    public static let statementTimeoutMilliseconds = 30_000
    public static let lockTimeoutMilliseconds = 10_000

    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Runs `body` in one transaction: `BEGIN`, the body, `COMMIT`; `ROLLBACK` if it throws.
    /// Unlike PostgresNIO's `withTransaction`, the body's own error (a `TallyError`) comes back
    /// unwrapped so that callers can map it to a response.
    public func transaction<Result: Sendable>(
        isolation: IsolationLevel = .readCommitted,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await client.withConnection { connection in
            try await connection.query(isolation.beginStatement, logger: logger)
            let result: Result
            do {
                result = try await body(connection)
            } catch {
                do {
                    try await connection.query("ROLLBACK", logger: logger)
                } catch {
                    logger.warning("rollback failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                throw error
            }
            try await connection.query("COMMIT", logger: logger)
            return result
        }
    }

    public enum IsolationLevel: Sendable {
        case readCommitted
        case serializable

        var beginStatement: PostgresQuery {
            switch self {
            case .readCommitted: "BEGIN"
            case .serializable: "BEGIN ISOLATION LEVEL SERIALIZABLE"
            }
        }
    }
}

extension PSQLError {
    /// The SQLSTATE of a server error, e.g. "23505" for a unique violation.
    public var sqlState: String? { serverInfo?[.sqlState] }
}

public enum SQLState {
    public static let uniqueViolation = "23505"
    public static let foreignKeyViolation = "23503"
    public static let checkViolation = "23514"
    public static let serializationFailure = "40001"
    public static let deadlockDetected = "40P01"
    public static let lockNotAvailable = "55P03"
    public static let queryCanceled = "57014"
}
