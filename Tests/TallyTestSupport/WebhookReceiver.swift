import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// A real HTTP server on 127.0.0.1 and a free port that records every webhook it receives and
/// answers 500 to the first `failFirst` of them.
public final class WebhookReceiver: @unchecked Sendable {
    public struct Received: Sendable {
        public let body: [UInt8]
        /// Header values by lower-cased name.
        public let headers: [String: String]

        public func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    private let lock = NSLock()
    private var received: [Received] = []
    private var failuresLeft: Int
    private let redirectTo: String?

    /// `redirectTo`: answer every request `302 Location: redirectTo` (after recording it).
    public init(failFirst: Int = 0, redirectTo: String? = nil) {
        failuresLeft = failFirst
        self.redirectTo = redirectTo
    }

    public var requests: [Received] { lock.withLock { received } }

    fileprivate func record(_ request: Received) -> Bool {
        lock.withLock {
            received.append(request)
            if failuresLeft > 0 {
                failuresLeft -= 1
                return false
            }
            return true
        }
    }

    /// Runs the receiver for the duration of `body`, which gets its URL.
    public func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        router.post("/hooks") { request, _ -> Response in
            var request = request
            let buffer = try await request.collectBody(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
            let ok = self.record(Received(body: Array(buffer.readableBytesView), headers: headers))
            if let target = self.redirectTo {
                return Response(status: .found, headers: [.location: target])
            }
            return Response(status: ok ? .ok : .internalServerError)
        }
        let portBox = PortBox()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { await portBox.set($0.localAddress?.port ?? 0) }, logger: testLogger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: testLogger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await portBox.wait()
            let result: Result<T, any Error>
            do {
                result = .success(try await body("http://127.0.0.1:\(port)/hooks"))
            } catch {
                result = .failure(error)
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try result.get()
        }
    }
}
