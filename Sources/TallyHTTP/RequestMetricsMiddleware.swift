import Dispatch
import HTTPTypes
import Hummingbird
import Metrics
import Synchronization

/// Hummingbird's `MetricsMiddleware` with the same metrics (`hb.requests`,
/// `http.server.request.duration`, `hb.request.errors`, `http.server.active_requests`, same
/// dimensions), but an answer whose body is one buffer keeps it. Hummingbird's wraps every body in
/// a closure to record after the body is written, and a wrapped body leaves Hummingbird's one-write
/// path: the head and the body then go out in two `write` calls, two TCP segments, for every
/// answer (measured: `SYSCALLS=1 make bench-scenario`). Here only a streamed body (no length known
/// in advance: the exports) is wrapped, so its time still counts until its last byte; any other
/// answer is counted when it is ready, which is when its one write starts.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let cache = RequestMetricsCache()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let active = cache.active(request.method)
        active.increment()
        do {
            var response = try await next(request, context)
            let metrics = cache.endpoint(.init(route: context.endpointPath ?? "Unknown", method: request.method, status: response.status))
            let record: @Sendable () -> Void = {
                metrics.requests.increment()
                metrics.duration.recordNanoseconds(DispatchTime.now().uptimeNanoseconds - start)
                active.decrement()
            }
            if response.body.contentLength == nil {
                let body = response.body
                response.body = ResponseBody { writer in
                    try await body.write(writer)
                    record()
                }
            } else {
                record()
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let metrics = cache.endpoint(.init(route: context.endpointPath ?? "NotFound", method: request.method, status: status))
            metrics.requests.increment()
            metrics.errors.increment()
            active.decrement()
            throw error
        }
    }
}

/// The metric handles of each method and of each route, method and status: made once, then
/// looked up (a metrics factory's own lookup by label and dimensions costs more).
final class RequestMetricsCache: Sendable {
    struct Endpoint: Hashable {
        let route: String
        let method: HTTPRequest.Method
        let status: HTTPResponse.Status
    }

    struct EndpointMetrics: Sendable {
        let requests: Counter
        let duration: Metrics.Timer
        let errors: Counter

        init(_ id: Endpoint) {
            let dimensions = [("http.route", id.route), ("http.request.method", id.method.description),
                              ("http.response.status_code", id.status.code.description)]
            requests = Counter(label: "hb.requests", dimensions: dimensions)
            duration = Metrics.Timer(label: "http.server.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds)
            errors = Counter(label: "hb.request.errors", dimensions: [("http.route", id.route), ("http.request.method", id.method.description),
                                                                     ("error.type", id.status.code.description)])
        }
    }

    private let methods = Mutex<[HTTPRequest.Method: Meter]>([:])
    private let endpoints = Mutex<[Endpoint: EndpointMetrics]>([:])

    func active(_ method: HTTPRequest.Method) -> Meter {
        methods.withLock { map in
            if let meter = map[method] { return meter }
            let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.description)])
            map[method] = meter
            return meter
        }
    }

    func endpoint(_ id: Endpoint) -> EndpointMetrics {
        endpoints.withLock { map in
            if let metrics = map[id] { return metrics }
            let metrics = EndpointMetrics(id)
            map[id] = metrics
            return metrics
        }
    }
}
