import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

public struct PurchaseRequest: Sendable {
    public enum Item: Sendable { case pack(String), credits(Credits) }
    public let item: Item
    public init(_ item: Item) { self.item = item }
}

public struct PurchaseOutcome: Sendable, Equatable {
    public let bucketID: UUID
    public let entryID: UUID
    public let credits: Credits
    public let expiresAt: Instant?
    public let invoice: Invoice
}

/// Purchases of credits: a pack, or a number of credits at the plan's per-credit price. The
/// `purchase` bucket and the purchase invoice are written in one transaction.
public struct PurchaseStore: Sendable {
    let database: Database
    let catalog: CatalogStore
    let subscriptions: SubscriptionStore

    /// What is bought, priced before any transaction starts (so that a refusal writes nothing);
    /// the portal shows it before the admin confirms.
    public struct Priced: Sendable {
        public let credits: Credits
        public let line: InvoiceLine
        public let expiresAfterDays: Int?
    }

    public func price(_ request: PurchaseRequest, orgID: UUID) async throws -> Priced {
        switch request.item {
        case .pack(let code):
            guard let pack = try await catalog.pack(code) else { throw TallyError.validation("There is no credit pack '\(code)'.", field: "pack") }
            return Self.price(pack)
        case .credits(let credits):
            let rows = try await database.pool.query("""
                SELECT s.plan_code FROM subscriptions s WHERE s.org_id = \(orgID) AND s.status = 'active'
                """, logger: database.logger).collect()
            guard let code = try rows.first?.decode(String.self), let plan = try await catalog.plan(code), let unit = plan.creditPrice else {
                throw TallyError(.unprocessable, code: "purchase_unavailable",
                                 detail: "The organisation's plan sells no credits by number; buy a credit pack.", field: "credits")
            }
            if let minimum = plan.minPurchaseCredits, credits < minimum {
                throw TallyError(.unprocessable, code: "below_minimum_purchase",
                                 detail: "The \(plan.name) plan sells at least \(minimum) credits at a time.", field: "credits",
                                 extras: ["min_purchase_credits": minimum.description])
            }
            let line = InvoiceLine(description: "\(credits) credits at \(unit.amountText) \(unit.currency.code) each", quantity: credits, unitPrice: unit)
            return Priced(credits: credits, line: line, expiresAfterDays: plan.purchasedCreditsExpireAfterDays)
        }
    }

    static func price(_ pack: CreditPack) -> Priced {
        Priced(credits: pack.credits, line: InvoiceLine(description: "\(pack.name) (\(pack.credits) credits)", quantity: Credits(1), unitPrice: pack.price),
               expiresAfterDays: pack.expiresAfterDays)
    }

    public func purchase(orgID: UUID, at now: Instant, _ request: PurchaseRequest, claim: IdempotencyClaim?,
                         render: ResponseRenderer<PurchaseOutcome>) async throws -> StoredResponse {
        let priced = try await price(request, orgID: orgID)
        return try await database.idempotentTransaction(orgID: orgID, claim: claim, at: now, render: render) { connection in
            var write = LedgerWrite(orgID: orgID)
            try await BucketQueries.checkRoom(for: priced.credits, orgID: orgID, on: connection, logger: database.logger)
            let outcome = try await Self.buy(priced, orgID: orgID, at: now, into: &write, on: connection, logger: database.logger)
            return (outcome, write)
        }
    }

    /// The bucket (priority 30, the item's expiry) and the open purchase invoice.
    static func buy(_ priced: Priced, orgID: UUID, at now: Instant, into write: inout LedgerWrite,
                    on connection: DatabaseConnection, logger: Logger) async throws -> PurchaseOutcome {
        let expiresAt = priced.expiresAfterDays.map { now.adding(days: $0) }
        let (bucketID, entryID) = write.grant(.purchase, credits: priced.credits, expiresAt: expiresAt, at: now, reason: priced.line.description)
        let invoice = try await InvoiceStore.issue(
            NewInvoice(id: .v7(at: now), kind: .purchase, currency: priced.line.unitPrice.currency, lines: [priced.line]),
            orgID: orgID, status: .open, at: now, on: connection, logger: logger
        )
        return PurchaseOutcome(bucketID: bucketID, entryID: entryID, credits: priced.credits, expiresAt: expiresAt, invoice: invoice)
    }

    /// Auto top-up, inside the spend that left the balance below the threshold: buys the pack at
    /// most once per hour. The claim on the hour is one conditional update of the organisation
    /// row, so concurrent spends that cross the threshold together buy one pack between them; a
    /// failed attempt is recorded and not retried until the hour has passed.
    static let autoTopUpIntervalSeconds: Int64 = 3600

    /// Why a top-up is considered: a balance below the threshold (after a spend, or found by the
    /// cron), or a spend the credits do not cover (it buys first, then the spend goes through).
    enum AutoTopUpCause {
        case balance(Credits)
        case shortfall
    }

    static func autoTopUp(_ terms: SpendTerms.AutoTopUp, cause: AutoTopUpCause, orgID: UUID, triggeredBy entryID: UUID?, at now: Instant,
                          into write: inout LedgerWrite, on connection: DatabaseConnection, logger: Logger) async throws -> PurchaseOutcome? {
        if case .balance(let available) = cause, available >= terms.thresholdCredits { return nil }
        let claimed = try await connection.query("""
            UPDATE orgs SET last_auto_topup_at = \(now)
            WHERE org_id = \(orgID) AND auto_topup_enabled
              AND (last_auto_topup_at IS NULL OR last_auto_topup_at <= \(now.adding(seconds: -autoTopUpIntervalSeconds)))
            RETURNING 1
            """, logger: logger).collect()
        guard !claimed.isEmpty else { return nil }
        let topUpID = UUID.v7(at: now)
        let packs = try await connection.query("""
            SELECT \(unescaped: PackRows.columns) FROM credit_packs WHERE code = \(terms.packCode)
            """, logger: logger).collect()
        guard let row = packs.first, let pack = try? PackRows.decode(row) else {
            write.with { sql in
                """
                INSERT INTO auto_topups (org_id, topup_id, pack_code, status, error, triggered_by, created_at)
                VALUES (\(sql.bind(orgID)), \(sql.bind(topUpID)), \(sql.bind(terms.packCode)), 'failed',
                        \(sql.bind("the credit pack '\(terms.packCode)' does not exist")), \(sql.bind(entryID)), \(sql.bind(now)))
                """
            }
            write.emit(.autoTopUpFailed, data: .object([("pack", .string(terms.packCode)),
                                                         ("error", .string("the credit pack '\(terms.packCode)' does not exist"))]), at: now)
            logger.warning("auto top-up failed", metadata: ["org.id": "\(orgID.idString)", "pack": "\(terms.packCode)"])
            return nil
        }
        let outcome = try await buy(price(pack), orgID: orgID, at: now, into: &write, on: connection, logger: logger)
        write.with { sql in
            """
            INSERT INTO auto_topups (org_id, topup_id, pack_code, status, invoice_id, bucket_id, triggered_by, created_at)
            VALUES (\(sql.bind(orgID)), \(sql.bind(topUpID)), \(sql.bind(pack.code)), 'succeeded', \(sql.bind(outcome.invoice.id)),
                    \(sql.bind(outcome.bucketID)), \(sql.bind(entryID)), \(sql.bind(now)))
            """
        }
        return outcome
    }
}
