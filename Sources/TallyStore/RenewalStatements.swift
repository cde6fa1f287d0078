import Foundation
import Logging
import NIOCore
import PostgresNIO
import TallyCore

/// Prepared statements of batched renewals: fixed SQL taking rows as arrays, so that a batch of
/// subscriptions of many organisations costs a handful of planned-once statements.

/// Locks the due subscriptions of a batch, skipping any another runner holds.
struct LockDueSubscriptionsStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.LockDueSubscriptionsStatement"
    static let sql = """
        SELECT \(SubscriptionStore.columns), o.timezone
        FROM subscriptions s JOIN orgs o ON o.org_id = s.org_id
        WHERE (s.org_id, s.subscription_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
          AND s.status = 'active' AND s.current_period_end <= $3::timestamptz
        ORDER BY s.org_id, s.subscription_id
        FOR UPDATE OF s SKIP LOCKED
        """
    typealias Row = PostgresRow
    let orgIDs: [UUID]
    let subscriptionIDs: [UUID]
    let until: Instant

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 3)
        b.append(orgIDs)
        b.append(subscriptionIDs)
        b.append(until)
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// Locks the plan credits (with credits left) that end with each subscription's period, in
/// burn-down order; all of them for a subscription that ends (a NULL `ending_at`).
struct LockPlanCreditsStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.LockPlanCreditsStatement"
    static let sql = """
        SELECT b.org_id, b.subscription_id, b.bucket_id, b.remaining, b.granted_at
        FROM credit_buckets b JOIN unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS d (org_id, subscription_id, ending_at)
          ON b.org_id = d.org_id AND b.subscription_id = d.subscription_id
        WHERE b.remaining > 0 AND (d.ending_at IS NULL OR b.expires_at = d.ending_at)
        ORDER BY b.org_id, b.subscription_id, \(BucketQueries.burnOrder)
        FOR UPDATE OF b
        """
    typealias Row = (UUID, UUID, UUID, Credits, Instant)
    let orgIDs: [UUID]
    let subscriptionIDs: [UUID]
    let endingAt: [Instant?]

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 3)
        b.append(orgIDs)
        b.append(subscriptionIDs)
        b.append(NullableArray(endingAt))
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Locks the overage drafts of the batch's ending periods.
struct LockOverageDraftsStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.LockOverageDraftsStatement"
    static let sql = """
        SELECT org_id, subscription_id, invoice_id, total, currency FROM invoices
        WHERE (org_id, subscription_id, period_start) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]))
          AND kind = 'overage' AND status = 'draft'
        FOR UPDATE
        """
    typealias Row = (UUID, UUID, UUID, MoneyMicros, String)
    let orgIDs: [UUID]
    let subscriptionIDs: [UUID]
    let periodStarts: [Instant]

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 3)
        b.append(orgIDs)
        b.append(subscriptionIDs)
        b.append(periodStarts)
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Reserves `counts[i]` invoice numbers for organisation `orgIDs[i]`; returns each one's last.
struct ReserveInvoiceNumbersStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.ReserveInvoiceNumbersStatement"
    static let sql = """
        INSERT INTO invoice_sequences (org_id, last_number)
        SELECT * FROM unnest($1::uuid[], $2::bigint[])
        ON CONFLICT (org_id) DO UPDATE SET last_number = invoice_sequences.last_number + EXCLUDED.last_number
        RETURNING org_id, last_number
        """
    typealias Row = (UUID, Int64)
    let orgIDs: [UUID]
    let counts: [Int64]

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 2)
        b.append(orgIDs)
        b.append(counts)
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Ledger movements of many organisations in one statement (renewals): the ledger rows, and
/// events with their webhook deliveries.
struct LedgerBatchStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.LedgerBatchStatement"
    static let sql = """
        WITH \(LedgerRows.sql(first: 1)), new_events AS (
            INSERT INTO events (org_id, event_id, type, data, created_at)
            SELECT org_id, event_id, type, data::jsonb, created_at
            FROM unnest($39::uuid[], $40::uuid[], $41::text[], $42::text[], $43::timestamptz[]) AS v (org_id, event_id, type, data, created_at)
            RETURNING org_id, event_id, type, created_at
        ), deliveries AS (
            INSERT INTO webhook_deliveries (\(EventOutbox.deliveryColumns))
            SELECT ev.org_id, gen_random_uuid(), ev.event_id, e.endpoint_id, 'pending', ev.created_at
            FROM new_events ev JOIN webhook_endpoints e
              ON e.active AND (e.org_id = ev.org_id OR e.org_id IS NULL) AND (ev.type = ANY(e.events) OR '*' = ANY(e.events))
        )
        SELECT (SELECT count(*) FROM moved)::int
        """
    typealias Row = Int

    struct Event { let orgID: UUID; let id: UUID; let type: EventType; let data: String; let at: Instant }

    /// The entries, new buckets and postings (the one ledger writer's rows).
    var rows = LedgerRows()
    var events: [Event] = []

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: LedgerRows.parameterCount + 5)
        try rows.append(to: &b)
        b.append(events.map(\.orgID)); b.append(events.map(\.id)); b.append(events.map(\.type.rawValue)); b.append(events.map(\.data))
        b.append(events.map(\.at))
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}

/// What renewals change besides the ledger: subscriptions advance (or end), new periods' usage
/// rows open, overage drafts open (or void, when empty), and the new periods' invoices are issued.
struct RenewalWriteStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.RenewalWriteStatement"
    static let sql = """
        WITH advanced AS (
            UPDATE subscriptions AS s SET plan_code = u.plan_code, anchor_at = u.anchor_at,
                   scheduled_plan_code = CASE WHEN u.status = 'canceled' THEN s.scheduled_plan_code END,
                   period_index = u.period_index, current_period_start = u.period_start, current_period_end = u.period_end,
                   status = u.status, canceled_at = u.canceled_at,
                   cancel_at_period_end = CASE WHEN u.status = 'canceled' THEN false ELSE s.cancel_at_period_end END
            FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::integer[], $6::timestamptz[], $7::timestamptz[],
                        $8::text[], $9::timestamptz[])
                 AS u (org_id, subscription_id, plan_code, anchor_at, period_index, period_start, period_end, status, canceled_at)
            WHERE s.org_id = u.org_id AND s.subscription_id = u.subscription_id
        ), periods AS (
            INSERT INTO usage_periods (org_id, period_start, period_end, subscription_id, allocation)
            SELECT * FROM unnest($10::uuid[], $11::timestamptz[], $12::timestamptz[], $13::uuid[], $14::numeric[])
            ON CONFLICT (org_id, period_start) DO NOTHING
        ), opened AS (
            UPDATE invoices AS i SET status = o.status, number = o.number, issued_at = o.issued_at, voided_at = o.voided_at
            FROM unnest($15::uuid[], $16::uuid[], $17::text[], $18::bigint[], $19::timestamptz[], $20::timestamptz[])
                 AS o (org_id, invoice_id, status, number, issued_at, voided_at)
            WHERE i.org_id = o.org_id AND i.invoice_id = o.invoice_id
        ), issued AS (
            INSERT INTO invoices (org_id, invoice_id, number, kind, status, currency, total, subscription_id, period_start, period_end,
                                  issued_at, created_at)
            SELECT org_id, invoice_id, number, 'subscription', 'open', currency, total, subscription_id, period_start, period_end, at, at
            FROM unnest($21::uuid[], $22::uuid[], $23::bigint[], $24::text[], $25::numeric[], $26::uuid[], $27::timestamptz[],
                        $28::timestamptz[], $29::timestamptz[])
                 AS n (org_id, invoice_id, number, currency, total, subscription_id, period_start, period_end, at)
        )
        INSERT INTO invoice_lines (org_id, invoice_id, position, description, quantity, unit_price, amount)
        SELECT org_id, invoice_id, 1, description, 1, amount, amount
        FROM unnest($21::uuid[], $22::uuid[], $30::text[], $25::numeric[]) AS l (org_id, invoice_id, description, amount)
        """
    typealias Row = PostgresRow

    struct Advance {
        let orgID: UUID; let subscriptionID: UUID; let planCode: String; let anchor: Instant; let index: Int
        let start: Instant; let end: Instant; let status: Subscription.Status; let canceledAt: Instant?
    }
    struct Period { let orgID: UUID; let start: Instant; let end: Instant; let subscriptionID: UUID; let allocation: Credits }
    struct Opened { let orgID: UUID; let invoiceID: UUID; let status: Invoice.Status; let number: Int64?; let issuedAt: Instant?; let voidedAt: Instant? }
    struct Issued {
        let orgID: UUID; let invoiceID: UUID; let number: Int64; let price: Money; let subscriptionID: UUID
        let periodStart: Instant; let periodEnd: Instant; let at: Instant; let description: String
    }

    var advances: [Advance] = []
    var periods: [Period] = []
    var opened: [Opened] = []
    var issued: [Issued] = []

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 30)
        b.append(advances.map(\.orgID)); b.append(advances.map(\.subscriptionID)); b.append(advances.map(\.planCode))
        b.append(advances.map(\.anchor)); b.append(advances.map(\.index)); b.append(advances.map(\.start)); b.append(advances.map(\.end))
        b.append(advances.map(\.status.rawValue)); b.append(NullableArray(advances.map(\.canceledAt)))
        b.append(periods.map(\.orgID)); b.append(periods.map(\.start)); b.append(periods.map(\.end)); b.append(periods.map(\.subscriptionID))
        b.append(periods.map(\.allocation))
        b.append(opened.map(\.orgID)); b.append(opened.map(\.invoiceID)); b.append(opened.map(\.status.rawValue))
        b.append(NullableArray(opened.map(\.number))); b.append(NullableArray(opened.map(\.issuedAt))); b.append(NullableArray(opened.map(\.voidedAt)))
        b.append(issued.map(\.orgID)); b.append(issued.map(\.invoiceID)); b.append(issued.map(\.number)); b.append(issued.map(\.price.currency.code))
        b.append(issued.map { MoneyMicros($0.price) }); b.append(issued.map(\.subscriptionID)); b.append(issued.map(\.periodStart))
        b.append(issued.map(\.periodEnd)); b.append(issued.map(\.at)); b.append(issued.map(\.description))
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}
