import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// An invoice about to be written.
struct NewInvoice {
    let id: UUID
    let kind: Invoice.Kind
    let currency: Currency
    let lines: [InvoiceLine]
    var subscriptionID: UUID?
    var periodStart: Instant?
    var periodEnd: Instant?
}

/// Invoices: written inside the transaction of what they charge for, numbered per organisation
/// without gaps, never edited once open.
public struct InvoiceStore: Sendable {
    let database: Database

    static let columns = """
        invoice_id, number, kind, status, currency, total, subscription_id, period_start, period_end, issued_at,
        paid_at, payment_reference, voided_at, created_at
        """

    /// Writes an invoice, open (numbered now) or draft (numbered when it opens).
    @discardableResult
    static func issue(_ invoice: NewInvoice, orgID: UUID, status: Invoice.Status, at now: Instant,
                      on connection: DatabaseConnection, logger: Logger) async throws -> Invoice {
        precondition(status == .open || status == .draft, "invoices are written as drafts or open")
        let total = try InvoiceMath.total(of: invoice.lines, currency: invoice.currency)
        var number: Int64?
        if status == .open {
            number = try await nextNumber(orgID: orgID, on: connection, logger: logger)
        }
        var sql = BoundSQL()
        let org = sql.bind(orgID)
        let id = sql.bind(invoice.id)
        let lines = invoice.lines.enumerated().map { index, line in
            "(\(org), \(id), \(sql.bind(index + 1)), \(sql.bind(line.description)), \(sql.bind(line.quantity)), \(sql.bind(MoneyMicros(line.unitPrice))), \(sql.bind(MoneyMicros(line.amount))))"
        }
        var statement = """
            WITH new_invoice AS (
                INSERT INTO invoices (org_id, invoice_id, number, kind, status, currency, total, subscription_id, period_start, period_end, issued_at, created_at)
                VALUES (\(org), \(id), \(sql.bind(number)), \(sql.bind(invoice.kind.rawValue)), \(sql.bind(status.rawValue)),
                        \(sql.bind(invoice.currency.code)), \(sql.bind(MoneyMicros(total))), \(sql.bind(invoice.subscriptionID)),
                        \(sql.bind(invoice.periodStart)), \(sql.bind(invoice.periodEnd)), \(sql.bind(status == .open ? now : nil)), \(sql.bind(now)))
            )
            """
        if !lines.isEmpty {
            statement += ", new_lines AS (INSERT INTO invoice_lines (org_id, invoice_id, position, description, quantity, unit_price, amount) VALUES \(lines.joined(separator: ", ")))"
        }
        if status == .open {
            let parts = EventOutbox.parts(.invoiceFinalized, data: finalizedData(id: invoice.id, number: number, kind: invoice.kind, total: total),
                                          orgID: orgID, at: now, sql: &sql)
            for (index, part) in parts.enumerated() { statement += ", finalized_\(index) AS (\(part))" }
        }
        statement += " SELECT 1"
        try await connection.query(sql.query(statement), logger: logger)
        return Invoice(id: invoice.id, number: number, kind: invoice.kind, status: status, currency: invoice.currency, lines: invoice.lines,
                       total: total, subscriptionID: invoice.subscriptionID, periodStart: invoice.periodStart, periodEnd: invoice.periodEnd,
                       issuedAt: status == .open ? now : nil, paidAt: nil, paymentReference: nil, voidedAt: nil, createdAt: now)
    }

    static func finalizedData(id: UUID, number: Int64?, kind: Invoice.Kind, total: Money) -> JSONValue {
        .object([("invoice_id", .id(id)), ("number", number.map { .number(String($0)) } ?? .null), ("kind", .string(kind.rawValue)),
                 ("total", .money(total))])
    }

    /// The organisation's next invoice number. The counter row stays locked until the
    /// transaction ends: concurrent invoicing queues here, and a rollback gives the number back.
    static func nextNumber(orgID: UUID, on connection: DatabaseConnection, logger: Logger) async throws -> Int64 {
        let rows = try await connection.query("""
            INSERT INTO invoice_sequences (org_id, last_number) VALUES (\(orgID), 1)
            ON CONFLICT (org_id) DO UPDATE SET last_number = invoice_sequences.last_number + 1
            RETURNING last_number
            """, logger: logger).collect()
        return try rows[0].decode(Int64.self)
    }

    public func invoices(orgID: UUID, limit: Int, after cursor: UUID?) async throws -> Page<Invoice> {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: Self.columns) FROM invoices
            WHERE org_id = \(orgID) AND (\(cursor)::uuid IS NULL OR invoice_id < \(cursor))
            ORDER BY invoice_id DESC LIMIT \(limit + 1)
            """, logger: database.logger).collect()
        var invoices = try await withLines(rows, orgID: orgID)
        let hasMore = invoices.count > limit
        if hasMore { invoices.removeLast() }
        return Page(items: invoices, nextCursor: hasMore ? invoices.last?.id.idString : nil)
    }

    public func invoice(orgID: UUID, id: UUID) async throws -> Invoice? {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: Self.columns) FROM invoices WHERE org_id = \(orgID) AND invoice_id = \(id)
            """, logger: database.logger).collect()
        return try await withLines(rows, orgID: orgID).first
    }

    private func withLines(_ rows: [PostgresRow], orgID: UUID) async throws -> [Invoice] {
        let headers = try rows.map(Self.decodeHeader)
        guard !headers.isEmpty else { return [] }
        var lines: [UUID: [InvoiceLine]] = [:]
        let lineRows = try await database.pool.query("""
            SELECT invoice_id, description, quantity, unit_price, amount FROM invoice_lines
            WHERE org_id = \(orgID) AND invoice_id = ANY(\(headers.map(\.id))) ORDER BY invoice_id, position
            """, logger: database.logger).collect()
        let currencies = Dictionary(uniqueKeysWithValues: headers.map { ($0.id, $0.currency) })
        for row in lineRows {
            let (id, description, quantity, unitPrice, amount) = try row.decode((UUID, String, Credits, MoneyMicros, MoneyMicros).self)
            let currency = currencies[id]!
            lines[id, default: []].append(InvoiceLine(description: description, quantity: quantity, unitPrice: unitPrice.money(currency), amount: amount.money(currency)))
        }
        return headers.map { header in
            Invoice(id: header.id, number: header.number, kind: header.kind, status: header.status, currency: header.currency,
                    lines: lines[header.id] ?? [], total: header.total, subscriptionID: header.subscriptionID,
                    periodStart: header.periodStart, periodEnd: header.periodEnd, issuedAt: header.issuedAt, paidAt: header.paidAt,
                    paymentReference: header.paymentReference, voidedAt: header.voidedAt, createdAt: header.createdAt)
        }
    }

    static func decodeHeader(_ row: PostgresRow) throws -> Invoice {
        let c = row.makeRandomAccess()
        let currency = try StoredValue.currency(try c[4].decode(String.self), column: "invoices.currency")
        return Invoice(
            id: try c[0].decode(UUID.self), number: try c[1].decode(Int64?.self),
            kind: try StoredValue.decode(Invoice.Kind.self, try c[2].decode(String.self), column: "invoices.kind"),
            status: try StoredValue.decode(Invoice.Status.self, try c[3].decode(String.self), column: "invoices.status"), currency: currency, lines: [],
            total: try c[5].decode(MoneyMicros.self).money(currency), subscriptionID: try c[6].decode(UUID?.self),
            periodStart: try c[7].decode(Instant?.self), periodEnd: try c[8].decode(Instant?.self), issuedAt: try c[9].decode(Instant?.self),
            paidAt: try c[10].decode(Instant?.self), paymentReference: try c[11].decode(String?.self),
            voidedAt: try c[12].decode(Instant?.self), createdAt: try c[13].decode(Instant.self)
        )
    }
}

extension InvoiceStore {
    /// Marks an open invoice paid with the payment's external reference. Paying again with the
    /// same reference is a no-op (idempotent); with another, a conflict.
    public func pay(orgID: UUID, invoiceID: UUID, reference: String, at now: Instant) async throws -> Invoice {
        try await database.transaction { connection in
            let (status, paidReference) = try await lock(orgID: orgID, invoiceID: invoiceID, on: connection)
            switch status {
            case .open:
                let rows = try await connection.query("""
                    UPDATE invoices SET status = 'paid', paid_at = \(now), payment_reference = \(reference)
                    WHERE org_id = \(orgID) AND invoice_id = \(invoiceID) RETURNING number, kind, total, currency
                    """, logger: database.logger).collect()
                let (number, kind, total, currency) = try rows[0].decode((Int64?, String, MoneyMicros, String).self)
                try await EventOutbox.emit(.invoicePaid, data: .object([
                    ("invoice_id", .id(invoiceID)), ("number", number.map { .number(String($0)) } ?? .null), ("kind", .string(kind)),
                    ("total", .money(Currency.named(currency).map(total.money))), ("reference", .string(reference)),
                ]), orgID: orgID, at: now, on: connection, logger: database.logger)
            case .paid where paidReference == reference:
                break
            case .paid:
                throw TallyError.conflict("invoice_already_paid", "The invoice was already paid with another reference.")
            case .draft:
                throw TallyError.conflict("invoice_not_open", "A draft invoice is not payable until it is finalized.")
            case .void:
                throw TallyError.conflict("invoice_void", "The invoice is void.")
            }
        }
        return try await committed(orgID: orgID, invoiceID: invoiceID)
    }

    /// Voids an open or draft invoice (a paid one stays paid: corrections are new invoices).
    /// Voiding a void invoice is a no-op.
    public func void(orgID: UUID, invoiceID: UUID, at now: Instant) async throws -> Invoice {
        try await database.transaction { connection in
            let (status, _) = try await lock(orgID: orgID, invoiceID: invoiceID, on: connection)
            switch status {
            case .open, .draft:
                try await connection.query("""
                    UPDATE invoices SET status = 'void', voided_at = \(now) WHERE org_id = \(orgID) AND invoice_id = \(invoiceID)
                    """, logger: database.logger)
            case .void:
                break
            case .paid:
                throw TallyError.conflict("invoice_paid", "A paid invoice cannot be voided; issue a correction instead.")
            }
        }
        return try await committed(orgID: orgID, invoiceID: invoiceID)
    }

    private func lock(orgID: UUID, invoiceID: UUID, on connection: DatabaseConnection) async throws -> (Invoice.Status, String?) {
        let rows = try await connection.query("""
            SELECT status, payment_reference FROM invoices WHERE org_id = \(orgID) AND invoice_id = \(invoiceID) FOR UPDATE
            """, logger: database.logger).collect()
        guard let row = rows.first else { throw TallyError.notFound("The invoice") }
        let (status, reference) = try row.decode((String, String?).self)
        return (try StoredValue.decode(Invoice.Status.self, status, column: "invoices.status"), reference)
    }

    private func committed(orgID: UUID, invoiceID: UUID) async throws -> Invoice {
        guard let invoice = try await invoice(orgID: orgID, id: invoiceID) else { throw TallyError.notFound("The invoice") }
        return invoice
    }
}
