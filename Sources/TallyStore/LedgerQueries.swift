import Foundation
import Logging
import PostgresNIO
import TallyCore

public struct Balance: Sendable, Equatable {
    /// Spendable now: unexpired, effective buckets, plus what expired holds still keep.
    public let available: Credits
    /// Held by active, unexpired reservations.
    public let reserved: Credits
    public let buckets: [CreditBucket]
    /// The live subscription period's usage, when there is one.
    public var period: PeriodUsage? = nil
}

/// Reads of the ledger: balances and entries. Nothing here locks or writes.
public struct LedgerQueries: Sendable {
    let database: Database
    /// Balance reads are served many per statement under load (see `BatchedReader`).
    let balanceReader: BatchedReader<BalanceReadRequest, OrgBalanceRead?>

    init(database: Database) {
        self.database = database
        self.balanceReader = BatchedReader { requests in
            // One time for the batch, its latest request's: no request of it asked after the read began.
            guard let wallTime = requests.map(\.wallTime).max() else { return [] }
            return try await OrgBalancesStatement.read(requests.map(\.orgID), wallTime: wallTime, on: database.pool, logger: database.logger)
        }
    }

    struct BalanceReadRequest: Sendable {
        let orgID: UUID
        let wallTime: Instant
    }

    public func balance(orgID: UUID, at now: Instant, period live: LivePeriod? = nil) async throws -> Balance {
        let rows = try await database.pool.execute(BalanceStatement(orgID: orgID, now: now, periodStart: live?.start), logger: database.logger)
        return try BalanceStatement.decode(rows.collect(), at: now, period: live)
    }

    /// The organisation's context and its balance at its own time (its test clock's, or
    /// `wallTime`), in one query: the commonest read there is. Nil when there is no such
    /// organisation.
    public func contextAndBalance(orgID: UUID, wallTime: Instant) async throws -> OrgBalanceRead? {
        try await balanceReader.read(.init(orgID: orgID, wallTime: wallTime))
    }

    public func periodUsage(orgID: UUID, period: LivePeriod) async throws -> PeriodUsage {
        let rows = try await database.pool.query("""
            SELECT allocation, used_credits, overage_credits FROM usage_periods WHERE org_id = \(orgID) AND period_start = \(period.start)
            """, logger: database.logger).collect()
        let (allocation, used, overage) = try rows.first?.decode((Credits, Credits, Credits).self) ?? (period.allocation, .zero, .zero)
        return PeriodUsage(start: period.start, end: period.end, allocation: allocation, used: used, overage: overage)
    }

    public struct EntryFilter: Sendable {
        public var types: [LedgerEntryType]?
        public var eventID: String?
        public var actor: String?
        public var from: Instant?
        public var to: Instant?

        public init(types: [LedgerEntryType]? = nil, eventID: String? = nil, actor: String? = nil, from: Instant? = nil, to: Instant? = nil) {
            self.types = types
            self.eventID = eventID
            self.actor = actor
            self.from = from
            self.to = to
        }
    }

    /// Entries newest first. The cursor is the last entry's sequence number: entries that arrive
    /// while a client pages have higher numbers, so pages never shift under it.
    public func entries(orgID: UUID, filter: EntryFilter, limit: Int, before cursor: Int64?) async throws -> Page<LedgerEntry> {
        let logger = database.logger
        let types = filter.types?.map(\.rawValue)
        let rows = try await database.pool.query("""
            SELECT entry_id, seq, type, credits, overage_credits, operation, quantity, params::text, event_id, event_name,
                   actor, metadata::text, reason, related_entry_id, reservation_id, created_at, api_key_id, api_key_prefix
            FROM ledger_entries
            WHERE org_id = \(orgID)
              AND (\(types)::text[] IS NULL OR type = ANY(\(types)::text[]))
              AND (\(filter.eventID)::text IS NULL OR event_id = \(filter.eventID))
              AND (\(filter.actor)::text IS NULL OR actor = \(filter.actor))
              AND (\(filter.from)::timestamptz IS NULL OR created_at >= \(filter.from))
              AND (\(filter.to)::timestamptz IS NULL OR created_at < \(filter.to))
              AND (\(cursor)::bigint IS NULL OR seq < \(cursor))
              AND seq > 0   -- lets the cursor index serve (see sql/0007)
            ORDER BY seq DESC
            LIMIT \(limit + 1)
            """, logger: logger).collect()
        var entries = try rows.map(Self.decodeEntry)
        let hasMore = entries.count > limit
        if hasMore { entries.removeLast() }
        let ids = entries.map(\.id)
        if !ids.isEmpty {
            var postings: [UUID: [LedgerEntry.Posting]] = [:]
            let postingRows = try await database.pool.query("""
                SELECT entry_id, bucket_id, credits FROM ledger_postings WHERE org_id = \(orgID) AND entry_id = ANY(\(ids))
                ORDER BY entry_id, bucket_id
                """, logger: logger).collect()
            for row in postingRows {
                let (entryID, bucketID, credits) = try row.decode((UUID, UUID, Credits).self)
                postings[entryID, default: []].append(.init(bucketID: bucketID, credits: credits))
            }
            for index in entries.indices { entries[index].postings = postings[entries[index].id] ?? [] }
        }
        return Page(items: entries, nextCursor: hasMore ? entries.last.map { String($0.sequence) } : nil)
    }

    static func decodeEntry(_ row: PostgresRow) throws -> LedgerEntry {
        let columns = row.makeRandomAccess()
        return LedgerEntry(
            id: try columns[0].decode(UUID.self), sequence: try columns[1].decode(Int64.self),
            type: try StoredValue.decode(LedgerEntryType.self, try columns[2].decode(String.self), column: "ledger_entries.type"),
            credits: try columns[3].decode(Credits.self), overageCredits: try columns[4].decode(Credits.self),
            operation: try columns[5].decode(String?.self), quantity: try columns[6].decode(Int?.self),
            params: try columns[7].decode(String?.self), eventID: try columns[8].decode(String?.self),
            eventName: try columns[9].decode(String?.self), actor: try columns[10].decode(String.self),
            metadata: try columns[11].decode(String?.self), reason: try columns[12].decode(String?.self),
            relatedEntryID: try columns[13].decode(UUID?.self), reservationID: try columns[14].decode(UUID?.self),
            createdAt: try columns[15].decode(Instant.self), postings: [],
            key: try columns[17].decode(String?.self).map { KeyStamp(id: try columns[16].decode(UUID?.self), prefix: $0) }
        )
    }
}

/// A balance in one prepared query: held and freed credits, the period's usage, and the
/// spendable buckets. Holds past their expiry free themselves: their credits count as available
/// even before the job has released them (when their buckets are still spendable).
struct BalanceStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.BalanceStatement"
    static let sql = body(org: "$1::uuid", now: "$2::timestamptz", periodStart: "$3::timestamptz")

    /// The balance's SQL for an organisation, a time and a period start given as SQL expressions.
    static func body(org: String, now: String, periodStart: String) -> String {
        """
        SELECT t.reserved, t.freed, t.allocation, t.used, t.overage, b.*
        FROM (
            SELECT
              (SELECT coalesce(sum(credits), 0) FROM reservations
                WHERE org_id = \(org) AND status = 'active' AND expires_at > \(now))::numeric(20,4) AS reserved,
              (SELECT coalesce(sum(-p.credits), 0)
                 FROM reservations r
                 JOIN ledger_postings p ON p.org_id = r.org_id AND p.entry_id = r.hold_entry_id
                 JOIN credit_buckets hb ON hb.org_id = p.org_id AND hb.bucket_id = p.bucket_id
                WHERE r.org_id = \(org) AND r.status = 'active' AND r.expires_at <= \(now)
                  AND hb.effective_at <= \(now) AND (hb.expires_at IS NULL OR hb.expires_at > \(now)))::numeric(20,4) AS freed,
              u.allocation, u.used_credits AS used, u.overage_credits AS overage
            FROM (SELECT 1) AS one
            LEFT JOIN usage_periods u ON u.org_id = \(org) AND u.period_start = \(periodStart)
        ) AS t
        LEFT JOIN LATERAL (
            SELECT \(BucketQueries.columns) FROM credit_buckets
            WHERE org_id = \(org) AND remaining > 0 AND effective_at <= \(now) AND (expires_at IS NULL OR expires_at > \(now))
            ORDER BY \(BucketQueries.burnOrder)
            LIMIT \(BucketQueries.spendableBucketsMaximum)
        ) AS b ON true
        """
    }

    /// The balance's columns are a row's last thirteen (after the context's, in `OrgBalancesStatement`).
    static func decode(_ rows: [PostgresRow], at now: Instant, period live: LivePeriod?) throws -> Balance {
        var reserved = Credits.zero
        var freed = Credits.zero
        var buckets: [CreditBucket] = []
        var usage: PeriodUsage?
        for row in rows {
            let c = row.makeRandomAccess()
            let base = c.count - 13
            reserved = try c[base].decode(Credits.self)
            freed = try c[base + 1].decode(Credits.self)
            if let live, let allocation = try c[base + 2].decode(Credits?.self) {
                usage = PeriodUsage(start: live.start, end: live.end, allocation: allocation, used: try c[base + 3].decode(Credits.self),
                                    overage: try c[base + 4].decode(Credits.self))
            }
            guard try c[base + 5].decode(UUID?.self) != nil else { continue }
            buckets.append(CreditBucket(
                id: try c[base + 5].decode(UUID.self),
                source: try StoredValue.decode(BucketSource.self, try c[base + 6].decode(String.self), column: "credit_buckets.source"),
                granted: try c[base + 7].decode(Credits.self), remaining: try c[base + 8].decode(Credits.self), priority: try c[base + 9].decode(Int.self),
                effectiveAt: try c[base + 10].decode(Instant.self), expiresAt: try c[base + 11].decode(Instant?.self),
                grantedAt: try c[base + 12].decode(Instant.self)
            ))
        }
        if let live, usage == nil {
            usage = PeriodUsage(start: live.start, end: live.end, allocation: live.allocation, used: .zero, overage: .zero)
        }
        var balance = Balance(available: BurnDown.available(in: buckets, at: now) + freed, reserved: reserved, buckets: buckets)
        balance.period = usage
        return balance
    }

    typealias Row = PostgresRow

    let orgID: UUID
    let now: Instant
    let periodStart: Instant?

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(orgID)
        bindings.append(now)
        bindings.append(periodStart)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// Organisations' contexts (their columns first, after the request's position, as
/// `OrgContextsStatement` reads them) and their balances at their own time, for many balance
/// reads in one statement (see `BatchedReader`): a request whose organisation does not exist has
/// no row.
struct OrgBalancesStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.OrgBalancesStatement"
    static let sql = """
        SELECT ctx.*, bal.*
        FROM (\(OrgContextsStatement.sql)) AS ctx
        LEFT JOIN LATERAL (\(BalanceStatement.body(org: "ctx.org_id", now: "coalesce(ctx.frozen_time, $3::timestamptz)",
                                                    periodStart: "ctx.current_period_start"))) AS bal ON true
        """
    typealias Row = PostgresRow

    let orgIDs: [UUID]
    let wallTime: Instant

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(orgIDs)
        bindings.append(NullableArray([String?](repeating: nil, count: orgIDs.count)))
        bindings.append(wallTime)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }

    /// Each request's context and balance (nil for an organisation that does not exist), in
    /// request order, all at `wallTime` (or each organisation's test clock).
    static func read(_ orgIDs: [UUID], wallTime: Instant, on pool: DatabasePool, logger: Logger) async throws -> [OrgBalanceRead?] {
        var rowsByPosition = [[PostgresRow]](repeating: [], count: orgIDs.count)
        for try await row in try await pool.execute(OrgBalancesStatement(orgIDs: orgIDs, wallTime: wallTime), logger: logger) {
            let position = try row.makeRandomAccess()[0].decode(Int.self)
            guard (1...orgIDs.count).contains(position) else { continue }
            rowsByPosition[position - 1].append(row)
        }
        return try rowsByPosition.map { rows in
            guard let first = rows.first else { return nil }
            let context = try OrgContextStatement.decode(first, offset: 1)
            let now = context.clockTime ?? wallTime
            return OrgBalanceRead(context: context, balance: try BalanceStatement.decode(rows, at: now, period: context.period), wallTime: wallTime)
        }
    }
}

/// An organisation's context and its balance, read together, and the wall time they were read at.
public struct OrgBalanceRead: Sendable {
    public let context: OrgContext
    public let balance: Balance
    public let wallTime: Instant
}
