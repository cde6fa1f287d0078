import Logging
import Metrics
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// Tally's own connection pool: a fixed maximum of connections opened on demand and kept open,
/// with a circuit breaker in front.
///
/// Why not `PostgresClient`: its pool crashed (a precondition in its state machine) or wedged
/// when connections failed with `minimumConnections == maximumConnections`, and with a minimum
/// of zero it arms idle and keep-alive timers (`Task.sleep`s that hold their memory until their
/// deadline even when cancelled). This pool has no timers of its own except NIO scheduled tasks,
/// which free their memory when cancelled.
///
/// Behaviour under faults:
/// - a connection found closed (server restart, `pg_terminate_backend`) is dropped, never reused;
/// - a failed connect marks the database *down*: every lease then fails at once with
///   `DatabaseUnavailable` (a 503), except one probe every `probeInterval`, which reconnects and
///   marks it up again: the pool recovers by itself, without a background task;
/// - a lease waits for a free connection at most `leaseTimeout`, and holds it at most
///   `holdLimit` (then the connection is closed, which fails its statement): nothing waits forever.
public final class DatabasePool: Sendable {
    public struct Settings: Sendable {
        public var maximumConnections: Int
        public var connectTimeout: TimeAmount = .milliseconds(1500)
        public var leaseTimeout: TimeAmount = .seconds(5)
        public var holdLimit: TimeAmount = .milliseconds(Int64(Database.statementTimeoutMilliseconds) + 5000)
        public var probeInterval: Duration = .milliseconds(250)
        /// What sits between Tally and PostgreSQL (`TALLY_DATABASE_POOLER`).
        public var pooler: Pooler = .none

        public init(maximumConnections: Int, pooler: Pooler = .none) {
            self.maximumConnections = max(1, maximumConnections)
            self.pooler = pooler
        }
    }

    /// `transaction`: PgBouncer in transaction pooling. Each transaction may run on another server
    /// connection, so nothing may outlive one: no startup parameters (PgBouncer refuses them; the
    /// timeouts are set per transaction), no named prepared statements, no session advisory locks.
    public enum Pooler: String, Sendable {
        case none
        case transaction
    }

    public enum Health: Sendable, Equatable {
        case up
        case down(reason: String)
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Pooled?, any Error>
        let timeout: Scheduled<Void>
    }

    /// A connection and the executor that runs its leases on its event loop.
    private struct Pooled: Sendable {
        let connection: PostgresConnection
        let executor: EventLoopTaskExecutor
    }

    private struct State {
        var idle: [Pooled] = []
        var leased = 0
        var opening = 0
        var waiters: [Waiter] = []
        var nextID = 0
        var down: (reason: String, since: ContinuousClock.Instant, lastProbe: ContinuousClock.Instant)?
        var probing = false
        var closed = false
    }

    public let settings: Settings
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let state = Mutex(State())
    /// Connections open on its loops in turn (`next()`): `any()` stays on the caller's loop, and
    /// connections opened from one loop's tasks then all ran there, with every statement's I/O and
    /// its task (71 % of Tally's CPU samples on one of two loops under spends, `perf record`).
    private let eventLoops: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    public init(configuration: PostgresConnection.Configuration, settings: Settings, logger: Logger) {
        var configuration = configuration
        configuration.options.connectTimeout = settings.connectTimeout
        self.configuration = configuration
        self.settings = settings
        self.logger = logger
    }

    public convenience init(location: DatabaseLocation, maximumConnections: Int, pooler: Pooler = .none, logger: Logger) throws {
        self.init(configuration: try location.connectionConfiguration(pooler: pooler),
                  settings: Settings(maximumConnections: maximumConnections, pooler: pooler), logger: logger)
    }

    /// `.up` until a connect fails; `.down` until a probe connects again.
    public var health: Health {
        state.withLock { state in state.down.map { .down(reason: $0.reason) } ?? .up }
    }

    /// Connections open now (idle and leased), for metrics and tests.
    public var openConnections: Int {
        state.withLock { $0.idle.count + $0.leased }
    }

    // MARK: Running statements

    /// Runs `body` with a connection of its own. A connection that failed in a way other than a
    /// server's answer to a statement is closed rather than returned: its session state is unknown.
    public func withConnection<Result>(_ body: (DatabaseConnection) async throws -> Result) async throws -> Result {
        let pooled = try await lease()
        let connection = pooled.connection
        let watchdog = connection.eventLoop.scheduleTask(in: settings.holdLimit) { [logger] in
            logger.warning("a database connection was held too long; closing it", metadata: ["db.connection": "\(connection.id)"])
            connection.close().whenComplete { _ in }
        }
        do {
            let result = try await withTaskExecutorPreference(pooled.executor) {
                try await body(DatabaseConnection(base: connection, unnamedStatements: settings.pooler == .transaction))
            }
            watchdog.cancel()
            release(pooled, reusable: true)
            return result
        } catch {
            watchdog.cancel()
            let lost = DatabaseUnavailable.isConnectionLoss(error) || connection.isClosed
            release(pooled, reusable: !lost && Self.leavesSessionClean(error))
            if lost, !(error is DatabaseUnavailable) { throw DatabaseUnavailable(.connectionLost, underlying: error) }
            throw error
        }
    }

    /// Runs one statement and returns all its rows.
    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws -> DatabaseRows<PostgresRow> {
        try await withConnection { connection in
            try await connection.query(query, logger: logger, file: file, line: line)
        }
    }

    /// Runs one prepared statement and returns all its decoded rows.
    public func execute<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws -> DatabaseRows<Statement.Row> {
        try await withConnection { connection in
            try await connection.execute(statement, logger: logger)
        }
    }

    /// A connection outside the pool, for a session of its own (LISTEN); the caller closes it.
    public func openDedicatedConnection(logger: Logger) async throws -> PostgresConnection {
        try await PostgresConnection.connectGuarded(on: eventLoops.next(), configuration: configuration,
                                             id: Int.random(in: 1_000_000...Int(Int32.max)), logger: logger)
    }

    /// Closes every idle connection and fails every later lease; leased connections close on release.
    public func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer { state.idle = []; state.waiters = [] }
            return (state.idle, state.waiters)
        }
        for waiter in waiters {
            waiter.timeout.cancel()
            waiter.continuation.resume(throwing: DatabaseUnavailable(.shuttingDown))
        }
        for pooled in idle { try? await pooled.connection.close() }
    }

    // MARK: Metrics

    /// `tally_db_pool_connections{state}`, `tally_db_pool_wait_seconds`, `tally_db_available`:
    /// atomics, made on first use (after the metrics system is set up).
    private enum PoolMetrics {
        static let idle = Gauge(label: "tally_db_pool_connections", dimensions: [("state", "idle")])
        static let leased = Gauge(label: "tally_db_pool_connections", dimensions: [("state", "leased")])
        static let opening = Gauge(label: "tally_db_pool_connections", dimensions: [("state", "opening")])
        static let available = Gauge(label: "tally_db_available")
        static let wait = Metrics.Timer(label: "tally_db_pool_wait_seconds")
    }

    private func publish() {
        let (idle, leased, opening, up) = state.withLock { ($0.idle.count, $0.leased, $0.opening, $0.down == nil) }
        PoolMetrics.idle.record(idle)
        PoolMetrics.leased.record(leased)
        PoolMetrics.opening.record(opening)
        PoolMetrics.available.record(up ? 1 : 0)
    }

    // MARK: Leasing

    private enum Decision {
        case use(Pooled)
        case open(id: Int, probe: Bool)
        case wait(id: Int)
        case fail(DatabaseUnavailable)
    }

    private func lease() async throws -> Pooled {
        while true {
            try Task.checkCancellation()
            let now = ContinuousClock.now
            let decision: Decision = state.withLock { state in
                if state.closed { return .fail(DatabaseUnavailable(.shuttingDown)) }
                if let down = state.down {
                    // Fail fast while the database is away, but let one request probe it now and then.
                    guard !state.probing, now - down.lastProbe >= settings.probeInterval else {
                        return .fail(DatabaseUnavailable(.unreachable(down.reason)))
                    }
                    state.probing = true
                    state.down?.lastProbe = now
                    state.opening += 1
                    state.nextID += 1
                    return .open(id: state.nextID, probe: true)
                }
                while let pooled = state.idle.popLast() {
                    // A connection the server closed while it was idle is dropped here.
                    if !pooled.connection.isClosed {
                        state.leased += 1
                        return .use(pooled)
                    }
                }
                state.nextID += 1
                if state.leased + state.opening < settings.maximumConnections {
                    state.opening += 1
                    return .open(id: state.nextID, probe: false)
                }
                return .wait(id: state.nextID)
            }
            switch decision {
            case .use(let connection):
                publish()
                return connection
            case .fail(let error):
                throw error
            case .open(let id, let probe):
                defer { publish() }
                return try await open(id: id, probe: probe)
            case .wait(let id):
                let start = ContinuousClock.now
                let woken = try await wait(id: id)
                let waited = ContinuousClock.now - start
                PoolMetrics.wait.recordNanoseconds(waited.components.seconds * 1_000_000_000 + waited.components.attoseconds / 1_000_000_000)
                if let connection = woken { return connection }
                // Woken without a connection: capacity was freed; decide again.
            }
        }
    }

    private func open(id: Int, probe: Bool) async throws -> Pooled {
        do {
            let connection = try await PostgresConnection.connectGuarded(
                on: eventLoops.next(), configuration: configuration, id: id, logger: logger
            )
            let recovered: Duration? = state.withLock { state in
                state.opening -= 1
                state.leased += 1
                if probe { state.probing = false }
                defer { state.down = nil }
                return state.down.map { ContinuousClock.now - $0.since }
            }
            if let recovered {
                logger.notice("database reachable again", metadata: ["db.outage_seconds": "\(recovered.components.seconds)"])
            }
            return Pooled(connection: connection, executor: EventLoopTaskExecutor.on(connection.eventLoop))
        } catch {
            let reason = DatabaseUnavailable.describe(error)
            let (wasUp, waiters) = state.withLock { state in
                state.opening -= 1
                if probe { state.probing = false }
                let wasUp = state.down == nil
                let now = ContinuousClock.now
                if wasUp { state.down = (reason, now, now) } else { state.down?.reason = reason }
                defer { state.waiters = [] }
                return (wasUp, state.waiters)
            }
            if wasUp {
                // Logged once per outage; the recovery is logged once too.
                logger.error("database unreachable; failing requests fast until it is back", metadata: ["error": "\(reason)"])
            }
            for waiter in waiters {
                waiter.timeout.cancel()
                waiter.continuation.resume(throwing: DatabaseUnavailable(.unreachable(reason)))
            }
            if error is CancellationError { throw error }
            throw DatabaseUnavailable(.unreachable(reason), underlying: error)
        }
    }

    private func wait(id: Int) async throws -> Pooled? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Pooled?, any Error>) in
                let timeout = eventLoops.any().scheduleTask(in: settings.leaseTimeout) { [self] in
                    self.abandonWait(id: id, with: DatabaseUnavailable(.busy))
                }
                state.withLock { $0.waiters.append(Waiter(id: id, continuation: continuation, timeout: timeout)) }
            }
        } onCancel: {
            abandonWait(id: id, with: CancellationError())
        }
    }

    private func abandonWait(id: Int, with error: any Error) {
        let waiter: Waiter? = state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        guard let waiter else { return }
        waiter.timeout.cancel()
        waiter.continuation.resume(throwing: error)
    }

    private func release(_ pooled: Pooled, reusable: Bool) {
        let (handOver, kept): (Waiter?, Bool) = state.withLock { state in
            let keep = reusable && !pooled.connection.isClosed && !state.closed
            if keep, !state.waiters.isEmpty {
                return (state.waiters.removeFirst(), true) // the lease passes on: `leased` is unchanged
            }
            state.leased -= 1
            if keep { state.idle.append(pooled) }
            // A closed connection frees a slot: the first waiter may open a new one.
            return (state.waiters.isEmpty || keep ? nil : state.waiters.removeFirst(), keep)
        }
        if !kept {
            // Held until it has closed: PostgresNIO asserts that a connection is closed before it goes.
            let connection = pooled.connection
            connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
        }
        publish()
        guard let handOver else { return }
        handOver.timeout.cancel()
        handOver.continuation.resume(returning: kept ? pooled : nil)
    }

    /// After a server error (a constraint, a timeout) the session is fine: PostgreSQL aborted the
    /// statement and the transaction ends with ROLLBACK. After anything else (a cancelled task, a
    /// decoding error in the middle of a row stream) the connection's state is not known.
    private static func leavesSessionClean(_ error: any Error) -> Bool {
        if let error = error as? PSQLError { return error.serverInfo != nil }
        return !(error is CancellationError)
    }
}

/// All the rows of one statement, read before its connection went back to the pool.
public struct DatabaseRows<Row: Sendable>: Sendable, Sequence, AsyncSequence {
    public let rows: [Row]

    init(_ rows: [Row]) { self.rows = rows }

    public func collect() -> [Row] { rows }
    public var first: Row? { rows.first }
    public func makeIterator() -> IndexingIterator<[Row]> { rows.makeIterator() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[Row]>
        public mutating func next() async throws -> Row? { base.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: rows.makeIterator()) }
}
