import Logging
import PostgresNIO
import TallyCore

/// Every store over one database: what services and jobs are given.
public struct Stores: Sendable {
    public let database: Database
    public let orgs: OrgStore
    public let keys: APIKeyStore
    public let grants: GrantStore
    public let consumption: ConsumptionStore
    public let reversals: ReversalStore
    public let reservations: ReservationStore
    public let ledger: LedgerQueries
    public let verifier: LedgerVerifier
    public let catalog: CatalogStore
    public let subscriptions: SubscriptionStore
    public let invoices: InvoiceStore
    public let expiry: ExpiryStore
    public let testClocks: TestClockStore
    public let purchases: PurchaseStore
    public let webhooks: WebhookStore
    public let reports: ReportStore
    public let retention: RetentionStore
    public let portalSessions: PortalSessionStore

    public init(database: Database, spendTransactions: Int? = nil) {
        self.database = database
        self.orgs = OrgStore(database: database)
        self.keys = APIKeyStore(database: database)
        self.grants = GrantStore(database: database)
        self.reservations = ReservationStore(database: database)
        // A few spend transactions at a time, each carrying every organisation waiting: more at
        // once would only spread the same spends over more commits (see SpendBatcher).
        let spendTransactions = spendTransactions ?? Self.defaultSpendTransactions(connections: database.pool.settings.maximumConnections)
        self.consumption = ConsumptionStore(database: database, reservations: reservations, transactionsMaximum: spendTransactions)
        self.reversals = ReversalStore(database: database)
        self.ledger = LedgerQueries(database: database)
        self.verifier = LedgerVerifier(database: database)
        self.catalog = CatalogStore(database: database)
        self.subscriptions = SubscriptionStore(database: database, catalog: catalog)
        self.invoices = InvoiceStore(database: database)
        self.expiry = ExpiryStore(database: database)
        self.testClocks = TestClockStore(database: database)
        self.purchases = PurchaseStore(database: database, catalog: catalog, subscriptions: subscriptions)
        self.webhooks = WebhookStore(database: database)
        self.reports = ReportStore(database: database)
        self.retention = RetentionStore(database: database)
        self.portalSessions = PortalSessionStore(database: database)
    }

    /// One per 24 of the pool's connections, 2 to 8. With 48 connections under 64 concurrent
    /// clients over 10,000 organisations (`make bench-scenario`, runs alternated on one machine):
    /// 2 at once 3,441-4,028 spends/s, p99 28-33 ms, PostgreSQL 176-208 us per spend; 3 at once
    /// 3,505-3,692/s; 4 at once 3,081-3,797/s, PostgreSQL 214-268 us: fewer, fuller transactions
    /// cost the database less per spend. (1 was as fast, but then one slow transaction, an
    /// organisation whose buckets another operation holds, would stall every organisation.)
    public static func defaultSpendTransactions(connections: Int) -> Int { max(2, min(8, connections / 24)) }
}
