import Foundation
import Logging
import PostgresNIO
import TallyCore

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

    public func create(_ new: NewOrganisation, at now: Instant) async throws -> Organisation {
        try Organisation.validateTimezone(new.timezone)
        let org = Organisation(id: .v7(at: now), name: new.name, externalID: new.externalID,
                               timezone: new.timezone, testClockID: new.testClockID, createdAt: now)
        do {
            try await database.client.query("""
                INSERT INTO orgs (org_id, name, external_id, timezone, created_at)
                VALUES (\(org.id), \(org.name), \(org.externalID), \(org.timezone), \(org.createdAt))
                """, logger: database.logger)
        } catch let error as PSQLError where error.sqlState == SQLState.uniqueViolation {
            throw TallyError.conflict("external_id_taken", "Another organisation already has external_id '\(new.externalID ?? "")'.")
        }
        return org
    }

    public func find(_ id: UUID) async throws -> Organisation? {
        let rows = try await database.client.query("""
            SELECT org_id, name, external_id, timezone, created_at FROM orgs WHERE org_id = \(id)
            """, logger: database.logger)
        for try await (id, name, externalID, timezone, createdAt) in rows.decode((UUID, String, String?, String, Instant).self) {
            return Organisation(id: id, name: name, externalID: externalID, timezone: timezone, testClockID: nil, createdAt: createdAt)
        }
        return nil
    }
}
