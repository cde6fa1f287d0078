import Metrics
import TallyStore

/// The jobs' Prometheus metrics: `tally_job_runs_total{task,outcome}`, `tally_job_duration_seconds{task}` (not `job`: Prometheus keeps that label for the scrape job),
/// `tally_idempotency_keys_deleted_total`, and the gauges `tally serve` samples from the database.
public enum JobMetrics {
    static func timed<T>(_ job: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            record(job, outcome: "ok", since: start)
            return result
        } catch {
            record(job, outcome: "failed", since: start)
            throw error
        }
    }

    private static func record(_ job: String, outcome: String, since start: ContinuousClock.Instant) {
        Counter(label: "tally_job_runs_total", dimensions: [("task", job), ("outcome", outcome)]).increment()
        let elapsed = ContinuousClock.now - start
        Metrics.Timer(label: "tally_job_duration_seconds", dimensions: [("task", job)])
            .recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    static func idempotencyKeysDeleted(_ count: Int) {
        Counter(label: "tally_idempotency_keys_deleted_total").increment(by: count)
    }

    static func record(_ counts: OperationalCounts) {
        Gauge(label: "tally_webhook_deliveries_pending").record(counts.webhookDeliveriesPending)
        Gauge(label: "tally_webhook_oldest_pending_seconds").record(counts.oldestPendingWebhookSeconds)
        Gauge(label: "tally_subscriptions_overdue").record(counts.subscriptionsOverdue)
    }
}
