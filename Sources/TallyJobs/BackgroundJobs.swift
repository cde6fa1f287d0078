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

    public init(runner: JobRunner, deliverer: WebhookDeliverer, clock: any WallClock, jobsIntervalSeconds: Int?, logger: Logger) {
        self.runner = runner
        self.deliverer = deliverer
        self.clock = clock
        self.jobsIntervalSeconds = jobsIntervalSeconds
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            // The scheduled jobs run at start, then every `jobsIntervalSeconds`.
            var jobsDueAt = ContinuousClock.now
            while !Task.isCancelled {
                do {
                    try await deliverer.deliverDue()
                    if let interval = jobsIntervalSeconds, ContinuousClock.now >= jobsDueAt {
                        jobsDueAt = ContinuousClock.now + .seconds(interval)
                        let report = try await runner.runOnce(at: clock.now())
                        logger.debug("scheduled jobs ran", metadata: ["report": "\(report)"])
                    }
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("background jobs failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
                }
                // Shutdown cancels the sleep: that is a normal stop, not a failure of the service.
                do { try await Task.sleep(for: .seconds(1)) } catch { return }
            }
        }
    }
}
