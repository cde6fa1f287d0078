import Foundation
import Logging
import PostgresNIO
import TallyCore

/// What an operator alerts on that only the database knows, read by bounded queries (partial
/// indexes over the pending and due rows only), every few seconds by `tally serve`, never per scrape.
public struct OperationalCounts: Sendable, Equatable {
    public var webhookDeliveriesPending = 0
    /// How long the oldest delivery that is due has waited to be sent: grows when delivery itself
    /// has stopped, not while an endpoint that is down waits for its next retry.
    public var oldestPendingWebhookSeconds: Int64 = 0
    /// Subscriptions on the real clock whose period ended more than `overdueGraceSeconds` ago.
    public var subscriptionsOverdue = 0

    public static let overdueGraceSeconds: Int64 = 600

    public static func read(from database: Database, at now: Instant) async throws -> OperationalCounts {
        let overdueBefore = now.adding(seconds: -overdueGraceSeconds)
        let rows = try await database.pool.query("""
            SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),
                   (SELECT min(coalesce(next_attempt_at, created_at)) FROM webhook_deliveries
                    WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= \(now))),
                   (SELECT count(*) FROM subscriptions s JOIN orgs o ON o.org_id = s.org_id
                    WHERE s.status = 'active' AND s.current_period_end < \(overdueBefore) AND o.test_clock_id IS NULL)
            """, logger: database.logger).collect()
        guard let row = rows.first else { return OperationalCounts() }
        let (pending, oldest, overdue) = try row.decode((Int, Instant?, Int).self)
        return OperationalCounts(
            webhookDeliveriesPending: pending,
            oldestPendingWebhookSeconds: oldest.map { max(0, (now.microsecondsSinceEpoch - $0.microsecondsSinceEpoch) / 1_000_000) } ?? 0,
            subscriptionsOverdue: overdue
        )
    }
}
