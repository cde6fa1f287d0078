import Logging
import PostgresNIO
import TallyCore

/// Every store over one database: what services and jobs are given.
public struct Stores: Sendable {
    public let database: Database
    public let orgs: OrgStore
    public let keys: APIKeyStore

    public init(database: Database) {
        self.database = database
        self.orgs = OrgStore(database: database)
        self.keys = APIKeyStore(database: database)
    }
}
