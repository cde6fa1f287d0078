import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// A leased connection, as the store's statements see it.
///
/// Why a wrapper: PostgresNIO hands a statement to its channel with `channel.write(task,
/// promise: nil)`. Once a closed channel has dropped its handlers, such a write is discarded and
/// the statement's promise never completes: the caller waits forever (the wedge after a database
/// restart). So every statement first checks that the connection is open, and the pool runs the
/// lease on the connection's own event loop (see `EventLoopTaskExecutor`), where that check and the
/// write happen in one turn of the loop: the channel cannot close in between.
public struct DatabaseConnection: Sendable {
    let base: PostgresConnection
    /// Behind a transaction pooler a named prepared statement may not exist on the next
    /// transaction's server connection: statements are then sent unnamed, parsed each time.
    var unnamedStatements = false

    /// Runs one statement and reads all its rows. Always read to the end: PostgresNIO reports an
    /// error raised while a statement runs (a check constraint in a `WITH ... INSERT ... SELECT`)
    /// only to whoever iterates its rows, so a statement whose rows nobody read could fail
    /// unseen and its transaction commit without it.
    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws -> DatabaseRows<PostgresRow> {
        guard !base.isClosed else { throw DatabaseUnavailable(.connectionLost) }
        return DatabaseRows(try await base.query(query, logger: logger, file: file, line: line).collect())
    }

    /// Runs one prepared statement and reads (and decodes) all its rows, for the same reason.
    @discardableResult
    public func execute<Statement: PostgresPreparedStatement>(
        _ statement: Statement, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> DatabaseRows<Statement.Row> {
        guard !base.isClosed else { throw DatabaseUnavailable(.connectionLost) }
        var rows: [Statement.Row] = []
        if unnamedStatements {
            let query = PostgresQuery(unsafeSQL: Statement.sql, binds: try statement.makeBindings())
            for try await row in try await base.query(query, logger: logger, file: file, line: line) { rows.append(try statement.decodeRow(row)) }
        } else {
            for try await row in try await base.execute(statement, logger: logger, file: file, line: line) { rows.append(row) }
        }
        return DatabaseRows(rows)
    }
}

/// Runs a task's jobs on one NIO event loop: a lease's statements then run where the
/// connection's replies arrive, with no thread hop, and atomically with respect to the channel's
/// close (which happens on that loop too).
///
/// One executor per event loop, made once and kept for the life of the process: a job holds only
/// an unowned reference to its executor, so an executor must never go away while a job of a task
/// that preferred it may still run.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    private init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let executors = Mutex<[ObjectIdentifier: EventLoopTaskExecutor]>([:])

    static func on(_ eventLoop: any EventLoop) -> EventLoopTaskExecutor {
        executors.withLock { executors in
            if let existing = executors[ObjectIdentifier(eventLoop)] { return existing }
            let executor = EventLoopTaskExecutor(eventLoop)
            executors[ObjectIdentifier(eventLoop)] = executor
            return executor
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
