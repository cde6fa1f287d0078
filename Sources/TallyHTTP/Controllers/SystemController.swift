import Hummingbird
import NIOCore
import TallyCore
import TallyStore

/// `/healthz`, `/readyz`, `/metrics`, `/openapi.json`: unauthenticated operational endpoints.
struct SystemController {
    let services: AppServices

    func register(on router: Router<TallyRequestContext>) {
        router.get("/healthz") { _, _ in
            try Response.json(["status": "ok"])
        }
        router.get("/readyz") { _, context in
            try await readiness(context)
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: TallyMetrics.registry.emitToBuffer())))
        }
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(bytes: services.openAPIDocument)))
        }
    }

    /// Ready when the database answers and every migration of this build is applied. While the
    /// pool knows the database is down this answers at once, without a query.
    func readiness(_ context: TallyRequestContext) async throws -> Response {
        let pool = services.stores.database.pool
        if case .down = pool.health {
            return ProblemMiddleware.response(status: .serviceUnavailable, code: "database_unavailable", detail: "The database does not answer.")
        }
        let (logger, migrations) = (context.logger, services.migrations)
        let current: Bool
        do {
            current = try await withDeadline(seconds: 2, "the readiness check") {
                try await MigrationRunner(pool: pool, logger: logger).isCurrent(migrations)
            }
        } catch {
            context.logger.warning("readiness check failed", metadata: ["error": "\(String(reflecting: error))"])
            return ProblemMiddleware.response(status: .serviceUnavailable, code: "database_unavailable", detail: "The database does not answer.")
        }
        guard current else {
            return ProblemMiddleware.response(status: .serviceUnavailable, code: "migrations_pending", detail: "The database schema is not current.")
        }
        return try Response.json(["status": "ready"])
    }
}
