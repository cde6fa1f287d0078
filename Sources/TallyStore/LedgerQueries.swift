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

    public func balance(orgID: UUID, at now: Instant, period live: LivePeriod? = nil) async throws -> Balance {
        let logger = database.logger
        // Holds past their expiry free themselves: their credits count as available even before
        // the job has released them (when their buckets are still spendable).
        let totals = try await database.client.query("""
            SELECT
              (SELECT coalesce(sum(credits), 0) FROM reservations
                WHERE org_id = \(orgID) AND status = 'active' AND expires_at > \(now))::numeric(20,4),
              (SELECT coalesce(sum(-p.credits), 0)
                 FROM reservations r
                 JOIN ledger_postings p ON p.org_id = r.org_id AND p.entry_id = r.hold_entry_id
                 JOIN credit_buckets b ON b.org_id = p.org_id AND b.bucket_id = p.bucket_id
                WHERE r.org_id = \(orgID) AND r.status = 'active' AND r.expires_at <= \(now)
                  AND b.effective_at <= \(now) AND (b.expires_at IS NULL OR b.expires_at > \(now)))::numeric(20,4)
            """, logger: logger).collect()
        let (reserved, freed) = try totals[0].decode((Credits, Credits).self)
        let buckets = try await BucketQueries.spendable(orgID: orgID, at: now, on: database.client, logger: logger)
        var balance = Balance(available: BurnDown.available(in: buckets, at: now) + freed, reserved: reserved, buckets: buckets)
        if let live {
            balance.period = try await periodUsage(orgID: orgID, period: live)
        }
        return balance
    }

    public func periodUsage(orgID: UUID, period: LivePeriod) async throws -> PeriodUsage {
        let rows = try await database.client.query("""
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
        let rows = try await database.client.query("""
            SELECT entry_id, seq, type, credits, overage_credits, operation, quantity, params::text, event_id, event_name,
                   actor, metadata::text, reason, related_entry_id, reservation_id, created_at
            FROM ledger_entries
            WHERE org_id = \(orgID)
              AND (\(types)::text[] IS NULL OR type = ANY(\(types)::text[]))
              AND (\(filter.eventID)::text IS NULL OR event_id = \(filter.eventID))
              AND (\(filter.actor)::text IS NULL OR actor = \(filter.actor))
              AND (\(filter.from)::timestamptz IS NULL OR created_at >= \(filter.from))
              AND (\(filter.to)::timestamptz IS NULL OR created_at < \(filter.to))
              AND (\(cursor)::bigint IS NULL OR seq < \(cursor))
            ORDER BY seq DESC
            LIMIT \(limit + 1)
            """, logger: logger).collect()
        var entries = try rows.map(Self.decodeEntry)
        let hasMore = entries.count > limit
        if hasMore { entries.removeLast() }
        let ids = entries.map(\.id)
        if !ids.isEmpty {
            var postings: [UUID: [LedgerEntry.Posting]] = [:]
            let postingRows = try await database.client.query("""
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
            type: LedgerEntryType(rawValue: try columns[2].decode(String.self)) ?? .usage,
            credits: try columns[3].decode(Credits.self), overageCredits: try columns[4].decode(Credits.self),
            operation: try columns[5].decode(String?.self), quantity: try columns[6].decode(Int?.self),
            params: try columns[7].decode(String?.self), eventID: try columns[8].decode(String?.self),
            eventName: try columns[9].decode(String?.self), actor: try columns[10].decode(String.self),
            metadata: try columns[11].decode(String?.self), reason: try columns[12].decode(String?.self),
            relatedEntryID: try columns[13].decode(UUID?.self), reservationID: try columns[14].decode(UUID?.self),
            createdAt: try columns[15].decode(Instant.self), postings: []
        )
    }
}
