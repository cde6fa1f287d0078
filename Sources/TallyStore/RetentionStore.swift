import Foundation
import Logging
import PostgresNIO
import TallyCore

/// How long what is not the ledger is kept. The ledger, buckets, postings and invoices are never
/// deleted; stored answers of idempotency keys, delivered webhooks, their events and settled holds
/// are, once older than these.
public struct RetentionPolicy: Sendable, Equatable {
    /// Stored answers of idempotency keys: a key older than this is a new request. At least 1 day
    /// (the contract promises 24 hours).
    public var idempotencyDays: Int
    /// Events, finished webhook deliveries with their attempts, settled reservations.
    public var eventDays: Int

    public init(idempotencyDays: Int = 30, eventDays: Int = 90) {
        self.idempotencyDays = max(1, idempotencyDays)
        self.eventDays = max(1, eventDays)
    }
}

/// Deletes, in batches, what a `RetentionPolicy` lets go: each batch is one short statement (its
/// own transaction) over at most `batchSize` rows found through an index, so no table is locked
/// for long and a run can stop at any batch.
public struct RetentionStore: Sendable {
    let database: Database
    public static let batchSize = 5_000

    public struct Report: Sendable, Equatable, CustomStringConvertible {
        public var idempotencyKeys = 0
        public var webhookDeliveries = 0
        public var events = 0
        public var reservations = 0
        /// Credits portal sessions that expired over a day ago (a revoked one still expires).
        public var portalSessions = 0

        public init(idempotencyKeys: Int = 0, webhookDeliveries: Int = 0, events: Int = 0, reservations: Int = 0) {
            self.idempotencyKeys = idempotencyKeys
            self.webhookDeliveries = webhookDeliveries
            self.events = events
            self.reservations = reservations
        }

        public var description: String {
            "deleted \(idempotencyKeys) idempotency key(s), \(webhookDeliveries) webhook delivery(ies), \(events) event(s), \(reservations) settled hold(s), \(portalSessions) portal session(s)"
        }
    }

    /// Runs every batch that is due at `now`, for at most `budget`.
    public func purge(_ policy: RetentionPolicy, at now: Instant, budget: Duration = .seconds(60)) async throws -> Report {
        let deadline = ContinuousClock.now + budget
        let keysBefore = now.adding(seconds: -Int64(policy.idempotencyDays) * 86_400)
        let eventsBefore = now.adding(seconds: -Int64(policy.eventDays) * 86_400)
        var report = Report()
        report.idempotencyKeys = try await repeatBatches(until: deadline) {
            try await deleteCount("""
                WITH doomed AS (
                    SELECT org_id, idempotency_key FROM idempotency_keys WHERE created_at < \(keysBefore)
                    ORDER BY created_at LIMIT \(Self.batchSize)
                ), deleted AS (
                    DELETE FROM idempotency_keys k USING doomed d
                    WHERE k.org_id = d.org_id AND k.idempotency_key = d.idempotency_key RETURNING 1
                )
                SELECT count(*) FROM deleted
                """)
        }
        // Attempts go with their deliveries (one statement: the foreign key is checked at its end).
        report.webhookDeliveries = try await repeatBatches(until: deadline) {
            try await deleteCount("""
                WITH doomed AS (
                    SELECT org_id, delivery_id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < \(eventsBefore)
                    ORDER BY created_at LIMIT \(Self.batchSize)
                ), attempts AS (
                    DELETE FROM webhook_attempts a USING doomed d WHERE a.org_id = d.org_id AND a.delivery_id = d.delivery_id
                ), deleted AS (
                    DELETE FROM webhook_deliveries w USING doomed d
                    WHERE w.org_id = d.org_id AND w.delivery_id = d.delivery_id RETURNING 1
                )
                SELECT count(*) FROM deleted
                """)
        }
        // An event still owed to an endpoint (a pending delivery) stays.
        report.events = try await repeatBatches(until: deadline) {
            try await deleteCount("""
                WITH doomed AS (
                    SELECT org_id, event_id FROM events e WHERE created_at < \(eventsBefore)
                      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries w WHERE w.org_id = e.org_id AND w.event_id = e.event_id)
                    ORDER BY created_at LIMIT \(Self.batchSize)
                ), deleted AS (
                    DELETE FROM events e USING doomed d WHERE e.org_id = d.org_id AND e.event_id = d.event_id RETURNING 1
                )
                SELECT count(*) FROM deleted
                """)
        }
        report.reservations = try await repeatBatches(until: deadline) {
            try await deleteCount("""
                WITH doomed AS (
                    SELECT org_id, reservation_id FROM reservations WHERE status <> 'active' AND settled_at < \(eventsBefore)
                    ORDER BY settled_at LIMIT \(Self.batchSize)
                ), deleted AS (
                    DELETE FROM reservations r USING doomed d
                    WHERE r.org_id = d.org_id AND r.reservation_id = d.reservation_id RETURNING 1
                )
                SELECT count(*) FROM deleted
                """)
        }
        let sessionsBefore = now.adding(days: -1)
        report.portalSessions = try await repeatBatches(until: deadline) {
            try await deleteCount("""
                WITH doomed AS (
                    SELECT org_id, session_id FROM portal_sessions WHERE expires_at < \(sessionsBefore)
                    ORDER BY expires_at LIMIT \(Self.batchSize)
                ), deleted AS (
                    DELETE FROM portal_sessions p USING doomed d
                    WHERE p.org_id = d.org_id AND p.session_id = d.session_id RETURNING 1
                )
                SELECT count(*) FROM deleted
                """)
        }
        return report
    }

    private func repeatBatches(until deadline: ContinuousClock.Instant, _ batch: () async throws -> Int) async throws -> Int {
        var total = 0
        while ContinuousClock.now < deadline {
            let deleted = try await batch()
            total += deleted
            if deleted < Self.batchSize { break }
        }
        return total
    }

    private func deleteCount(_ statement: PostgresQuery) async throws -> Int {
        try await database.pool.query(statement, logger: database.logger).collect().first?.decode(Int.self) ?? 0
    }
}
