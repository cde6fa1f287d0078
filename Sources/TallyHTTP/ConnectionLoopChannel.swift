import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import TallyStore

/// Hummingbird's HTTP/1 connection, handled with the connection's event loop as the task's
/// executor preference.
///
/// Why: Tally lets NIO's event loops run Swift's global jobs (`Tally.swift`), and NIO runs each
/// such job *on the loop's serial executor*. Every call into a nonisolated async function (the
/// connection's read loop, each middleware, each handler, most of the store) then has to leave
/// that executor for the generic one: a `swift_task_switch` that enqueues a new job on the same
/// loop, behind whatever else is queued there. Counted with uprobes on the Swift runtime
/// (`SYSCALLS=1 PERF_EVENTS=probe_libswift_Concurrency:swift_task_enqueueGlobal make
/// bench-scenario`), that was 57 such jobs for one `/healthz` and 97 for one spend. With the
/// loop as the task's executor preference, the generic executor *is* that loop, so those calls
/// run inline; a hop remains only where the work really moves (to a database connection on
/// another loop, and back).
struct ConnectionLoopChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let base: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor.on(value.channel.eventLoop)) {
            await base.handle(value: value, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// `.http1(configuration:)`, each connection handled on its own event loop (see `ConnectionLoopChannel`).
    static func http1OnConnectionLoops(configuration: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            ConnectionLoopChannel(base: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}
