import Dispatch
import Foundation
import Logging

/// The hard end of a graceful shutdown: once SIGTERM (or SIGINT) arrives, the process exits with
/// status 0 after `seconds` even if something still waits (a request on a database that went
/// away, a webhook that never answers). PostgreSQL rolls back whatever was in flight, so nothing
/// is half-written; every acknowledged spend was committed before its answer.
final class ShutdownDeadline {
    private let sources: [any DispatchSourceSignal]

    init(seconds: Int, logger: Logger) {
        let queue = DispatchQueue(label: "tally.shutdown-deadline")
        sources = [SIGTERM, SIGINT].map { number in
            // ServiceLifecycle ignores the signal too and watches it with its own source.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                queue.asyncAfter(deadline: .now() + .seconds(seconds)) {
                    logger.warning("shutdown did not finish in time; exiting", metadata: ["shutdown.seconds": "\(seconds)"])
                    exit(0)
                }
            }
            source.resume()
            return source
        }
    }

    func disarm() {
        for source in sources { source.cancel() }
    }
}
