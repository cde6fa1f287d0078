import Foundation
import Logging
import NIOCore
import PostgresNIO
import TallyCore

/// The hot path of spending as prepared statements: fixed SQL text, planned once per connection.
/// (Unprepared, parsing and planning these took three times as long as running them.)

/// Claims the batch's idempotency keys (in key order) and then locks the organisation's spendable
/// buckets in burn-down order: one round trip. A claim that conflicts waits for the transaction
/// holding the key and comes back unclaimed.
struct ClaimAndLockStatement: PostgresPreparedStatement {
    static let sql = """
        WITH claim AS (
            INSERT INTO idempotency_keys (org_id, idempotency_key, request_hash, created_at)
            SELECT $1::uuid, k, h, $2::timestamptz FROM unnest($3::text[], $4::bytea[]) AS c (k, h) ORDER BY k
            ON CONFLICT DO NOTHING RETURNING idempotency_key
        ), claimed AS (SELECT coalesce(array_agg(idempotency_key), '{}') AS keys FROM claim)
        SELECT claimed.keys, b.* FROM claimed LEFT JOIN LATERAL (
            SELECT \(BucketQueries.columns) FROM credit_buckets
            WHERE org_id = $1::uuid AND remaining > 0 AND effective_at <= $2::timestamptz AND (expires_at IS NULL OR expires_at > $2::timestamptz)
            ORDER BY \(BucketQueries.burnOrder)
            LIMIT \(BucketQueries.spendableBucketsMaximum)
            FOR UPDATE
        ) AS b ON true
        """
    typealias Row = PostgresRow

    let orgID: UUID
    let now: Instant
    let keys: [String]
    let hashes: [ByteBuffer]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 4)
        bindings.append(orgID)
        bindings.append(now)
        bindings.append(keys)
        bindings.append(hashes)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// Everything a batch of plain spends writes, in one statement: the usage entries, their
/// postings, the buckets' new remainders, the stored answers, the month's rollup and the
/// period's counters with the alert thresholds they cross (and those alerts' events).
struct SpendWriteStatement: PostgresPreparedStatement {
    static let sql = """
        WITH new_entries AS (
            INSERT INTO ledger_entries (org_id, entry_id, type, credits, overage_credits, operation, quantity, params, event_id,
                                        event_name, actor, metadata, invoice_id, created_at, api_key_id, api_key_prefix)
            SELECT $1::uuid, e.id, 'usage', e.credits, e.overage, e.operation, e.quantity, e.params::jsonb, e.event_id, e.event_name,
                   e.actor, e.metadata::jsonb, e.invoice_id, $2::timestamptz, e.key_id, e.key_prefix
            FROM unnest($3::uuid[], $4::numeric[], $5::numeric[], $6::text[], $7::int[], $8::text[], $9::text[], $10::text[],
                        $11::text[], $12::text[], $13::uuid[], $30::uuid[], $31::text[])
                 AS e (id, credits, overage, operation, quantity, params, event_id, event_name, actor, metadata, invoice_id, key_id, key_prefix)
        ), moved AS (
            UPDATE credit_buckets AS b SET remaining = b.remaining + d.delta
            FROM unnest($14::uuid[], $15::numeric[]) AS d (bucket_id, delta)
            WHERE b.org_id = $1::uuid AND b.bucket_id = d.bucket_id
            RETURNING b.bucket_id
        ), new_postings AS (
            INSERT INTO ledger_postings (org_id, entry_id, bucket_id, credits)
            SELECT $1::uuid, p.entry_id, p.bucket_id, p.credits FROM unnest($16::uuid[], $17::uuid[], $18::numeric[]) AS p (entry_id, bucket_id, credits)
        ), answers AS (
            UPDATE idempotency_keys AS i SET status_code = a.status, response_body = a.body
            FROM unnest($19::text[], $20::int[], $21::bytea[]) AS a (key, status, body)
            WHERE i.org_id = $1::uuid AND i.idempotency_key = a.key
        ), month AS (
            INSERT INTO usage_months (org_id, month, credits_used, transactions)
            SELECT $1::uuid, $22::date, $23::numeric, $24::bigint WHERE $24::bigint > 0
            ON CONFLICT (org_id, month) DO UPDATE SET credits_used = usage_months.credits_used + EXCLUDED.credits_used,
                                                      transactions = usage_months.transactions + EXCLUDED.transactions
        ), counted AS (
            UPDATE usage_periods SET used_credits = used_credits + $23::numeric, overage_credits = overage_credits + $25::numeric
            WHERE org_id = $1::uuid AND period_start = $26::timestamptz AND $24::bigint > 0
            RETURNING allocation, used_credits
        ), crossed AS (
            SELECT t.percent, gen_random_uuid() AS event_id, c.used_credits, c.allocation
            FROM counted c CROSS JOIN unnest($27::integer[]) AS t (percent)
            WHERE c.allocation > 0 AND (c.used_credits - $23::numeric) * 100 < c.allocation * t.percent AND c.used_credits * 100 >= c.allocation * t.percent
        ), fired AS (
            INSERT INTO alert_firings (org_id, period_start, percent, event_id, fired_at)
            SELECT $1::uuid, $26::timestamptz, percent, event_id, $2::timestamptz FROM crossed
            ON CONFLICT DO NOTHING RETURNING percent, event_id
        ), alert_events AS (
            INSERT INTO events (org_id, event_id, type, data, created_at)
            SELECT $1::uuid, f.event_id, 'usage.threshold_reached',
                   jsonb_build_object('percent', f.percent, 'used', c.used_credits::text, 'allocation', c.allocation::text,
                                      'period_start', $28::text, 'period_end', $29::text), $2::timestamptz
            FROM fired f JOIN crossed c ON c.percent = f.percent
        ), alert_deliveries AS (
            INSERT INTO webhook_deliveries (\(EventOutbox.deliveryColumns))
            SELECT $1::uuid, gen_random_uuid(), f.event_id, e.endpoint_id, 'pending', $2::timestamptz
            FROM fired f JOIN webhook_endpoints e
              ON e.active AND (e.org_id = $1::uuid OR e.org_id IS NULL) AND ('usage.threshold_reached' = ANY(e.events) OR '*' = ANY(e.events))
        )
        SELECT (SELECT count(*) FROM moved)::int
        """
    typealias Row = Int

    struct Entry {
        let id: UUID
        let credits: Credits
        let overage: Credits
        let usage: UsageDetails
        let invoiceID: UUID?
    }

    let orgID: UUID
    let now: Instant
    var entries: [Entry] = []
    var postings: [(entryID: UUID, bucketID: UUID, credits: Credits)] = []
    var moved: [(bucketID: UUID, delta: Credits)] = []
    var answers: [(key: String, status: Int, body: [UInt8])] = []
    var month: CalendarMonth
    var credits = Credits.zero
    var transactions = 0
    var overage = Credits.zero
    var period: LivePeriod?
    var thresholds: [Int] = []

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 31)
        b.append(orgID)
        b.append(now)
        b.append(entries.map(\.id))
        b.append(entries.map(\.credits))
        b.append(entries.map(\.overage))
        b.append(NullableArray(entries.map(\.usage.operation)))
        b.append(NullableArray(entries.map { $0.usage.quantity }))
        b.append(NullableArray(entries.map(\.usage.params)))
        b.append(NullableArray(entries.map(\.usage.eventID)))
        b.append(NullableArray(entries.map(\.usage.eventName)))
        b.append(entries.map(\.usage.actor))
        b.append(NullableArray(entries.map(\.usage.metadata)))
        b.append(NullableArray(entries.map(\.invoiceID)))
        b.append(moved.map(\.bucketID))
        b.append(moved.map(\.delta))
        b.append(postings.map(\.entryID))
        b.append(postings.map(\.bucketID))
        b.append(postings.map(\.credits))
        b.append(answers.map(\.key))
        b.append(answers.map(\.status))
        b.append(answers.map { ByteBuffer(bytes: $0.body) })
        b.append(month)
        b.append(credits)
        b.append(transactions)
        b.append(overage)
        b.append(period?.start)
        b.append(thresholds)
        b.append(period?.start.rfc3339)
        b.append(period?.end.rfc3339)
        b.append(NullableArray(entries.map { $0.usage.key?.id }))
        b.append(NullableArray(entries.map { $0.usage.key?.prefix }))
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}
