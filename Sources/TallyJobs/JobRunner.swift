import Foundation
import Logging
import TallyCore
import TallyStore

/// Every scheduled job of Tally. Each is small, bounded and safe to run twice, concurrently or
/// late: the work is keyed and locked in the database.
public struct JobRunner: Sendable {
    public let stores: Stores
    public let logger: Logger
    public let retention: RetentionPolicy
    /// Hears the running count of renewed periods during a long catch-up (`tally jobs run`).
    public let renewalProgress: (@Sendable (Int) -> Void)?

    public init(stores: Stores, logger: Logger, retention: RetentionPolicy = RetentionPolicy(),
                renewalProgress: (@Sendable (Int) -> Void)? = nil) {
        self.stores = stores
        self.logger = logger
        self.retention = retention
        self.renewalProgress = renewalProgress
    }

    public struct Report: Sendable, Equatable, CustomStringConvertible {
        public var renewals = 0
        public var expiredBuckets = 0
        public var expiredHolds = 0
        public var expiryWarnings = 0
        public var topUps = 0
        public var webhookAttempts = 0
        public var retention = RetentionStore.Report()

        public var description: String {
            "renewed \(renewals) period(s), expired \(expiredBuckets) bucket(s), warned of \(expiryWarnings) expiring bucket(s), topped up \(topUps) organisation(s), freed \(expiredHolds) expired hold(s), made \(webhookAttempts) webhook attempt(s), \(retention)"
        }

        static func + (a: Report, b: Report) -> Report {
            Report(renewals: a.renewals + b.renewals, expiredBuckets: a.expiredBuckets + b.expiredBuckets,
                   expiredHolds: a.expiredHolds + b.expiredHolds, expiryWarnings: a.expiryWarnings + b.expiryWarnings, topUps: a.topUps + b.topUps, webhookAttempts: a.webhookAttempts + b.webhookAttempts,
                   retention: a.retention)
        }
    }

    /// One pass of every job due at `now` for organisations on the real clock, then the webhook
    /// deliveries that are due: `tally jobs run`.
    public func runOnce(at now: Instant, deliverer: WebhookDeliverer? = nil) async throws -> Report {
        var report = try await JobMetrics.timed("due") { try await run(.realClock, at: now) }
        if let deliverer { report.webhookAttempts = try await JobMetrics.timed("webhooks") { try await deliverer.deliverDue() } }
        // Last, and bounded: what is past retention goes in batches.
        report.retention = try await JobMetrics.timed("retention") { try await stores.retention.purge(retention, at: now) }
        JobMetrics.idempotencyKeysDeleted(report.retention.idempotencyKeys)
        return report
    }

    /// Every job that falls due for `selection` up to `until`, earliest first, each run at the
    /// moment it fell due: what advancing a test clock does.
    public func runDue(_ selection: OrgSelection, until: Instant) async throws -> Report {
        var report = Report()
        while let due = try await stores.expiry.nextDue(selection, until: until) {
            report = report + (try await run(selection, at: due))
        }
        return report
    }

    /// Renewals first: a period's plan credits are the renewal's to roll over or expire.
    private func run(_ selection: OrgSelection, at now: Instant) async throws -> Report {
        var report = Report()
        report.renewals = try await stores.subscriptions.renewDue(selection, until: now, progress: renewalProgress)
        report.expiredBuckets = try await stores.expiry.expireDue(selection, until: now)
        report.expiredHolds = try await stores.reservations.releaseExpired(selection, at: now)
        report.expiryWarnings = try await stores.expiry.warnExpiring(selection, at: now)
        // Last: after expiries and freed holds, the balance the threshold is compared with is current.
        report.topUps = try await stores.purchases.topUpDue(selection, at: now)
        return report
    }
}
