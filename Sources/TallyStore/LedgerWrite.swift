import Foundation
import Logging
import PostgresNIO
import TallyCore

/// Ledger movements of one use case, written in one statement by the one ledger writer
/// (`LedgerRows`: entries, new buckets, postings, each touched bucket moved by exactly the sum of
/// its postings), with the use case's further statements as parts of the same statement.
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

    let orgID: UUID
    private(set) var entries: [Entry] = []
    private(set) var newBuckets: [LedgerRows.NewBucket] = []
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
    mutating func createBucket(_ bucket: LedgerRows.NewBucket) {
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
        createBucket(LedgerRows.NewBucket(orgID: orgID, id: bucketID, source: source, credits: credits, priority: priority ?? source.defaultPriority,
                               effectiveAt: effectiveAt ?? now, expiresAt: expiresAt, grantedAt: now, grantEntryID: entryID,
                               subscriptionID: subscriptionID, periodStart: periodStart))
        return (bucketID, entryID)
    }

    /// Adds a part to the statement: `build` binds its values and returns a `WITH` body.
    /// (Placeholders are numbered in binding order, wherever they stand in the text.)
    mutating func with(name: String? = nil, _ build: (inout BoundSQL) -> String) {
        extraParts.append((name, build(&sql)))
    }

    /// The write as the one ledger writer's rows (`LedgerRows`): entries stamped with the key of
    /// the request that makes them unless a spend carries its own.
    var rows: LedgerRows {
        var rows = LedgerRows()
        rows.entries = entries.map { entry in
            LedgerRows.Entry(orgID: orgID, id: entry.id, type: entry.type, overage: entry.overageCredits, usage: entry.usage,
                             reason: entry.reason, relatedEntryID: entry.relatedEntryID, reservationID: entry.reservationID,
                             invoiceID: entry.invoiceID, at: entry.createdAt, key: entry.usage.key ?? key)
        }
        rows.newBuckets = newBuckets
        rows.postings = postings.map { LedgerRows.Posting(orgID: orgID, entryID: $0.entryID, bucketID: $0.bucketID, credits: $0.credits) }
        return rows
    }

    func execute(on connection: DatabaseConnection, logger: Logger) async throws {
        guard !isEmpty else { return }
        var sql = self.sql
        let (ledger, planned) = try sql.bind(rows)
        var parts = [ledger]
        for (index, part) in extraParts.enumerated() {
            parts.append("\(part.name ?? "extra_\(index)") AS (\(part.body))")
        }
        let statement = "WITH " + parts.joined(separator: ",\n") + "\nSELECT (SELECT count(*) FROM moved)::int"
        let rows = try await connection.query(sql.query(statement), logger: logger).collect()
        let movedCount = try rows.first?.decode(Int.self) ?? 0
        // Every bucket the plan moved exists: a mismatch is a bug or a change made outside Tally,
        // never a user's situation; the transaction rolls back rather than the process trapping.
        try LedgerWriteMismatch.check(moved: movedCount, planned: planned)
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
