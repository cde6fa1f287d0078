import Foundation
import Logging
import PostgresNIO
import TallyCore

/// Ledger movements of one use case, written in one statement: new entries, new buckets, the
/// postings, and each touched bucket's `remaining` moved by exactly the sum of its postings.
/// Building every change through here is what keeps "remaining = grant + postings" true.
struct LedgerWrite {
    struct Entry {
        let id: UUID
        let type: LedgerEntryType
        var overageCredits: Credits = .zero
        var usage: UsageDetails = UsageDetails()
        var reason: String?
        var relatedEntryID: UUID?
        var reservationID: UUID?
        /// The draft overage invoice a spend's overage went onto.
        var invoiceID: UUID?
        let createdAt: Instant
    }

    struct NewBucket {
        let id: UUID
        let source: BucketSource
        let credits: Credits
        let priority: Int
        let effectiveAt: Instant
        let expiresAt: Instant?
        let grantedAt: Instant
        let grantEntryID: UUID
        /// Plan credits (allocations and rollovers) belong to a subscription period.
        var subscriptionID: UUID? = nil
        var periodStart: Instant? = nil
    }

    let orgID: UUID
    private(set) var entries: [Entry] = []
    private(set) var newBuckets: [NewBucket] = []
    private(set) var postings: [(entryID: UUID, bucketID: UUID, credits: Credits)] = []
    /// Further statements run with the write (an idempotency record, a reservation row), as
    /// `WITH` parts of the same statement so that everything costs one round trip.
    private var extraParts: [(name: String?, body: String)] = []
    private var sql = BoundSQL()

    /// The key the request that makes this write was sent with: stamped on its entries (nil for
    /// what jobs do on their own).
    let key: KeyStamp?

    init(orgID: UUID, key: KeyStamp? = KeyStamp.current) {
        self.orgID = orgID
        self.key = key
    }

    var isEmpty: Bool { entries.isEmpty && extraParts.isEmpty }

    /// Records an entry and what it does to each bucket.
    mutating func add(_ entry: Entry, postings entryPostings: [(bucketID: UUID, credits: Credits)]) {
        entries.append(entry)
        for posting in entryPostings where !posting.credits.isZero {
            postings.append((entry.id, posting.bucketID, posting.credits))
        }
    }

    /// Creates a bucket whose grant posting belongs to `entry` (which must be added too).
    mutating func createBucket(_ bucket: NewBucket) {
        precondition(bucket.credits.isPositive, "a bucket is granted a positive amount")
        newBuckets.append(bucket)
        postings.append((bucket.grantEntryID, bucket.id, bucket.credits))
    }

    /// A bucket grant as one entry: the common case of grants, purchases, allocations.
    @discardableResult
    mutating func grant(_ source: BucketSource, credits: Credits, priority: Int? = nil, effectiveAt: Instant? = nil,
                        expiresAt: Instant?, at now: Instant, type: LedgerEntryType? = nil, reason: String? = nil,
                        subscriptionID: UUID? = nil, periodStart: Instant? = nil) -> (bucketID: UUID, entryID: UUID) {
        let entryID = UUID.v7(at: now)
        let bucketID = UUID.v7(at: now)
        add(Entry(id: entryID, type: type ?? LedgerEntryType(grantOf: source), reason: reason, createdAt: now), postings: [])
        createBucket(NewBucket(id: bucketID, source: source, credits: credits, priority: priority ?? source.defaultPriority,
                               effectiveAt: effectiveAt ?? now, expiresAt: expiresAt, grantedAt: now, grantEntryID: entryID,
                               subscriptionID: subscriptionID, periodStart: periodStart))
        return (bucketID, entryID)
    }

    /// Adds a part to the statement: `build` binds its values and returns a `WITH` body.
    /// (Placeholders are numbered in binding order, wherever they stand in the text.)
    mutating func with(name: String? = nil, _ build: (inout BoundSQL) -> String) {
        extraParts.append((name, build(&sql)))
    }

    /// The sum of an entry's postings: what its `credits` column holds.
    func netCredits(of entryID: UUID) -> Credits {
        postings.filter { $0.entryID == entryID }.map(\.credits).sum()
    }

    func execute(on connection: DatabaseConnection, logger: Logger) async throws {
        guard !isEmpty else { return }
        var sql = self.sql
        var parts: [String] = []
        let org = sql.bind(orgID)

        if !entries.isEmpty {
            let rows = entries.map { entry -> String in
                let values = [
                    org, sql.bind(entry.id), sql.bind(entry.type.rawValue), sql.bind(netCredits(of: entry.id)),
                    sql.bind(entry.overageCredits), sql.bind(entry.usage.operation), sql.bind(entry.usage.quantity),
                    sql.bind(entry.usage.params) + "::jsonb", sql.bind(entry.usage.eventID), sql.bind(entry.usage.eventName),
                    sql.bind(entry.usage.actor), sql.bind(entry.usage.metadata) + "::jsonb", sql.bind(entry.reason),
                    sql.bind(entry.relatedEntryID), sql.bind(entry.reservationID), sql.bind(entry.invoiceID), sql.bind(entry.createdAt),
                    sql.bind((entry.usage.key ?? key)?.id), sql.bind((entry.usage.key ?? key)?.prefix),
                ]
                return "(" + values.joined(separator: ", ") + ")"
            }
            parts.append("""
                new_entries AS (INSERT INTO ledger_entries (org_id, entry_id, type, credits, overage_credits, operation, quantity,
                    params, event_id, event_name, actor, metadata, reason, related_entry_id, reservation_id, invoice_id, created_at,
                    api_key_id, api_key_prefix)
                VALUES \(rows.joined(separator: ", ")))
                """)
        }
        let newBucketIDs = Set(newBuckets.map(\.id))
        if !newBuckets.isEmpty {
            let rows = newBuckets.map { bucket -> String in
                let remaining = postings.filter { $0.bucketID == bucket.id }.map(\.credits).sum()
                let values = [
                    org, sql.bind(bucket.id), sql.bind(bucket.source.rawValue), sql.bind(bucket.credits), sql.bind(remaining),
                    sql.bind(bucket.priority), sql.bind(bucket.effectiveAt), sql.bind(bucket.expiresAt), sql.bind(bucket.grantedAt),
                    sql.bind(bucket.grantEntryID), sql.bind(bucket.subscriptionID), sql.bind(bucket.periodStart),
                ]
                return "(" + values.joined(separator: ", ") + ")"
            }
            parts.append("""
                new_buckets AS (INSERT INTO credit_buckets (org_id, bucket_id, source, granted, remaining, priority,
                    effective_at, expires_at, granted_at, grant_entry_id, subscription_id, period_start)
                VALUES \(rows.joined(separator: ", ")))
                """)
        }
        // Existing buckets move by the sum of their postings, one UPDATE per bucket.
        var deltas: [UUID: Credits] = [:]
        var order: [UUID] = []
        for posting in postings where !newBucketIDs.contains(posting.bucketID) {
            if deltas[posting.bucketID] == nil { order.append(posting.bucketID) }
            deltas[posting.bucketID, default: .zero] += posting.credits
        }
        let moved = order.filter { !(deltas[$0]!.isZero) }
        if !moved.isEmpty {
            let rows = moved.map { "(\(sql.bind($0))::uuid, \(sql.bind(deltas[$0]!))::numeric)" }
            parts.append("""
                moved AS (UPDATE credit_buckets AS b SET remaining = b.remaining + d.delta
                    FROM (VALUES \(rows.joined(separator: ", "))) AS d (bucket_id, delta)
                    WHERE b.org_id = \(org) AND b.bucket_id = d.bucket_id
                    RETURNING b.bucket_id)
                """)
        }
        if !postings.isEmpty {
            let rows = postings.map { "(\(org), \(sql.bind($0.entryID)), \(sql.bind($0.bucketID)), \(sql.bind($0.credits)))" }
            parts.append("""
                new_postings AS (INSERT INTO ledger_postings (org_id, entry_id, bucket_id, credits)
                VALUES \(rows.joined(separator: ", ")))
                """)
        }
        for (index, part) in extraParts.enumerated() {
            parts.append("\(part.name ?? "extra_\(index)") AS (\(part.body))")
        }
        let check = moved.isEmpty ? "0" : "(SELECT count(*) FROM moved)"
        let statement = "WITH " + parts.joined(separator: ",\n") + "\nSELECT \(check)::int"
        let rows = try await connection.query(sql.query(statement), logger: logger).collect()
        let movedCount = try rows.first?.decode(Int.self) ?? 0
        // Every bucket the plan moved exists: a mismatch is a bug or a change made outside Tally,
        // never a user's situation; the transaction rolls back rather than the process trapping.
        try LedgerWriteMismatch.check(moved: movedCount, planned: moved.count)
    }
}

/// The database moved a different number of buckets than a ledger write planned: the write is
/// refused (its transaction rolls back) and logged as an internal error, never a trap.
public struct LedgerWriteMismatch: Error, CustomStringConvertible {
    public let moved: Int
    public let planned: Int

    public var description: String { "the ledger write moved \(moved) of \(planned) buckets" }

    static func check(moved: Int, planned: Int) throws {
        guard moved == planned else { throw LedgerWriteMismatch(moved: moved, planned: planned) }
    }
}
