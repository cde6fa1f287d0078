import Foundation
import Logging
import PostgresNIO
import TallyCore

/// `tally verify`: recomputes what the ledger says and reports every place where the stored
/// state disagrees with it.
public struct LedgerVerifier: Sendable {
    let database: Database

    public struct Mismatch: Sendable, CustomStringConvertible, Equatable {
        public let orgID: UUID
        public let subject: String
        public let detail: String

        public var description: String { "org \(orgID.idString): \(subject): \(detail)" }
    }

    /// `progress` hears each part as it is checked: (part, parts done, parts in all).
    public func verify(progress: (@Sendable (String, Int, Int) -> Void)? = nil) async throws -> [Mismatch] {
        var mismatches: [Mismatch] = []
        let logger = database.logger
        // A bucket's remaining is the sum of its postings, and its grant is its grant posting.
        let buckets = try await database.pool.query("""
            SELECT b.org_id, b.bucket_id, b.granted, b.remaining,
                   coalesce(sum(p.credits), 0)::numeric(20,4),
                   coalesce(sum(p.credits) FILTER (WHERE p.entry_id = b.grant_entry_id), 0)::numeric(20,4)
            FROM credit_buckets b
            LEFT JOIN ledger_postings p ON p.org_id = b.org_id AND p.bucket_id = b.bucket_id
            GROUP BY b.org_id, b.bucket_id
            HAVING b.remaining <> coalesce(sum(p.credits), 0)
                OR b.granted <> coalesce(sum(p.credits) FILTER (WHERE p.entry_id = b.grant_entry_id), 0)
            """, logger: logger).collect()
        for row in buckets {
            let (org, bucket, granted, remaining, posted, grantPosted) = try row.decode((UUID, UUID, Credits, Credits, Credits, Credits).self)
            mismatches.append(Mismatch(orgID: org, subject: "bucket \(bucket.idString)",
                                       detail: "remaining \(remaining) but postings sum to \(posted); granted \(granted), grant posting \(grantPosted)"))
        }
        // An entry's credits are the sum of its postings.
        progress?("buckets", 1, 6)
        let entries = try await database.pool.query("""
            SELECT e.org_id, e.entry_id, e.credits, coalesce(sum(p.credits), 0)::numeric(20,4)
            FROM ledger_entries e
            LEFT JOIN ledger_postings p ON p.org_id = e.org_id AND p.entry_id = e.entry_id
            GROUP BY e.org_id, e.entry_id
            HAVING e.credits <> coalesce(sum(p.credits), 0)
            """, logger: logger).collect()
        for row in entries {
            let (org, entry, credits, posted) = try row.decode((UUID, UUID, Credits, Credits).self)
            mismatches.append(Mismatch(orgID: org, subject: "entry \(entry.idString)", detail: "credits \(credits) but postings sum to \(posted)"))
        }
        // An active hold keeps exactly what its hold entry took.
        progress?("entries", 2, 6)
        let holds = try await database.pool.query("""
            SELECT r.org_id, r.reservation_id, r.credits, -e.credits
            FROM reservations r JOIN ledger_entries e ON e.org_id = r.org_id AND e.entry_id = r.hold_entry_id
            WHERE r.credits <> -e.credits
            """, logger: logger).collect()
        for row in holds {
            let (org, reservation, credits, taken) = try row.decode((UUID, UUID, Credits, Credits).self)
            mismatches.append(Mismatch(orgID: org, subject: "reservation \(reservation.idString)", detail: "holds \(credits) but its hold entry took \(taken)"))
        }
        // An invoice's total is the sum of its lines, and each line is quantity x unit price
        // rounded to the currency's minor unit.
        progress?("holds", 3, 6)
        let invoices = try await database.pool.query("""
            SELECT i.org_id, i.invoice_id, i.currency, i.total, coalesce(sum(l.amount), 0)::numeric(20,6)
            FROM invoices i LEFT JOIN invoice_lines l ON l.org_id = i.org_id AND l.invoice_id = i.invoice_id
            GROUP BY i.org_id, i.invoice_id
            HAVING i.total <> coalesce(sum(l.amount), 0)
            """, logger: logger).collect()
        for row in invoices {
            let (org, invoice, currency, total, lines) = try row.decode((UUID, UUID, String, MoneyMicros, MoneyMicros).self)
            mismatches.append(Mismatch(orgID: org, subject: "invoice \(invoice.idString)",
                                       detail: "total \(total.text) \(currency) but its lines sum to \(lines.text)"))
        }
        progress?("invoices", 4, 6)
        let lines = try await database.pool.query("""
            SELECT l.org_id, l.invoice_id, l.position, i.currency, l.quantity, l.unit_price, l.amount
            FROM invoice_lines l JOIN invoices i ON i.org_id = l.org_id AND i.invoice_id = l.invoice_id
            """, logger: logger)
        for try await (org, invoice, position, currencyCode, quantity, unitPrice, amount) in lines.decode((UUID, UUID, Int, String, Credits, MoneyMicros, MoneyMicros).self) {
            guard let currency = Currency.named(currencyCode) else {
                mismatches.append(Mismatch(orgID: org, subject: "invoice \(invoice.idString) line \(position)",
                                           detail: "unknown currency '\(currencyCode)'"))
                continue
            }
            let expected = InvoiceLine(description: "", quantity: quantity, unitPrice: unitPrice.money(currency)).amount
            if expected != amount.money(currency) {
                mismatches.append(Mismatch(orgID: org, subject: "invoice \(invoice.idString) line \(position)",
                                           detail: "amount \(amount.money(currency).amountText) but \(quantity) x \(unitPrice.money(currency).amountText) is \(expected.amountText)"))
            }
        }
        progress?("invoice lines", 5, 6)
        // Every posting's entry and bucket exist, and every entry's and stored answer's
        // organisation: the writer checks these as it writes (sql/0015), this proves it did.
        let orphans = try await database.pool.query("""
            SELECT p.org_id, 'posting of entry ' || p.entry_id || ' to bucket ' || p.bucket_id,
                   CASE WHEN e.entry_id IS NULL THEN 'its entry does not exist' ELSE 'its bucket does not exist' END
            FROM ledger_postings p
            LEFT JOIN ledger_entries e ON e.org_id = p.org_id AND e.entry_id = p.entry_id
            LEFT JOIN credit_buckets b ON b.org_id = p.org_id AND b.bucket_id = p.bucket_id
            WHERE e.entry_id IS NULL OR b.bucket_id IS NULL
            UNION ALL
            SELECT e.org_id, 'entry ' || e.entry_id, 'its organisation does not exist'
            FROM ledger_entries e WHERE NOT EXISTS (SELECT FROM orgs o WHERE o.org_id = e.org_id)
            UNION ALL
            SELECT k.org_id, 'idempotency key ' || k.idempotency_key, 'its organisation does not exist'
            FROM idempotency_keys k WHERE NOT EXISTS (SELECT FROM orgs o WHERE o.org_id = k.org_id)
            """, logger: logger)
        for try await (org, subject, detail) in orphans.decode((UUID, String, String).self) {
            mismatches.append(Mismatch(orgID: org, subject: subject, detail: detail))
        }
        progress?("references", 6, 6)
        return mismatches
    }
}
