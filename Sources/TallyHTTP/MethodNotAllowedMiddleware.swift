import HTTPTypes
import Hummingbird

/// A path Tally serves, asked with a method it does not take: `405 method_not_allowed` with an
/// `Allow` header, instead of the router's 404 (which would say the resource does not exist).
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext

    /// Route patterns ("/v1/orgs/{org}/usage") split into segments, with their methods.
    private let routes: [(segments: [Substring], method: HTTPRequest.Method)]

    init(routes: [(path: String, method: HTTPRequest.Method)]) {
        self.routes = routes.map { (Self.segments($0.path), $0.method) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let path = Self.segments(request.uri.path)
            let allowed = Set(routes.filter { Self.matches($0.segments, path) }.map(\.method.rawValue))
            guard !allowed.isEmpty, !allowed.contains(request.method.rawValue) else { throw error }
            var response = ProblemMiddleware.response(
                status: .methodNotAllowed, code: "method_not_allowed",
                detail: "\(request.method.rawValue) is not allowed here; use \(allowed.sorted().joined(separator: ", ")).")
            response.headers[.allow] = allowed.sorted().joined(separator: ", ")
            return response
        }
    }

    private static func segments(_ path: some StringProtocol) -> [Substring] {
        Substring(path).split(separator: "/", omittingEmptySubsequences: true)
    }

    private static func matches(_ pattern: [Substring], _ path: [Substring]) -> Bool {
        guard pattern.count == path.count else { return false }
        return zip(pattern, path).allSatisfy { pattern, segment in
            pattern.hasPrefix("{") || pattern.hasPrefix(":") || pattern == segment
        }
    }
}
