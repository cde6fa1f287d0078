import Hummingbird
import TallyCore
import TallyJSON

/// Query parameters and path segments PostgreSQL could not store (U+0000, from `%00`) never
/// reach a handler: one check for every route instead of one per parameter. A query parameter is
/// a 422 naming it; a path segment names no resource there can be, so it is a 404. Bodies are
/// checked where they are parsed (`Request.jsonBody`), headers where they are read
/// (`Idempotency-Key` accepts visible ASCII only).
struct TextSafetyMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        for (name, value) in request.uri.queryParameters where !JSONValue.isStorable(name) || !JSONValue.isStorable(value) {
            throw TallyError.unstorableText(field: JSONValue.isStorable(name) ? String(name) : "query")
        }
        // Only an escaped path can hold U+0000 (and Foundation's decoding is costly on every request).
        if request.uri.path.utf8.contains(UInt8(ascii: "%")), let path = request.uri.path.removingPercentEncoding, !JSONValue.isStorable(path) {
            throw TallyError.notFound("The resource")
        }
        return try await next(request, context)
    }
}

extension TallyError {
    static func unstorableText(field: String) -> TallyError {
        TallyError(.unprocessable, code: "invalid_text", detail: "\(field) holds a character that cannot be stored (U+0000).", field: field)
    }
}
