import Foundation
import Logging
import Synchronization

/// A line every few seconds on long CLI work: what is done of how much, and the rate, so that a
/// person (or a cron log) sees `tally jobs run` catching up 100,000 renewals, or `tally verify`
/// walking a large ledger, instead of silence until the end.
final class CLIProgress: Sendable {
    private let what: String
    private let logger: Logger
    private let start = ContinuousClock.now
    private let lastLine = Mutex<ContinuousClock.Instant?>(nil)
    static let interval: Duration = .seconds(3)

    init(_ what: String, logger: Logger) {
        self.what = what
        self.logger = logger
    }

    /// Logs `done` of `total` (unit `unit`) if the last line is older than `interval`, or `final`.
    func report(done: Int, total: Int?, unit: String, final: Bool = false) {
        let now = ContinuousClock.now
        let due = lastLine.withLock { last -> Bool in
            guard final || last.map({ now - $0 >= Self.interval }) ?? (now - start >= Self.interval) else { return false }
            last = now
            return true
        }
        guard due else { return }
        let seconds = max(0.001, Double((now - start).components.seconds) + Double((now - start).components.attoseconds) / 1e18)
        var metadata: Logger.Metadata = ["done": "\(done)", "unit": "\(unit)", "rate_per_second": "\(Int(Double(done) / seconds))",
                                         "elapsed_seconds": "\(Int(seconds))"]
        if let total { metadata["total"] = "\(total)" }
        logger.info("\(what): \(done)\(total.map { " of \($0)" } ?? "") \(unit)", metadata: metadata)
    }
}
