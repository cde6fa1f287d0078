import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

public struct WebhookEndpoint: Sendable, Equatable {
    public let id: UUID
    /// Nil: the platform's endpoint for every organisation.
    public let orgID: UUID?
    public let url: String
    public let events: [String]
    public let active: Bool
    public let createdAt: Instant
}

public struct WebhookDelivery: Sendable, Equatable {
    public struct Attempt: Sendable, Equatable {
        public let number: Int
        public let at: Instant
        public let statusCode: Int?
        public let error: String?
        public let durationMilliseconds: Int
    }

    public let id: UUID
    public let orgID: UUID
    public let eventID: UUID
    public let eventType: String
    public let status: String
    public let attempts: Int
    public let nextAttemptAt: Instant?
    public let deliveredAt: Instant?
    public let createdAt: Instant
    public let attemptLog: [Attempt]
}

/// A delivery a worker has claimed: what to send where, signed with which secret.
public struct DueDelivery: Sendable {
    public let orgID: UUID
    public let deliveryID: UUID
    public let eventID: UUID
    public let url: String
    public let secret: String
    public let attempt: Int
    public let firstAttemptAt: Instant
    /// The delivered body: `{"id", "type", "created_at", "org_id", "data"}`.
    public let body: [UInt8]
    /// The endpoint was saved by the platform key: it may target private addresses.
    public let privateAllowed: Bool
}

/// Webhook endpoints and the deliveries of events to them, at least once.
public struct WebhookStore: Sendable {
    let database: Database
    /// How long a worker holds a delivery it is sending; if it dies, the delivery is due again after.
    public static let leaseSeconds: Int64 = 60

    /// `privateAllowed`: deliveries may reach private addresses (the platform key made it).
    public func create(orgID: UUID?, url: String, events: [String], privateAllowed: Bool, at now: Instant) async throws -> (WebhookEndpoint, secret: String) {
        let secret = "whsec_" + KeyMaterial.generate().secret.dropFirst(KeyMaterial.scheme.count)
        let endpoint = WebhookEndpoint(id: .v7(at: now), orgID: orgID, url: url, events: events, active: true, createdAt: now)
        try await database.pool.query("""
            INSERT INTO webhook_endpoints (endpoint_id, org_id, url, events, secret, private_allowed, created_at)
            VALUES (\(endpoint.id), \(orgID), \(url), \(events), \(secret), \(privateAllowed), \(now))
            """, logger: database.logger)
        return (endpoint, secret)
    }

    static let endpointColumns = "endpoint_id, org_id, url, events, active, created_at"

    static func decodeEndpoint(_ row: PostgresRow) throws -> WebhookEndpoint {
        let (id, org, url, events, active, created) = try row.decode((UUID, UUID?, String, [String], Bool, Instant).self)
        return WebhookEndpoint(id: id, orgID: org, url: url, events: events, active: active, createdAt: created)
    }

    /// Active endpoints: all of them (platform), or one organisation's own.
    public func list(orgID: UUID?, limit: Int, after cursor: UUID?) async throws -> Page<WebhookEndpoint> {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints
            WHERE active AND (\(orgID)::uuid IS NULL OR org_id = \(orgID)) AND (\(cursor)::uuid IS NULL OR endpoint_id > \(cursor))
            ORDER BY endpoint_id LIMIT \(limit + 1)
            """, logger: database.logger).collect()
        var endpoints = try rows.map(Self.decodeEndpoint)
        let more = endpoints.count > limit
        if more { endpoints.removeLast() }
        return Page(items: endpoints, nextCursor: more ? endpoints.last?.id.idString : nil)
    }

    public func endpoint(_ id: UUID) async throws -> WebhookEndpoint? {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints WHERE endpoint_id = \(id)
            """, logger: database.logger).collect()
        return try rows.first.map(Self.decodeEndpoint)
    }

    /// Stops deliveries to the endpoint (pending ones are dropped as failed).
    public func disable(_ id: UUID) async throws {
        try await database.transaction { connection in
            try await connection.query("UPDATE webhook_endpoints SET active = false WHERE endpoint_id = \(id)", logger: database.logger)
            try await connection.query("""
                UPDATE webhook_deliveries SET status = 'failed', locked_until = NULL WHERE endpoint_id = \(id) AND status = 'pending'
                """, logger: database.logger)
        }
    }

    /// The endpoint's deliveries, newest first, with every attempt.
    public func deliveries(endpointID: UUID, limit: Int, before cursor: Int64?) async throws -> Page<WebhookDelivery> {
        let rows = try await database.pool.query("""
            SELECT d.delivery_id, d.org_id, d.event_id, e.type, d.status, d.attempts, d.next_attempt_at, d.delivered_at, d.created_at, d.seq
            FROM webhook_deliveries d JOIN events e ON e.org_id = d.org_id AND e.event_id = d.event_id
            WHERE d.endpoint_id = \(endpointID) AND (\(cursor)::bigint IS NULL OR d.seq < \(cursor))
            ORDER BY d.seq DESC LIMIT \(limit + 1)
            """, logger: database.logger).collect()
        var headers: [(WebhookDelivery, Int64)] = []
        for row in rows {
            let c = row.makeRandomAccess()
            headers.append((WebhookDelivery(
                id: try c[0].decode(UUID.self), orgID: try c[1].decode(UUID.self), eventID: try c[2].decode(UUID.self),
                eventType: try c[3].decode(String.self), status: try c[4].decode(String.self), attempts: try c[5].decode(Int.self),
                nextAttemptAt: try c[6].decode(Instant?.self), deliveredAt: try c[7].decode(Instant?.self),
                createdAt: try c[8].decode(Instant.self), attemptLog: []
            ), try c[9].decode(Int64.self)))
        }
        let more = headers.count > limit
        if more { headers.removeLast() }
        var attempts: [UUID: [WebhookDelivery.Attempt]] = [:]
        if !headers.isEmpty {
            let attemptRows = try await database.pool.query("""
                SELECT delivery_id, attempt, attempted_at, status_code, error, duration_ms FROM webhook_attempts
                WHERE delivery_id = ANY(\(headers.map(\.0.id))) ORDER BY delivery_id, attempt
                """, logger: database.logger).collect()
            for row in attemptRows {
                let (id, number, at, code, error, duration) = try row.decode((UUID, Int, Instant, Int?, String?, Int).self)
                attempts[id, default: []].append(.init(number: number, at: at, statusCode: code, error: error, durationMilliseconds: duration))
            }
        }
        let items = headers.map { delivery, _ in
            WebhookDelivery(id: delivery.id, orgID: delivery.orgID, eventID: delivery.eventID, eventType: delivery.eventType, status: delivery.status,
                            attempts: delivery.attempts, nextAttemptAt: delivery.nextAttemptAt, deliveredAt: delivery.deliveredAt,
                            createdAt: delivery.createdAt, attemptLog: attempts[delivery.id] ?? [])
        }
        return Page(items: items, nextCursor: more ? headers.last.map { String($0.1) } : nil)
    }

    /// Sends a delivery again (whatever its state): it is due at once.
    public func resend(endpointID: UUID, deliveryID: UUID) async throws -> Bool {
        let rows = try await database.pool.query("""
            UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = NULL, locked_until = NULL
            WHERE endpoint_id = \(endpointID) AND delivery_id = \(deliveryID) RETURNING 1
            """, logger: database.logger).collect()
        return !rows.isEmpty
    }

    /// Claims up to `limit` due deliveries for `leaseSeconds`: other workers skip them, and a
    /// worker that dies leaves them due again when the lease lapses (at least once).
    public func claimDue(at now: Instant, limit: Int) async throws -> [DueDelivery] {
        let lease = now.adding(seconds: Self.leaseSeconds)
        let claimed = try await database.pool.query("""
            WITH due AS (
                SELECT org_id, delivery_id FROM webhook_deliveries
                WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= \(now))
                  AND (locked_until IS NULL OR locked_until <= \(now))
                ORDER BY next_attempt_at NULLS FIRST, seq LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE webhook_deliveries d SET locked_until = \(lease), attempts = d.attempts + 1,
                   first_attempt_at = coalesce(d.first_attempt_at, \(now))
            FROM due WHERE d.org_id = due.org_id AND d.delivery_id = due.delivery_id
            RETURNING d.org_id, d.delivery_id
            """, logger: database.logger).collect()
        guard !claimed.isEmpty else { return [] }
        let ids = try claimed.map { try $0.decode((UUID, UUID).self).1 }
        let rows = try await database.pool.query("""
            SELECT d.org_id, d.delivery_id, d.event_id, w.url, w.secret, d.attempts, d.first_attempt_at, e.type, e.created_at, e.data::text,
                   w.private_allowed
            FROM webhook_deliveries d
            JOIN webhook_endpoints w ON w.endpoint_id = d.endpoint_id
            JOIN events e ON e.org_id = d.org_id AND e.event_id = d.event_id
            WHERE d.delivery_id = ANY(\(ids))
            """, logger: database.logger).collect()
        return try rows.map { row in
            let c = row.makeRandomAccess()
            let orgID = try c[0].decode(UUID.self)
            let eventID = try c[2].decode(UUID.self)
            let data = (try? JSONParser.parse(Array(try c[9].decode(String.self).utf8))) ?? .object([])
            let body = JSONValue.object([
                ("id", .string(eventID.idString)), ("type", .string(try c[7].decode(String.self))),
                ("created_at", .string(try c[8].decode(Instant.self).rfc3339)), ("org_id", .string(orgID.idString)), ("data", data),
            ]).serialized()
            return DueDelivery(orgID: orgID, deliveryID: try c[1].decode(UUID.self), eventID: eventID, url: try c[3].decode(String.self),
                               secret: try c[4].decode(String.self), attempt: try c[5].decode(Int.self),
                               firstAttemptAt: try c[6].decode(Instant.self), body: body, privateAllowed: try c[10].decode(Bool.self))
        }
    }

    /// Records one attempt and what follows: delivered, due again at `nextAttemptAt`, or given up.
    public func record(_ delivery: DueDelivery, at now: Instant, statusCode: Int?, error: String?, durationMilliseconds: Int,
                       delivered: Bool, nextAttemptAt: Instant?) async throws {
        let status = delivered ? "delivered" : (nextAttemptAt == nil ? "failed" : "pending")
        try await database.pool.query("""
            WITH attempt AS (
                INSERT INTO webhook_attempts (org_id, delivery_id, attempt, attempted_at, status_code, error, duration_ms)
                VALUES (\(delivery.orgID), \(delivery.deliveryID), \(delivery.attempt), \(now), \(statusCode), \(error), \(durationMilliseconds))
                ON CONFLICT DO NOTHING
            )
            UPDATE webhook_deliveries SET status = \(status), next_attempt_at = \(nextAttemptAt), locked_until = NULL,
                   delivered_at = \(delivered ? now : nil)
            WHERE org_id = \(delivery.orgID) AND delivery_id = \(delivery.deliveryID)
            """, logger: database.logger)
    }

    /// An organisation's events, newest first.
    public func events(orgID: UUID, type: String?, limit: Int, before cursor: Int64?) async throws -> Page<(id: UUID, type: String, createdAt: Instant, data: String)> {
        let rows = try await database.pool.query("""
            SELECT event_id, type, created_at, data::text, seq FROM events
            WHERE org_id = \(orgID) AND (\(type)::text IS NULL OR type = \(type)) AND (\(cursor)::bigint IS NULL OR seq < \(cursor))
              AND seq > 0   -- lets the cursor index serve (see sql/0007)
            ORDER BY seq DESC LIMIT \(limit + 1)
            """, logger: database.logger).collect()
        var items: [(id: UUID, type: String, createdAt: Instant, data: String, seq: Int64)] = try rows.map { row in
            let (id, type, created, data, seq) = try row.decode((UUID, String, Instant, String, Int64).self)
            return (id, type, created, data, seq)
        }
        let more = items.count > limit
        if more { items.removeLast() }
        return Page(items: items.map { ($0.id, $0.type, $0.createdAt, $0.data) }, nextCursor: more ? items.last.map { String($0.seq) } : nil)
    }
}
