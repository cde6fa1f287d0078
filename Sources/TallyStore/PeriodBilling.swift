import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// A period's usage counters and its accumulating overage invoice. Both are locked after the
/// buckets of the transaction that touches them (subscription, buckets, usage period, invoices).
enum PeriodBilling {
    /// Opens the counters of a new period (a subscription's start, a renewal, a plan change).
    static func openPeriod(_ period: BillingPeriod, subscriptionID: UUID, allocation: Credits, orgID: UUID, into write: inout LedgerWrite) {
        write.with { sql in
            """
            INSERT INTO usage_periods (org_id, period_start, period_end, subscription_id, allocation)
            VALUES (\(sql.bind(orgID)), \(sql.bind(period.start)), \(sql.bind(period.end)), \(sql.bind(subscriptionID)), \(sql.bind(allocation)))
            ON CONFLICT (org_id, period_start) DO NOTHING
            """
        }
    }

    /// Counts a spend (or, negative, a reversal) against the period containing `at`.
    static func count(used: Credits, overage: Credits, at time: Instant, orgID: UUID, into write: inout LedgerWrite) {
        guard !used.isZero || !overage.isZero else { return }
        write.with { sql in
            let at = sql.bind(time)
            return """
                UPDATE usage_periods SET used_credits = used_credits + \(sql.bind(used)), overage_credits = overage_credits + \(sql.bind(overage))
                WHERE org_id = \(sql.bind(orgID)) AND period_start <= \(at) AND period_end > \(at)
                """
        }
    }

    /// The overage the period has incurred so far, with its counter row locked.
    static func lockOverageIncurred(_ period: LivePeriod, orgID: UUID, on connection: DatabaseConnection, logger: Logger) async throws -> Credits {
        let rows = try await connection.query("""
            SELECT overage_credits FROM usage_periods WHERE org_id = \(orgID) AND period_start = \(period.start) FOR UPDATE
            """, logger: logger).collect()
        return try rows.first?.decode(Credits.self) ?? .zero
    }

    /// Adds `credits` of overage to the period's draft overage invoice (created on first use) and
    /// recomputes its one line exactly from the period's total. Returns the invoice id.
    static func accumulateOverage(_ credits: Credits, rate: Money, period: LivePeriod, orgID: UUID, at now: Instant,
                                  on connection: DatabaseConnection, logger: Logger) async throws -> UUID {
        let invoiceID = try await adjustOverage(by: credits, rate: rate, subscriptionID: period.subscriptionID, periodStart: period.start,
                                                periodEnd: period.end, orgID: orgID, at: now, on: connection, logger: logger)
        // The spend's terms were read before its transaction. A renewal, plan change or
        // cancellation that committed since has finalised this period's overage, and the draft
        // above would be a new one that nothing ever finalises. Checked with the draft locked:
        // a renewal that has not finalised it yet waits for this transaction and bills it.
        let live = try await connection.query("""
            SELECT 1 FROM subscriptions
            WHERE org_id = \(orgID) AND subscription_id = \(period.subscriptionID) AND status = 'active'
              AND current_period_start = \(period.start)
            """, logger: logger).collect()
        guard !live.isEmpty else { throw SpendTermsChanged() }
        return invoiceID
    }

    @discardableResult
    static func adjustOverage(by credits: Credits, rate: Money?, subscriptionID: UUID, periodStart: Instant, periodEnd: Instant,
                              orgID: UUID, at now: Instant, on connection: DatabaseConnection, logger: Logger) async throws -> UUID {
        if let rate {
            try await connection.query("""
                INSERT INTO invoices (org_id, invoice_id, kind, status, currency, total, subscription_id, period_start, period_end, created_at)
                VALUES (\(orgID), \(UUID.v7(at: now)), 'overage', 'draft', \(rate.currency.code), 0, \(subscriptionID), \(periodStart), \(periodEnd), \(now))
                ON CONFLICT (org_id, subscription_id, period_start) WHERE kind = 'overage' AND status = 'draft' DO NOTHING
                """, logger: logger)
        }
        let rows = try await connection.query("""
            SELECT i.invoice_id, i.currency, l.quantity, l.unit_price FROM invoices i
            LEFT JOIN invoice_lines l ON l.org_id = i.org_id AND l.invoice_id = i.invoice_id AND l.position = 1
            WHERE i.org_id = \(orgID) AND i.subscription_id = \(subscriptionID) AND i.period_start = \(periodStart)
              AND i.kind = 'overage' AND i.status = 'draft'
            FOR UPDATE OF i
            """, logger: logger).collect()
        guard let row = rows.first else { throw TallyError.conflict("overage_invoiced", "The period's overage is already invoiced.") }
        let (invoiceID, currencyCode, quantity, unitPrice) = try row.decode((UUID, String, Credits?, MoneyMicros?).self)
        let currency = try StoredValue.currency(currencyCode, column: "invoices.currency")
        let unit = rate ?? unitPrice?.money(currency) ?? .zero(currency)
        let line = OverageRules.line(credits: (quantity ?? .zero) + credits, rate: unit)
        try await connection.query("""
            WITH line AS (INSERT INTO invoice_lines (org_id, invoice_id, position, description, quantity, unit_price, amount)
                     VALUES (\(orgID), \(invoiceID), 1, \(line.description), \(line.quantity), \(MoneyMicros(line.unitPrice)), \(MoneyMicros(line.amount)))
                     ON CONFLICT (org_id, invoice_id, position) DO UPDATE
                     SET quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price, amount = EXCLUDED.amount)
            UPDATE invoices SET total = \(MoneyMicros(line.amount)) WHERE org_id = \(orgID) AND invoice_id = \(invoiceID)
            """, logger: logger)
        return invoiceID
    }

    /// Opens (numbers and issues) the period's overage draft, if there is one with overage on it;
    /// an empty draft is voided. Renewals, immediate plan changes and cancellations call this.
    @discardableResult
    static func finalizeOverage(subscriptionID: UUID, periodStart: Instant, orgID: UUID, at time: Instant,
                                on connection: DatabaseConnection, logger: Logger) async throws -> UUID? {
        let rows = try await connection.query("""
            SELECT invoice_id, total FROM invoices
            WHERE org_id = \(orgID) AND subscription_id = \(subscriptionID) AND period_start = \(periodStart)
              AND kind = 'overage' AND status = 'draft'
            FOR UPDATE
            """, logger: logger).collect()
        guard let row = rows.first else { return nil }
        let (invoiceID, total) = try row.decode((UUID, MoneyMicros).self)
        guard total.isPositive else {
            try await connection.query("""
                UPDATE invoices SET status = 'void', voided_at = \(time) WHERE org_id = \(orgID) AND invoice_id = \(invoiceID)
                """, logger: logger)
            return nil
        }
        let number = try await InvoiceStore.nextNumber(orgID: orgID, on: connection, logger: logger)
        let opened = try await connection.query("""
            UPDATE invoices SET status = 'open', number = \(number), issued_at = \(time) WHERE org_id = \(orgID) AND invoice_id = \(invoiceID)
            RETURNING currency
            """, logger: logger).collect()
        let currency = try StoredValue.currency(try opened[0].decode(String.self), column: "invoices.currency")
        try await EventOutbox.emit(.invoiceFinalized, data: InvoiceStore.finalizedData(id: invoiceID, number: number, kind: .overage, total: total.money(currency)),
                                   orgID: orgID, at: time, on: connection, logger: logger)
        return invoiceID
    }
}
