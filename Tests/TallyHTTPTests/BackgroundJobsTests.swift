import Logging
import ServiceLifecycle
import Testing
import TallyJobs
import TallyTestSupport

@Suite struct BackgroundJobsTests {
    /// `tally serve` exits 0 on SIGTERM only if every service ends without an error when the
    /// graceful shutdown cancels it, in the middle of its one-second pause included.
    @Test func backgroundJobsEndWithoutAnErrorOnGracefulShutdown() async throws {
        try await TestServer.run { server in
            let (rounds, roundEnded) = AsyncStream.makeStream(of: Void.self)
            let jobs = BackgroundJobs(
                runner: JobRunner(stores: server.stores, logger: testLogger),
                deliverer: WebhookDeliverer(store: server.stores.webhooks, allowPrivateTargets: false, clock: server.clock, logger: testLogger),
                clock: server.clock, jobsIntervalSeconds: 1, logger: testLogger, roundEnded: { roundEnded.yield() }
            )
            let group = ServiceGroup(configuration: .init(services: [jobs], logger: testLogger))
            let outcome = await withTaskGroup(of: (any Error)?.self) { tasks in
                tasks.addTask {
                    do { try await group.run(); return nil } catch { return error }
                }
                for await _ in rounds { break }   // the first round is done: the pause comes next
                await group.triggerGracefulShutdown()
                return await tasks.next() ?? nil
            }
            #expect(outcome == nil, "the service group ended with \(String(describing: outcome))")
        }
    }
}
