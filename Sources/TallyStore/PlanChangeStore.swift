import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

public struct PlanChangeRequest: Sendable {
    public enum Effective: String, Sendable { case immediate, periodEnd = "period_end" }
    public let planCode: String
    public let effective: Effective
    public let preview: Bool

    public init(planCode: String, effective: Effective, preview: Bool) {
        self.planCode = planCode
        self.effective = effective
        self.preview = preview
    }
}

/// What a plan change did (or, previewed, would do).
public struct PlanChangeOutcome: Sendable, Equatable {
    public let effective: PlanChangeRequest.Effective
    public let preview: Bool
    public let plan: String
    public let effectiveAt: Instant
    public let charge: Money?
    public let creditsCarried: Credits
    public let creditsGranted: Credits
    public let periodStart: Instant
    public let periodEnd: Instant
    public let invoiceID: UUID?
    public let subscription: Subscription
}

extension SubscriptionStore {
    /// An admin's plan change: now, or at the end of the period (applied by renewal; a later
    /// change replaces it). A preview runs the very same transaction and rolls it back, so what
    /// it shows is exactly what the change would do.
    /// Exactly once per idempotency key; a preview writes nothing, not even its key.
    public func change(orgID: UUID, _ request: PlanChangeRequest, at now: Instant,
                       claim: IdempotencyClaim? = nil, render: ResponseRenderer<PlanChangeOutcome>) async throws -> StoredResponse {
        guard let plan = try await catalog.plan(request.planCode) else {
            throw TallyError.validation("There is no plan '\(request.planCode)'.", field: "plan")
        }
        struct Preview: Error { let outcome: PlanChangeOutcome }
        do {
            return try await database.idempotentWork(orgID: orgID, claim: request.preview ? nil : claim, at: now, render: render) { connection in
                let outcome = switch request.effective {
                case .immediate: try await changeNow(orgID: orgID, to: plan, at: now, preview: request.preview, on: connection)
                case .periodEnd: try await schedule(orgID: orgID, to: plan, at: now, preview: request.preview, on: connection)
                }
                if request.preview { throw Preview(outcome: outcome) }
                return outcome
            }.0
        } catch let preview as Preview {
            let (status, bytes) = try render(.success(preview.outcome))
            return StoredResponse(status: status, body: bytes, replayed: false)
        }
    }

    private func changeNow(orgID: UUID, to plan: Plan, at now: Instant, preview: Bool, on connection: DatabaseConnection) async throws -> PlanChangeOutcome {
        let logger = database.logger
        let subscription = try await Self.lockLive(orgID: orgID, on: connection, logger: logger)
        guard subscription.planCode != plan.code else {
            throw TallyError.conflict("same_plan", "The subscription is already on plan '\(plan.code)'.")
        }
        guard subscription.period.start < now else {
            throw TallyError.conflict("change_too_soon", "The subscription already started or changed at this instant; try again later (or advance the test clock).")
        }
        let timezone = try await Self.timezone(orgID: orgID, on: connection, logger: logger)
        let (remaining, earliestGrant) = try await Self.lockPlanCredits(orgID: orgID, subscriptionID: subscription.id, endingAt: nil, spendableAt: now,
                                                       on: connection, logger: logger)
        let calendar = BillingCalendar(anchor: now, interval: plan.interval, timeZone: timezone)
        let change = PlanChange.immediate(to: plan, at: now, remainingPlanCredits: remaining, calendar: calendar)

        var write = LedgerWrite(orgID: orgID)
        _ = Self.carry(change.carriedFrom, grantedAt: earliestGrant, subscriptionID: subscription.id, periodStart: change.newPeriod.start,
                       expiresAt: change.carriedExpiresAt, at: now, reason: "carried into the \(plan.name) plan", into: &write)
        if change.allocation.isPositive {
            write.grant(.planAllocation, credits: change.allocation, effectiveAt: now, expiresAt: change.allocationExpiresAt, at: now,
                        reason: "\(plan.name): plan change", subscriptionID: subscription.id, periodStart: change.newPeriod.start)
        }
        PeriodBilling.openPeriod(change.newPeriod, subscriptionID: subscription.id, allocation: change.allocation, orgID: orgID, into: &write)
        write.emit(.subscriptionChanged, data: Self.changed("plan_changed", subscriptionID: subscription.id, from: subscription.planCode,
                                                            to: plan.code, effectiveAt: now), at: now)
        write.with { sql in
            """
            UPDATE subscriptions SET plan_code = \(sql.bind(plan.code)), scheduled_plan_code = NULL, cancel_at_period_end = false,
                anchor_at = \(sql.bind(now)), period_index = 0, current_period_start = \(sql.bind(change.newPeriod.start)),
                current_period_end = \(sql.bind(change.newPeriod.end)), \(Self.changedBy(now, sql: &sql))
            WHERE org_id = \(sql.bind(orgID)) AND subscription_id = \(sql.bind(subscription.id))
            """
        }
        try await write.execute(on: connection, logger: logger)
        try await PeriodBilling.finalizeOverage(subscriptionID: subscription.id, periodStart: subscription.period.start, orgID: orgID,
                                                at: now, on: connection, logger: logger)
        let invoice = try await Self.charge(plan, for: subscription.id, period: change.newPeriod, orgID: orgID, at: now, on: connection, logger: logger)
        let changed = Subscription(id: subscription.id, orgID: orgID, planCode: plan.code, status: .active, anchor: now, period: change.newPeriod,
                                   cancelAtPeriodEnd: false, scheduledPlanCode: nil, createdAt: subscription.createdAt, canceledAt: nil)
        return PlanChangeOutcome(effective: .immediate, preview: preview, plan: plan.code, effectiveAt: now, charge: change.charge,
                                 creditsCarried: change.carried, creditsGranted: change.allocation, periodStart: change.newPeriod.start,
                                 periodEnd: change.newPeriod.end, invoiceID: preview ? nil : invoice?.id, subscription: changed)
    }

    private func schedule(orgID: UUID, to plan: Plan, at now: Instant, preview: Bool, on connection: DatabaseConnection) async throws -> PlanChangeOutcome {
        let logger = database.logger
        let subscription = try await Self.lockLive(orgID: orgID, on: connection, logger: logger)
        // Scheduling the current plan withdraws a scheduled change.
        let scheduled = plan.code == subscription.planCode ? nil : plan.code
        try await EventOutbox.emit(.subscriptionChanged, data: Self.changed(scheduled == nil ? "schedule_withdrawn" : "plan_change_scheduled",
                                                                            subscriptionID: subscription.id, from: subscription.planCode,
                                                                            to: plan.code, effectiveAt: subscription.period.end),
                                   orgID: orgID, at: now, on: connection, logger: logger)
        try await connection.query("""
            UPDATE subscriptions SET scheduled_plan_code = \(scheduled), cancel_at_period_end = false,
                changed_at = \(now), changed_by_key_id = \(KeyStamp.current?.id), changed_by_key_prefix = \(KeyStamp.current?.prefix)
            WHERE org_id = \(orgID) AND subscription_id = \(subscription.id)
            """, logger: logger)
        let timezone = try await Self.timezone(orgID: orgID, on: connection, logger: logger)
        // On this transaction's connection: a transaction never takes a second one from the pool.
        let currentRows = try await connection.query("SELECT \(unescaped: PlanRows.columns) FROM plans WHERE code = \(subscription.planCode)",
                                                     logger: logger).collect()
        guard let current = try currentRows.first.map(PlanRows.decode) else { throw TallyError.notFound("The current plan") }
        let next = current.interval == plan.interval
            ? BillingCalendar(anchor: subscription.anchor, interval: plan.interval, timeZone: timezone).period(subscription.period.index + 1)
            : BillingCalendar(anchor: subscription.period.end, interval: plan.interval, timeZone: timezone).period(0)
        let changed = Subscription(id: subscription.id, orgID: orgID, planCode: subscription.planCode, status: .active, anchor: subscription.anchor,
                                   period: subscription.period, cancelAtPeriodEnd: false, scheduledPlanCode: scheduled,
                                   createdAt: subscription.createdAt, canceledAt: nil)
        return PlanChangeOutcome(effective: .periodEnd, preview: preview, plan: plan.code, effectiveAt: subscription.period.end,
                                 charge: plan.isFree ? nil : plan.price, creditsCarried: .zero, creditsGranted: plan.creditsPerPeriod,
                                 periodStart: next.start, periodEnd: next.end, invoiceID: nil, subscription: changed)
    }
}
