import Foundation
import NIOCore
import PostgresNIO
import TallyCore

/// The one writer of ledger rows. Every movement of credits (a batch of spends, a batch of
/// renewals, any other use case's `LedgerWrite`) reaches the database through these `WITH` parts:
/// the entries, the new buckets, each existing bucket moved by exactly the sum of its postings,
/// and the postings. An entry's credits and a new bucket's remainder are the sums of their
/// postings, computed here and nowhere else: what keeps "remaining = grant + postings" true.
/// Rows carry their organisation, so one statement may write many organisations' movements; the
/// parts are fixed text over array parameters, so prepared statements embed them.
struct LedgerRows {
    struct Entry {
        let orgID: UUID
        let id: UUID
        let type: LedgerEntryType
        /// Credits no bucket covered (billed as overage); the entry shows them besides its postings.
        var overage: Credits = .zero
        var usage = UsageDetails()
        var reason: String? = nil
        var relatedEntryID: UUID? = nil
        var reservationID: UUID? = nil
        /// The draft overage invoice a spend's overage went onto.
        var invoiceID: UUID? = nil
        let at: Instant
        /// The key the change was made with (nil for what jobs do on their own).
        var key: KeyStamp? = nil
    }

    struct NewBucket {
        let orgID: UUID
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

    struct Posting {
        let orgID: UUID
        let entryID: UUID
        let bucketID: UUID
        let credits: Credits
    }

    var entries: [Entry] = []
    var newBuckets: [NewBucket] = []
    var postings: [Posting] = []

    var isEmpty: Bool { entries.isEmpty && newBuckets.isEmpty && postings.isEmpty }

    /// Existing buckets move by the sum of their postings (a new bucket starts at its own), in
    /// the order they were first posted to; a bucket whose postings cancel out does not move.
    var moves: [(orgID: UUID, bucketID: UUID, delta: Credits)] {
        let created = Set(newBuckets.map(\.id))
        var order: [(UUID, UUID)] = []
        var deltas: [UUID: Credits] = [:]
        for posting in postings where !created.contains(posting.bucketID) {
            if deltas[posting.bucketID] == nil { order.append((posting.orgID, posting.bucketID)) }
            deltas[posting.bucketID, default: .zero] += posting.credits
        }
        return order.compactMap { orgID, bucketID in
            let delta = deltas[bucketID]!
            return delta.isZero ? nil : (orgID, bucketID, delta)
        }
    }

    static let parameterCount = 38

    /// The parts `new_entries`, `new_buckets`, `moved` (returning each moved bucket's id: the
    /// statement checks that every planned move found its bucket) and `new_postings`, with their
    /// parameters numbered from `first`, in the order `append(to:)` binds them.
    static func sql(first: Int) -> String {
        let p = (0..<parameterCount).map { "$\(first + $0)" }
        return """
            new_entries AS (
                INSERT INTO ledger_entries (org_id, entry_id, type, credits, overage_credits, operation, quantity, params, event_id,
                                            event_name, actor, metadata, reason, related_entry_id, reservation_id, invoice_id, created_at,
                                            api_key_id, api_key_prefix)
                SELECT e.org_id, e.id, e.type, e.credits, e.overage, e.operation, e.quantity, e.params::jsonb, e.event_id, e.event_name,
                       e.actor, e.metadata::jsonb, e.reason, e.related, e.reservation, e.invoice, e.at, e.key_id, e.key_prefix
                FROM unnest(\(p[0])::uuid[], \(p[1])::uuid[], \(p[2])::text[], \(p[3])::numeric[], \(p[4])::numeric[], \(p[5])::text[],
                            \(p[6])::int[], \(p[7])::text[], \(p[8])::text[], \(p[9])::text[], \(p[10])::text[], \(p[11])::text[],
                            \(p[12])::text[], \(p[13])::uuid[], \(p[14])::uuid[], \(p[15])::uuid[], \(p[16])::timestamptz[],
                            \(p[17])::uuid[], \(p[18])::text[])
                     AS e (org_id, id, type, credits, overage, operation, quantity, params, event_id, event_name, actor, metadata, reason,
                           related, reservation, invoice, at, key_id, key_prefix)
            ), new_buckets AS (
                INSERT INTO credit_buckets (org_id, bucket_id, source, granted, remaining, priority, effective_at, expires_at, granted_at,
                                            grant_entry_id, subscription_id, period_start)
                SELECT * FROM unnest(\(p[19])::uuid[], \(p[20])::uuid[], \(p[21])::text[], \(p[22])::numeric[], \(p[23])::numeric[],
                                     \(p[24])::integer[], \(p[25])::timestamptz[], \(p[26])::timestamptz[], \(p[27])::timestamptz[],
                                     \(p[28])::uuid[], \(p[29])::uuid[], \(p[30])::timestamptz[])
            ), moved AS (
                UPDATE credit_buckets AS b SET remaining = b.remaining + d.delta
                FROM unnest(\(p[31])::uuid[], \(p[32])::uuid[], \(p[33])::numeric[]) AS d (org_id, bucket_id, delta)
                WHERE b.org_id = d.org_id AND b.bucket_id = d.bucket_id
                RETURNING b.bucket_id
            ), new_postings AS (
                INSERT INTO ledger_postings (org_id, entry_id, bucket_id, credits)
                SELECT * FROM unnest(\(p[34])::uuid[], \(p[35])::uuid[], \(p[36])::uuid[], \(p[37])::numeric[])
            )
            """
    }

    /// Every posting belongs to an entry of this write, of the same organisation, and a new
    /// bucket's grant entry is one of them: what the ledger's foreign keys checked row by row
    /// (sql/0015). A posting's existing bucket is proven by the statement (every planned move
    /// finds its bucket, `LedgerWriteMismatch`).
    func checkReferences() throws {
        var entryOrgs: [UUID: UUID] = [:]
        for entry in entries { entryOrgs[entry.id] = entry.orgID }
        var bucketOrgs: [UUID: UUID] = [:]
        for bucket in newBuckets {
            bucketOrgs[bucket.id] = bucket.orgID
            guard entryOrgs[bucket.grantEntryID] == bucket.orgID else { throw LedgerRowsReferenceError(what: "bucket \(bucket.id.idString)") }
        }
        for posting in postings {
            guard entryOrgs[posting.entryID] == posting.orgID, bucketOrgs[posting.bucketID].map({ $0 == posting.orgID }) ?? true else {
                throw LedgerRowsReferenceError(what: "posting of entry \(posting.entryID.idString) to bucket \(posting.bucketID.idString)")
            }
        }
    }

    /// Binds the rows, `parameterCount` arrays in the order of `sql(first:)`; returns how many
    /// existing buckets the statement must move. Rows whose references do not hold are refused
    /// (see `checkReferences`).
    @discardableResult
    func append(to b: inout PostgresBindings) throws -> Int {
        try checkReferences()
        var byEntry: [UUID: Credits] = [:]
        var byBucket: [UUID: Credits] = [:]
        for posting in postings {
            byEntry[posting.entryID, default: .zero] += posting.credits
            byBucket[posting.bucketID, default: .zero] += posting.credits
        }
        b.append(entries.map(\.orgID))
        b.append(entries.map(\.id))
        b.append(entries.map(\.type.rawValue))
        b.append(entries.map { byEntry[$0.id] ?? .zero })
        b.append(entries.map(\.overage))
        b.append(NullableArray(entries.map(\.usage.operation)))
        b.append(NullableArray(entries.map { $0.usage.quantity }))
        b.append(NullableArray(entries.map(\.usage.params)))
        b.append(NullableArray(entries.map(\.usage.eventID)))
        b.append(NullableArray(entries.map(\.usage.eventName)))
        b.append(entries.map(\.usage.actor))
        b.append(NullableArray(entries.map(\.usage.metadata)))
        b.append(NullableArray(entries.map(\.reason)))
        b.append(NullableArray(entries.map(\.relatedEntryID)))
        b.append(NullableArray(entries.map(\.reservationID)))
        b.append(NullableArray(entries.map(\.invoiceID)))
        b.append(entries.map(\.at))
        b.append(NullableArray(entries.map { $0.key?.id }))
        b.append(NullableArray(entries.map { $0.key?.prefix }))
        b.append(newBuckets.map(\.orgID))
        b.append(newBuckets.map(\.id))
        b.append(newBuckets.map(\.source.rawValue))
        b.append(newBuckets.map(\.credits))
        b.append(newBuckets.map { byBucket[$0.id] ?? .zero })
        b.append(newBuckets.map(\.priority))
        b.append(newBuckets.map(\.effectiveAt))
        b.append(NullableArray(newBuckets.map(\.expiresAt)))
        b.append(newBuckets.map(\.grantedAt))
        b.append(newBuckets.map(\.grantEntryID))
        b.append(NullableArray(newBuckets.map(\.subscriptionID)))
        b.append(NullableArray(newBuckets.map(\.periodStart)))
        let moves = self.moves
        b.append(moves.map(\.orgID))
        b.append(moves.map(\.bucketID))
        b.append(moves.map(\.delta))
        b.append(postings.map(\.orgID))
        b.append(postings.map(\.entryID))
        b.append(postings.map(\.bucketID))
        b.append(postings.map(\.credits))
        return moves.count
    }
}

/// Ledger rows that reference an entry the write does not make, or another organisation's: a
/// bug, refused before anything is written (its transaction rolls back).
struct LedgerRowsReferenceError: Error, CustomStringConvertible {
    let what: String
    var description: String { "the ledger write's \(what) references an entry it does not write" }
}
