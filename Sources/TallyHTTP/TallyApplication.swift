import Hummingbird
import Logging
import ServiceLifecycle
import TallyCore
import TallyStore

/// Builds Tally's router: operational endpoints at the root, the API under `/v1` behind auth.
public enum TallyApplication {
    public static func router(services: AppServices) -> Router<TallyRequestContext> {
        TallyMetrics.bootstrap()
        let router = Router(context: TallyRequestContext.self)
        router.middlewares.add(RequestLogMiddleware())
        router.middlewares.add(RequestMetricsMiddleware())
        router.middlewares.add(ProblemMiddleware())
        router.middlewares.add(TextSafetyMiddleware())
        SystemController(services: services).register(on: router)

        let v1 = router.group("/v1").add(middleware: AuthMiddleware(platformKey: services.platformKey, keys: services.stores.keys,
                                                             rateLimits: services.rateLimits, rateLimiter: services.rateLimiter))
        OrgsController(services: services).register(on: v1)
        APIKeysController(services: services).register(on: v1)
        CreditsController(services: services).register(on: v1)
        CatalogController(services: services).register(on: v1)
        SubscriptionController(services: services).register(on: v1)
        MoneyController(services: services).register(on: v1)
        SettingsController(services: services).register(on: v1)
        ReportsController(services: services).register(on: v1)
        WebhooksController(services: services).register(on: v1)
        PortalSessionsController(services: services).register(on: v1)
        PortalRoutes(services: services).register(on: router)
        // Router middlewares wrap every route and the not-found answer, whenever they are added.
        router.middlewares.add(MethodNotAllowedMiddleware(routes: router.routes.map { ($0.path.description, $0.method) }))
        return router
    }

    public static func application(
        services: AppServices,
        host: String,
        port: Int,
        backgroundServices: [any Service],
        logger: Logger,
        beforeServerStarts: @escaping @Sendable () async throws -> Void = {},
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        headTimeoutSeconds: Int64 = 10
    ) -> some ApplicationProtocol {
        var application = Application(
            router: router(services: services),
            server: .http1(configuration: .init(
                // A request head within 10 s of the connection or of the previous response (the
                // keep-alive wait too), its body within 30 s; any connection silent for 60 s closes.
                additionalChannelHandlers: [ConnectionDeadlineHandler(headTimeout: .seconds(headTimeoutSeconds), bodyTimeout: .seconds(30))],
                idleTimeout: .seconds(60)
            )),
            configuration: .init(address: .hostname(host, port: port), serverName: "tally"),
            services: backgroundServices + revocationFollowers(services, logger: logger),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
        application.beforeServerStarts(perform: beforeServerStarts)
        return application
    }

    /// Keys are cached only while revocations are followed, on a connection of its own; behind a
    /// transaction pooler LISTEN does not hold, so every request looks its key up.
    static func revocationFollowers(_ services: AppServices, logger: Logger) -> [any Service] {
        let pool = services.stores.database.pool
        guard pool.settings.pooler != .transaction else { return [] }
        return [RevocationFollower(cache: services.stores.keys.cache, pool: pool, logger: logger)]
    }
}

/// Runs `APIKeyCache.followRevocations` for the life of the server.
struct RevocationFollower: Service {
    let cache: APIKeyCache
    let pool: DatabasePool
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await cache.followRevocations(on: pool, logger: logger)
        }
    }
}

/// One structured log line per request: method, route, status, duration, request id.
/// Headers (and so keys) are never logged.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        response.headers[.init("X-Request-Id")!] = context.id
        context.logger.info("request", metadata: [
            "http.method": "\(request.method)",
            "http.route": "\(context.endpointPath ?? request.uri.path)",
            "http.status": "\(response.status.code)",
            "duration_ms": "\((milliseconds * 1000).rounded() / 1000)",
        ])
        return response
    }
}
