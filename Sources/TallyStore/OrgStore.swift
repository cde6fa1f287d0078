import Foundation
import Logging
import PostgresNIO
import TallyCore

/// An organisation with what every request on it needs to know about time.
public struct OrgContext: Sendable, Equatable {
    public let org: Organisation
    /// The frozen time of the organisation's test clock; nil on the real clock.
    public let clockTime: Instant?
    /// When the live subscription's period ends: at or after this, renewal is due.
    public let renewalDueAt: Instant?
}

/// Which organisations a job looks at.
public enum OrgSelection: Sendable, Equatable {
    /// Every organisation on the real clock (what the cron runs).
    case realClock
    /// The organisations of one test clock.
    case testClock(UUID)
    /// One organisation (a request catching up before it is served).
    case org(UUID)

    /// A condition on `orgs` aliased `o`, with bound values.
    func condition(_ sql: inout BoundSQL) -> String {
        switch self {
        case .realClock: "o.test_clock_id IS NULL"
        case .testClock(let id): "o.test_clock_id = \(sql.bind(id))"
        case .org(let id): "o.org_id = \(sql.bind(id))"
        }
    }
}

/// Organisations: creating and reading tenants.
public struct OrgStore: Sendable {
    let database: Database

    public init(database: Database) {
        self.database = database
    }

    public struct NewOrganisation: Sendable {
        public var name: String
        public var externalID: String?
        public var timezone: String
        public var testClockID: UUID?

        public init(name: String, externalID: String?, timezone: String, testClockID: UUID?) {
            self.name = name
            self.externalID = externalID
            self.timezone = timezone
            self.testClockID = testClockID
        }
    }

    /// Creates an organisation; one on a test clock is created at the clock's time.
    public func create(_ new: NewOrganisation, at now: Instant) async throws -> Organisation {
        try Organisation.validateTimezone(new.timezone)
        var createdAt = now
        if let clockID = new.testClockID {
            let rows = try await database.client.query("SELECT frozen_time FROM test_clocks WHERE test_clock_id = \(clockID)", logger: database.logger).collect()
            guard let row = rows.first else { throw TallyError.validation("There is no test clock \(clockID.idString).", field: "test_clock_id") }
            createdAt = try row.decode(Instant.self)
        }
        let org = Organisation(id: .v7(at: createdAt), name: new.name, externalID: new.externalID,
                               timezone: new.timezone, testClockID: new.testClockID, createdAt: createdAt)
        do {
            try await database.client.query("""
                INSERT INTO orgs (org_id, name, external_id, timezone, test_clock_id, created_at)
                VALUES (\(org.id), \(org.name), \(org.externalID), \(org.timezone), \(org.testClockID), \(org.createdAt))
                """, logger: database.logger)
        } catch let error as PSQLError where error.sqlState == SQLState.uniqueViolation {
            throw TallyError.conflict("external_id_taken", "Another organisation already has external_id '\(new.externalID ?? "")'.")
        }
        return org
    }

    public func find(_ id: UUID) async throws -> Organisation? {
        try await context(id)?.org
    }

    /// The organisation, its clock's time and when its renewal falls due, in one query.
    public func context(_ id: UUID) async throws -> OrgContext? {
        let rows = try await database.client.query("""
            SELECT o.org_id, o.name, o.external_id, o.timezone, o.test_clock_id, o.created_at, c.frozen_time, s.current_period_end
            FROM orgs o
            LEFT JOIN test_clocks c ON c.test_clock_id = o.test_clock_id
            LEFT JOIN subscriptions s ON s.org_id = o.org_id AND s.status = 'active'
            WHERE o.org_id = \(id)
            """, logger: database.logger).collect()
        guard let row = rows.first else { return nil }
        let (orgID, name, externalID, timezone, clockID, createdAt, clockTime, dueAt) =
            try row.decode((UUID, String, String?, String, UUID?, Instant, Instant?, Instant?).self)
        let org = Organisation(id: orgID, name: name, externalID: externalID, timezone: timezone, testClockID: clockID, createdAt: createdAt)
        return OrgContext(org: org, clockTime: clockTime, renewalDueAt: dueAt)
    }
}
