import Foundation
import Logging
import NIOSSL
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

    /// One connection's settings. Every statement is bounded, so that a stuck lock can never
    /// hold a request forever.
    /// Behind a transaction pooler only `application_name` is sent (PgBouncer refuses the others);
    /// `Database.transaction` sets the timeouts for each transaction instead.
    public func connectionConfiguration(pooler: DatabasePool.Pooler = .none) throws -> PostgresConnection.Configuration {
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: requireTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable
        )
        switch pooler {
        case .none:
            configuration.options.additionalStartupParameters = [
                ("statement_timeout", "\(Database.statementTimeoutMilliseconds)"),
                ("lock_timeout", "\(Database.lockTimeoutMilliseconds)"),
                ("idle_in_transaction_session_timeout", "60000"),
                ("application_name", "tally"),
            ]
        case .transaction:
            configuration.options.additionalStartupParameters = [("application_name", "tally")]
        }
        return configuration
    }
}

/// The connection pool and the one way Tally runs a transaction.
public struct Database: Sendable {
    public static let statementTimeoutMilliseconds = 30_000
    public static let lockTimeoutMilliseconds = 10_000

    public let pool: DatabasePool
    public let logger: Logger

    public init(pool: DatabasePool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Runs `body` in one transaction: `BEGIN`, the body, `COMMIT`; `ROLLBACK` if it throws.
    /// Unlike PostgresNIO's `withTransaction`, the body's own error (a `TallyError`) comes back
    /// unwrapped so that callers can map it to a response.
    public func transaction<Result: Sendable>(
        isolation: IsolationLevel = .readCommitted,
        _ body: (DatabaseConnection) async throws -> Result
    ) async throws -> Result {
        try await pool.withConnection { connection in
            try await connection.query(isolation.beginStatement, logger: logger)
            if pool.settings.pooler == .transaction {
                // No startup parameters through the pooler: the bounds hold for this transaction.
                try await connection.query("""
                    SELECT set_config('statement_timeout', \("\(Self.statementTimeoutMilliseconds)"), true),
                           set_config('lock_timeout', \("\(Self.lockTimeoutMilliseconds)"), true)
                    """, logger: logger)
            }
            let result: Result
            do {
                result = try await body(connection)
            } catch {
                // A lost connection has no transaction left to roll back: the server did it.
                if DatabaseUnavailable.isConnectionLoss(error) { throw error }
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

        var beginStatement: PostgresQuery {
            switch self {
            case .readCommitted: "BEGIN"
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
}

/// The database cannot be used right now: unreachable, a connection lost mid-request, no free
/// connection in time, or shutting down. The client gets 503 with `Retry-After` and may retry
/// with the same Idempotency-Key: the transaction either committed (the retry replays it) or
/// rolled back (the retry does the work).
public struct DatabaseUnavailable: Error, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case unreachable(String)
        case connectionLost
        case busy
        case shuttingDown
    }

    public let reason: Reason
    public let underlying: String?

    public init(_ reason: Reason, underlying: (any Error)? = nil) {
        self.reason = reason
        self.underlying = underlying.map(Self.describe)
    }

    public var description: String {
        switch reason {
        case .unreachable(let why): "the database is unreachable (\(why))"
        case .connectionLost: "the connection to the database was lost\(underlying.map { " (\($0))" } ?? "")"
        case .busy: "no database connection became free in time"
        case .shuttingDown: "the service is shutting down"
        }
    }

    /// A short, single-line reason for logs and CLI messages.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseUnavailable, case .unreachable(let why) = error.reason { return why }
        if let error = error as? DatabaseConnectFailure { return error.description }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return "\(message) [\(error.sqlState ?? "?")]"
            }
            if let underlying = error.underlying {
                let text = "\(underlying)"
                if text.contains("Connection refused") { return "connection refused" }
                if text.contains("connectTimeout") || text.contains("timed out") { return "connection timed out" }
                return "\(error.code): \(text)"
            }
            return "\(error.code)"
        }
        return "\(error)"
    }

    /// Errors that mean the connection, not the statement, failed: the server went away, was shut
    /// down (57P01-57P03), or the connection broke (class 08).
    public static func isConnectionLoss(_ error: any Error) -> Bool {
        if error is DatabaseUnavailable || error is DatabaseConnectFailure { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown, .poolClosed:
            return true
        default:
            guard let state = error.sqlState else { return false }
            // 25006 (read-only transaction): this connection reaches a server that is (now) a
            // standby, e.g. an old primary behind a proxy during a failover. Like a lost connection
            // it is dropped, and the request answers 503: a new connection finds the new primary.
            return state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03" || state == "25006"
        }
    }
}
