import Foundation
import Logging
import PostgresNIO
import TallyCore

public struct TestClock: Sendable, Equatable {
    public let id: UUID
    public let frozenTime: Instant
    public let createdAt: Instant
}

/// Test clocks: a frozen "now" for the organisations created on it.
public struct TestClockStore: Sendable {
    let database: Database

    public func create(frozenTime: Instant, at now: Instant) async throws -> TestClock {
        let clock = TestClock(id: .v7(at: now), frozenTime: frozenTime, createdAt: now)
        try await database.pool.query("""
            INSERT INTO test_clocks (test_clock_id, frozen_time, created_at) VALUES (\(clock.id), \(frozenTime), \(now))
            """, logger: database.logger)
        return clock
    }

    public func clock(_ id: UUID) async throws -> TestClock? {
        let rows = try await database.pool.query("""
            SELECT test_clock_id, frozen_time, created_at FROM test_clocks WHERE test_clock_id = \(id)
            """, logger: database.logger).collect()
        guard let row = rows.first else { return nil }
        let (clockID, frozen, created) = try row.decode((UUID, Instant, Instant).self)
        return TestClock(id: clockID, frozenTime: frozen, createdAt: created)
    }

    /// Moves the clock to `time`, never backwards (422).
    public func setTime(_ id: UUID, to time: Instant) async throws -> TestClock {
        guard let clock = try await clock(id) else { throw TallyError.notFound("The test clock") }
        guard time >= clock.frozenTime else {
            throw TallyError.validation("A test clock moves forward only: it is at \(clock.frozenTime).", field: "to")
        }
        try await database.pool.query("""
            UPDATE test_clocks SET frozen_time = greatest(frozen_time, \(time)) WHERE test_clock_id = \(id)
            """, logger: database.logger)
        return TestClock(id: id, frozenTime: time, createdAt: clock.createdAt)
    }
}
