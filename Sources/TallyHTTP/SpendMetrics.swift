import Metrics
import TallyCore
import TallyStore

/// `tally_credits_consumed_total` and `tally_spends_refused_total{code}`: counted once per spend
/// (replays are not counted again), with atomics only.
enum SpendMetrics {
    private static let consumed = FloatingPointCounter(label: "tally_credits_consumed_total")
    private static let insufficient = refusedCounter("insufficient_credits")
    private static let databaseUnavailable = refusedCounter("database_unavailable")
    private static let rateLimited = refusedCounter("rate_limited")

    private static func refusedCounter(_ code: String) -> Counter {
        Counter(label: "tally_spends_refused_total", dimensions: [("code", code)])
    }

    static func answered(_ stored: StoredResponse, credits: Credits) {
        guard !stored.replayed else { return }
        switch stored.status {
        case 201: consumed.increment(by: Double(credits.description) ?? 0)
        case 402: insufficient.increment()
        default: break
        }
    }

    static func refusedForDatabase() { databaseUnavailable.increment() }
    static func refusedForRate() { rateLimited.increment() }
}
