import Foundation
import Logging
import PostgresNIO
import Testing
import TallyCore
@testable import TallyStore
import TallyTestSupport

/// The pool under database faults, against a real server. The whole-service behaviour (503s,
/// recovery under load, SIGTERM) is proven by scripts/faults/run_faults.py in `make test`.
@Suite struct DatabasePoolTests {
    /// A port nothing listens on: connections to it are refused at once.
    func closedPort() throws -> Int {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test func anUnreachableDatabaseFailsFastAndTheNextLeaseDoesNotEvenTry() async throws {
        let location = DatabaseLocation(host: "127.0.0.1", port: try closedPort(), username: "tally", password: nil, database: "x")
        var settings = DatabasePool.Settings(maximumConnections: 4)
        settings.probeInterval = .seconds(60)
        let pool = DatabasePool(configuration: try location.connectionConfiguration(), settings: settings, logger: testLogger)
        let clock = ContinuousClock()
        let first = await clock.measure {
            await #expect(throws: DatabaseUnavailable.self) { try await pool.query("SELECT 1", logger: testLogger) }
        }
        #expect(first < .seconds(2))
        guard case .down = pool.health else { Issue.record("the pool should know the database is down"); return }
        // Down: no connect attempt until the next probe, every lease fails at once.
        for _ in 0..<50 {
            do {
                try await pool.query("SELECT 1", logger: testLogger)
                Issue.record("a lease succeeded on an unreachable database")
            } catch let error as DatabaseUnavailable {
                guard case .unreachable = error.reason else { Issue.record("unexpected reason \(error.reason)"); return }
            }
        }
        #expect(pool.openConnections == 0)
        await pool.close()
    }

    /// PostgreSQL can fail a statement after it has described its rows (a check in a data-modifying
    /// CTE of a `SELECT`): the error must reach the caller even when it reads no rows, and the
    /// transaction must not commit what came before (it once did: credits.expiring warnings were
    /// recorded while their event was refused, and a test clock looped on them).
    @Test func aStatementThatFailsAfterDescribingItsRowsFailsEvenUnread() async throws {
        try await TestDatabases.shared.withDatabase(maximumConnections: 1) { pool, _ in
            let database = Database(pool: pool, logger: testLogger)
            try await pool.query("CREATE TABLE checked (n int CHECK (n > 0))", logger: testLogger)
            try await pool.query("CREATE TABLE before (n int)", logger: testLogger)
            await #expect(throws: (any Error).self) {
                try await database.transaction { connection in
                    try await connection.query("INSERT INTO before VALUES (1)", logger: testLogger)
                    try await connection.query("WITH bad AS (INSERT INTO checked VALUES (-1)) SELECT 1", logger: testLogger)
                }
            }
            #expect(try await pool.query("SELECT count(*) FROM before", logger: testLogger).collect()[0].decode(Int.self) == 0)
        }
    }

    @Test func aConnectionKilledMidTransactionFailsItsStatementAndThePoolRecovers() async throws {
        try await TestDatabases.shared.withDatabase(maximumConnections: 1) { pool, location in
            let admin = try DatabasePool(location: location, maximumConnections: 1, logger: testLogger)
            // The transaction's backend is killed between two of its statements: the next one
            // must fail (not wait forever), and nothing of the transaction may remain.
            var outcome: Result<Void, any Error> = .success(())
            do {
                try await withDeadline(seconds: 10, "a statement on a killed connection") {
                    try await Database(pool: pool, logger: testLogger).transaction { connection in
                        let pid = try await connection.query("SELECT pg_backend_pid()", logger: testLogger).collect()[0].decode(Int32.self)
                        try await connection.query("CREATE TABLE doomed (id int)", logger: testLogger)
                        try await admin.query("SELECT pg_terminate_backend(\(pid))", logger: testLogger)
                        try await Task.sleep(for: .milliseconds(100))
                        try await connection.query("INSERT INTO doomed VALUES (1)", logger: testLogger)
                    }
                }
            } catch {
                outcome = .failure(error)
            }
            guard case .failure(let error) = outcome else { Issue.record("the transaction should fail"); return }
            #expect(error is DatabaseUnavailable, "got \(String(reflecting: error))")
            // The dead connection is not reused: the next lease opens a new one, and works.
            let exists = try await pool.query("SELECT to_regclass('public.doomed') IS NOT NULL", logger: testLogger).collect()[0].decode(Bool.self)
            #expect(!exists)
            #expect(pool.health == .up)
            await admin.close()
        }
    }

    /// A write refused because the server is read-only (a standby reached during a failover) is
    /// the database being unavailable (503), and that connection is not used again.
    @Test func aWriteOnAReadOnlyServerIsUnavailableAndItsConnectionDropped() async throws {
        try await TestDatabases.shared.withDatabase(maximumConnections: 1) { pool, _ in
            try await pool.query("CREATE TABLE written (n int)", logger: testLogger)
            var outcome: Result<Void, any Error> = .success(())
            do {
                try await Database(pool: pool, logger: testLogger).transaction { connection in
                    try await connection.query("SET SESSION default_transaction_read_only = on", logger: testLogger)
                    try await connection.query("COMMIT", logger: testLogger)
                    try await connection.query("BEGIN", logger: testLogger)
                    try await connection.query("INSERT INTO written VALUES (1)", logger: testLogger)
                }
            } catch {
                outcome = .failure(error)
            }
            guard case .failure(let error) = outcome else { Issue.record("the write should fail"); return }
            #expect(error is DatabaseUnavailable, "got \(String(reflecting: error))")
            // The read-only session is gone: the next lease writes.
            try await pool.query("INSERT INTO written VALUES (2)", logger: testLogger)
            #expect(try await pool.query("SELECT count(*) FROM written", logger: testLogger).collect()[0].decode(Int.self) == 1)
        }
    }

    @Test func aConnectionKilledWhileIdleIsDroppedWithoutFailingMoreThanOneStatement() async throws {
        try await TestDatabases.shared.withDatabase(maximumConnections: 2) { pool, location in
            let admin = try DatabasePool(location: location, maximumConnections: 1, logger: testLogger)
            for _ in 0..<3 {
                _ = try await pool.query("SELECT 1", logger: testLogger)
                try await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()", logger: testLogger)
                try await Task.sleep(for: .milliseconds(100))
                // The closed idle connections are noticed when leased and dropped.
                let value = try await pool.query("SELECT 42", logger: testLogger).collect()[0].decode(Int.self)
                #expect(value == 42)
            }
            await admin.close()
        }
    }

    @Test func aLeaseWaitsForAFreeConnectionAtMostTheLeaseTimeout() async throws {
        try await TestDatabases.shared.withDatabase(maximumConnections: 1) { _, location in
            var settings = DatabasePool.Settings(maximumConnections: 1)
            settings.leaseTimeout = .milliseconds(200)
            let pool = DatabasePool(configuration: try location.connectionConfiguration(), settings: settings, logger: testLogger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await pool.withConnection { connection -> Void in
                        try await connection.query("SELECT pg_sleep(1)", logger: testLogger)
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
                let start = ContinuousClock.now
                do {
                    try await pool.query("SELECT 1", logger: testLogger)
                    Issue.record("the second lease should time out")
                } catch let error as DatabaseUnavailable {
                    #expect(error.reason == .busy)
                }
                #expect(ContinuousClock.now - start < .milliseconds(900))
                try await group.waitForAll()
            }
            // The connection came back: the pool works again.
            #expect(try await pool.query("SELECT 1", logger: testLogger).collect().count == 1)
            await pool.close()
        }
    }
}
