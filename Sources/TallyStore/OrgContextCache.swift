import Foundation
import Synchronization

/// What an organisation's context was read from, as one text: the row versions (`xmin`) of the
/// organisation, its test clock, its live subscription and that subscription's plan, and the
/// operations' version (sql/0016). Any change to any of them changes it. A spend priced with a
/// context carries its fingerprint, and the spend's transaction compares it with the current one
/// (`ClaimAndLockStatement`): a spend is applied only on the terms its transaction sees.
enum OrgContextFingerprint {
    /// The expression over `orgs` aliased `org`, `test_clocks` `c`, the live subscription `s`
    /// (with its `xmin` as a column when it is a subquery) and `plans` `p`.
    static func expression(org: String) -> String {
        "concat(\(org).xmin, '/', c.xmin, '/', s.xmin, '/', s.subscription_id, '/', p.xmin, '/', (SELECT version FROM catalog_version))"
    }

    /// The rows a context is read from, joined to `orgs` aliased `org`: its test clock `c`, its
    /// live subscription `s` and that subscription's plan `p`. The context read and the spend's
    /// check join the same rows, so they compute the same fingerprint.
    static func sources(org: String) -> String {
        """
        LEFT JOIN test_clocks c ON c.test_clock_id = \(org).test_clock_id
        LEFT JOIN LATERAL (
            SELECT xmin, subscription_id, current_period_start, current_period_end, plan_code FROM subscriptions
            WHERE org_id = \(org).org_id AND status = 'active' LIMIT 1
        ) AS s ON true
        LEFT JOIN plans p ON p.code = s.plan_code
        """
    }
}

/// The contexts last read of the organisations this replica serves, for spends: a spend priced
/// with one skips the context read (a statement of its own before every spend: about 15 % of a
/// spend's cost, `make bench-scenario`), and its transaction checks the context's fingerprint. A
/// context that has changed costs the spend one more turn: it is refused with `SpendTermsChanged`,
/// read again (which replaces it here) and priced again. Never holds a stored answer (replays are
/// found by the spend's claim instead).
public final class OrgContextCache: Sendable {
    /// Beyond this many organisations the cache starts over: a bound on memory, not an eviction policy.
    static let organisationsMaximum = 100_000

    private let contexts = Mutex<[UUID: OrgContext]>([:])

    public init() {}

    public func context(_ orgID: UUID) -> OrgContext? {
        contexts.withLock { $0[orgID] }
    }

    /// Drops the organisation's context: its next spend reads it afresh.
    public func forget(_ orgID: UUID) {
        _ = contexts.withLock { $0.removeValue(forKey: orgID) }
    }

    func keep(_ context: OrgContext) {
        var context = context
        context.storedAnswer = nil
        contexts.withLock { contexts in
            if contexts.count >= Self.organisationsMaximum, contexts[context.org.id] == nil { contexts.removeAll() }
            contexts[context.org.id] = context
        }
    }
}
