import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// The events outbox: an event is written in the same statement as the change that causes it,
/// together with one pending delivery per webhook endpoint that wants it (the organisation's own
/// and the platform's).
enum EventOutbox {
    static let deliveryColumns = "org_id, delivery_id, event_id, endpoint_id, status, created_at"

    /// The `WITH` parts that insert the event and its deliveries.
    static func parts(_ type: EventType, data: JSONValue, orgID: UUID, at time: Instant, sql: inout BoundSQL) -> [String] {
        let org = sql.bind(orgID)
        let event = sql.bind(UUID.v7(at: time))
        let kind = sql.bind(type.rawValue)
        let created = sql.bind(time)
        return [
            "INSERT INTO events (org_id, event_id, type, data, created_at) VALUES (\(org), \(event), \(kind), \(sql.bind(text(data)))::jsonb, \(created))",
            """
            INSERT INTO webhook_deliveries (\(deliveryColumns))
            SELECT \(org), gen_random_uuid(), \(event), e.endpoint_id, 'pending', \(created) FROM webhook_endpoints e
            WHERE e.active AND (e.org_id = \(org) OR e.org_id IS NULL) AND (\(kind) = ANY(e.events) OR '*' = ANY(e.events))
            """,
        ]
    }

    /// Records an event on its own (when no ledger write goes with it).
    static func emit(_ type: EventType, data: JSONValue, orgID: UUID, at time: Instant, on connection: DatabaseConnection, logger: Logger) async throws {
        var sql = BoundSQL()
        let parts = parts(type, data: data, orgID: orgID, at: time, sql: &sql)
        let statement = "WITH " + parts.enumerated().map { "e\($0.offset) AS (\($0.element))" }.joined(separator: ", ") + " SELECT 1"
        try await connection.query(sql.query(statement), logger: logger)
    }

    static func text(_ value: JSONValue) -> String { String(decoding: value.serialized(), as: UTF8.self) }
}

extension LedgerWrite {
    /// Records an event with the write, in the same statement.
    mutating func emit(_ type: EventType, data: JSONValue, at time: Instant) {
        var parts: [String] = []
        let orgID = self.orgID
        with { sql in
            parts = EventOutbox.parts(type, data: data, orgID: orgID, at: time, sql: &sql)
            return parts[0]
        }
        let deliveries = parts[1]
        with { _ in deliveries }
    }
}

/// JSON members for event data.
extension JSONValue {
    static func text(_ value: (any CustomStringConvertible)?) -> JSONValue { value.map { .string($0.description) } ?? .null }
    static func id(_ value: UUID?) -> JSONValue { value.map { .string($0.idString) } ?? .null }
    static func money(_ value: Money?) -> JSONValue {
        value.map { .object([("amount", .string($0.amountText)), ("currency", .string($0.currency.code))]) } ?? .null
    }
}
