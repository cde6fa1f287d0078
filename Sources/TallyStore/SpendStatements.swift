import Foundation
import Logging
import NIOCore
import PostgresNIO
import TallyCore

/// The hot path of spending as prepared statements: fixed SQL text, planned once per connection.
/// (Unprepared, parsing and planning these took three times as long as running them.) Both carry
/// the spends of several organisations at once, as parallel arrays with an `org_id` per row: one
/// transaction commits the queued spends of every organisation it holds (see `SpendBatcher`).

/// Claims the transaction's idempotency keys (in the order given: organisation, then key) and
/// then locks each organisation's spendable buckets, organisation by organisation in the order
/// given, each in burn-down order: one round trip. A claim that conflicts waits for the
/// transaction holding the key and comes back unclaimed. Every claim is made before any bucket
/// is locked (the buckets' subquery reads the claims), so a transaction never waits for a key
/// while holding buckets. Each organisation's rows also bring its context's current fingerprint
/// (`OrgContextFingerprint`), which the spends' own are checked against.
struct ClaimAndLockStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.ClaimAndLockStatement"
    static let sql = GenericPlan.arraysHidden("""
        WITH claim AS (
            INSERT INTO idempotency_keys (org_id, idempotency_key, request_hash, created_at)
            SELECT c.org_id, c.k, c.h, c.at
            FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::timestamptz[]) WITH ORDINALITY AS c (org_id, k, h, at, n) ORDER BY c.n
            ON CONFLICT DO NOTHING RETURNING org_id, idempotency_key
        ), claimed AS (
            SELECT coalesce(array_agg(org_id), '{}') AS orgs, coalesce(array_agg(idempotency_key), '{}') AS keys FROM claim
        )
        SELECT claimed.orgs, claimed.keys, o.org_id, b.*, f.fingerprint
        FROM claimed CROSS JOIN unnest($5::uuid[], $6::timestamptz[]) WITH ORDINALITY AS o (org_id, at, n)
        LEFT JOIN LATERAL (
            SELECT \(OrgContextFingerprint.expression(org: "g")) AS fingerprint
            FROM orgs g \(OrgContextFingerprint.sources(org: "g"))
            WHERE g.org_id = o.org_id
        ) AS f ON true
        LEFT JOIN LATERAL (
            SELECT \(BucketQueries.columns) FROM credit_buckets
            WHERE org_id = o.org_id AND remaining > 0 AND effective_at <= o.at AND (expires_at IS NULL OR expires_at > o.at)
              AND cardinality(claimed.keys) >= 0
            ORDER BY \(BucketQueries.burnOrder)
            LIMIT \(BucketQueries.spendableBucketsMaximum)
            FOR UPDATE
        ) AS b ON true
        """)
    typealias Row = PostgresRow

    struct Claim {
        let orgID: UUID
        let key: String
        let hash: [UInt8]
        let at: Instant
    }

    /// In lock order.
    var claims: [Claim] = []
    /// In lock order, with each organisation's time (a test clock's, or the real one).
    var orgs: [(orgID: UUID, now: Instant)] = []

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 6)
        bindings.append(claims.map(\.orgID))
        bindings.append(claims.map(\.key))
        bindings.append(claims.map { ByteBuffer(bytes: $0.hash) })
        bindings.append(claims.map(\.at))
        bindings.append(orgs.map(\.orgID))
        bindings.append(orgs.map(\.now))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// Everything a transaction of plain spends writes, in one statement: the usage entries, their
/// postings, the buckets' new remainders, the stored answers, the months' rollups and the
/// periods' counters with the alert thresholds they cross (and those alerts' events). The one
/// place the threshold rule is written: a settled hold counts its usage through it too.
struct SpendWriteStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.SpendWriteStatement"
    static let sql = GenericPlan.arraysHidden("""
        WITH \(LedgerRows.sql(first: 1)), answers AS (
            UPDATE idempotency_keys AS i SET status_code = a.status, response_body = a.body
            FROM unnest($39::uuid[], $40::text[], $41::int[], $42::bytea[]) AS a (org_id, key, status, body)
            WHERE i.org_id = a.org_id AND i.idempotency_key = a.key
        ), month AS (
            INSERT INTO usage_months (org_id, month, credits_used, transactions)
            SELECT m.org_id, m.month, m.credits, m.transactions
            FROM unnest($43::uuid[], $44::date[], $45::numeric[], $46::bigint[]) AS m (org_id, month, credits, transactions)
            ON CONFLICT (org_id, month) DO UPDATE SET credits_used = usage_months.credits_used + EXCLUDED.credits_used,
                                                      transactions = usage_months.transactions + EXCLUDED.transactions
        ), counted AS (
            UPDATE usage_periods AS u SET used_credits = u.used_credits + p.credits, overage_credits = u.overage_credits + p.overage
            FROM unnest($47::uuid[], $48::timestamptz[], $49::numeric[], $50::numeric[], $51::text[], $52::text[], $53::timestamptz[])
                 AS p (org_id, period_start, credits, overage, start_text, end_text, at)
            WHERE u.org_id = p.org_id AND u.period_start = p.period_start
            RETURNING u.org_id, u.period_start, u.allocation, u.used_credits, p.credits AS added, p.start_text, p.end_text, p.at
        ), crossed AS (
            SELECT c.org_id, c.period_start, t.percent, gen_random_uuid() AS event_id, c.used_credits, c.allocation,
                   c.start_text, c.end_text, c.at
            FROM counted c JOIN unnest($54::uuid[], $55::integer[]) AS t (org_id, percent) ON t.org_id = c.org_id
            WHERE c.allocation > 0 AND (c.used_credits - c.added) * 100 < c.allocation * t.percent
              AND c.used_credits * 100 >= c.allocation * t.percent
        ), fired AS (
            INSERT INTO alert_firings (org_id, period_start, percent, event_id, fired_at)
            SELECT org_id, period_start, percent, event_id, at FROM crossed
            ON CONFLICT DO NOTHING RETURNING org_id, percent, event_id
        ), alert_events AS (
            INSERT INTO events (org_id, event_id, type, data, created_at)
            SELECT f.org_id, f.event_id, 'usage.threshold_reached',
                   jsonb_build_object('percent', f.percent, 'used', c.used_credits::text, 'allocation', c.allocation::text,
                                      'period_start', c.start_text, 'period_end', c.end_text), c.at
            FROM fired f JOIN crossed c ON c.org_id = f.org_id AND c.percent = f.percent
        ), alert_deliveries AS (
            INSERT INTO webhook_deliveries (\(EventOutbox.deliveryColumns))
            SELECT f.org_id, gen_random_uuid(), f.event_id, e.endpoint_id, 'pending', c.at
            FROM fired f JOIN crossed c ON c.org_id = f.org_id AND c.percent = f.percent
            JOIN webhook_endpoints e
              ON e.active AND (e.org_id = f.org_id OR e.org_id IS NULL) AND ('usage.threshold_reached' = ANY(e.events) OR '*' = ANY(e.events))
        )
        SELECT (SELECT count(*) FROM moved)::int
        """)
    typealias Row = Int

    /// One organisation's share of the transaction's rollups: its month (in its time zone) and,
    /// with a live subscription, its period's counters and alert thresholds.
    struct Rollup {
        let orgID: UUID
        let now: Instant
        let month: CalendarMonth
        let credits: Credits
        let overage: Credits
        let transactions: Int
        let period: LivePeriod?
        let thresholds: [Int]

        /// The month is the organisation's (its time zone), the period and thresholds its terms'.
        init(orgID: UUID, now: Instant, credits: Credits, overage: Credits, transactions: Int, terms: SpendTerms) {
            self.orgID = orgID
            self.now = now
            self.month = CalendarMonth(containing: now, in: terms.timezone)
            self.credits = credits
            self.overage = overage
            self.transactions = transactions
            self.period = terms.period
            self.thresholds = terms.alertThresholdsPercent
        }
    }

    /// The usage entries, their postings and the buckets they move (the one ledger writer's rows).
    var rows = LedgerRows()
    var answers: [(orgID: UUID, key: String, status: Int, body: [UInt8])] = []
    var rollups: [Rollup] = []

    var isEmpty: Bool { rows.isEmpty && answers.isEmpty && rollups.allSatisfy { $0.transactions == 0 } }

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: LedgerRows.parameterCount + 17)
        try rows.append(to: &b)
        b.append(answers.map(\.orgID))
        b.append(answers.map(\.key))
        b.append(answers.map(\.status))
        b.append(answers.map { ByteBuffer(bytes: $0.body) })
        let counted = rollups.filter { $0.transactions > 0 }
        b.append(counted.map(\.orgID))
        b.append(counted.map(\.month))
        b.append(counted.map(\.credits))
        b.append(counted.map(\.transactions))
        let periods = counted.filter { $0.period != nil }
        b.append(periods.map(\.orgID))
        b.append(periods.map { $0.period!.start })
        b.append(periods.map(\.credits))
        b.append(periods.map(\.overage))
        b.append(periods.map { $0.period!.start.rfc3339 })
        b.append(periods.map { $0.period!.end.rfc3339 })
        b.append(periods.map(\.now))
        let thresholds = periods.flatMap { rollup in rollup.thresholds.map { (rollup.orgID, $0) } }
        b.append(thresholds.map(\.0))
        b.append(thresholds.map(\.1))
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}
