import Logging
import ServiceLifecycle
import TallyCore
import TallyStore

/// What `tally serve` runs beside the API: webhook deliveries every second, and every due job
/// each `jobsIntervalSeconds` (the same work as `tally jobs run`; running both is safe). Stops
/// on graceful shutdown.
public struct BackgroundJobs: Service {
    let runner: JobRunner
    let deliverer: WebhookDeliverer
    let clock: any WallClock
    let jobsIntervalSeconds: Int?
    let logger: Logger
    let startAfter: AsyncStream<Void>?
    /// Hears the end of each round, just before the pause (tests wait on it instead of sleeping).
    let roundEnded: (@Sendable () -> Void)?

    /// `startAfter`: the jobs wait for its first element (the migrations are applied) or its end.
    public init(runner: JobRunner, deliverer: WebhookDeliverer, clock: any WallClock, jobsIntervalSeconds: Int?, logger: Logger,
                startAfter: AsyncStream<Void>? = nil, roundEnded: (@Sendable () -> Void)? = nil) {
        self.roundEnded = roundEnded
        self.runner = runner
        self.deliverer = deliverer
        self.clock = clock
        self.jobsIntervalSeconds = jobsIntervalSeconds
        self.logger = logger
        self.startAfter = startAfter
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            if let startAfter {
                for await _ in startAfter { break }
            }
            // The scheduled jobs run at start, then every `jobsIntervalSeconds`.
            var jobsDueAt = ContinuousClock.now
            var sampleDueAt = ContinuousClock.now
            var backoff = Backoff()
            while !Task.isCancelled {
                do {
                    try await JobMetrics.timed("webhooks") { try await deliverer.deliverDue() }
                    if ContinuousClock.now >= sampleDueAt {
                        sampleDueAt = ContinuousClock.now + .seconds(15)
                        JobMetrics.record(try await OperationalCounts.read(from: runner.stores.database, at: clock.now()))
                    }
                    if let interval = jobsIntervalSeconds, ContinuousClock.now >= jobsDueAt {
                        let report = try await runner.runOnce(at: clock.now())
                        jobsDueAt = ContinuousClock.now + .seconds(interval)
                        logger.debug("scheduled jobs ran", metadata: ["report": "\(report)"])
                    }
                    if backoff.failures > 0 {
                        logger.notice("background jobs running again", metadata: ["jobs.failed_runs": "\(backoff.failures)"])
                    }
                    backoff.reset()
                } catch is CancellationError {
                    return
                } catch {
                    // Once per outage, not once per second: later failures of the same run are quiet.
                    if backoff.failures == 0 {
                        logger.error("background jobs failed; retrying with back-off", metadata: ["error": "\(String(reflecting: error))"])
                    }
                    backoff.failed()
                }
                roundEnded?()
                // Shutdown cancels the sleep: that is a normal stop, not a failure of the service.
                do { try await Task.sleep(for: backoff.delay) } catch { return }
            }
        }
    }
}

/// One second between runs while they succeed; after failures 2, 4, 8 ... up to 30 seconds.
struct Backoff {
    private(set) var failures = 0

    var delay: Duration {
        guard failures > 0 else { return .seconds(1) }
        return .seconds(min(30, 1 << min(failures, 5)))
    }

    mutating func failed() { failures += 1 }
    mutating func reset() { failures = 0 }
}
