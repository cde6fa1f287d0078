import Foundation
import HTTPTypes
import Hummingbird
import TallyCore
import TallyStore

/// `POST /v1/orgs/{org}/portal-sessions` (platform key or the organisation's admin): a link to
/// the credits portal for one organisation and one role; `DELETE .../portal-sessions/{session}`
/// ends it at once.
struct PortalSessionsController {
    let services: AppServices
    static let defaultLifetimeSeconds = 3600
    static let lifetimeSeconds = 60...86_400
    static let returnURLLengthMaximum = 2000

    struct CreateRequest: Decodable {
        let role: KeyRole
        let user: String?
        let returnURL: String?
        let ttlSeconds: Int?
    }

    struct SessionResponse: Encodable {
        let id: UUID
        let url: String
        let role: KeyRole
        let user: String?
        let returnURL: String?
        let expiresAt: Instant
    }

    func register(on v1: RouterGroup<TallyRequestContext>) {
        v1.post("/orgs/{org}/portal-sessions") { request, context in
            let scope = try await services.orgScope(context, role: .admin)
            var request = request
            let body = try await request.decode(CreateRequest.self, context: context)
            guard body.role != .platform else { throw TallyError.validation("role must be admin or member.", field: "role") }
            if let user = body.user { try Validate.text(user, field: "user") }
            if let returnURL = body.returnURL { try Self.validateReturnURL(returnURL) }
            let lifetime = body.ttlSeconds ?? Self.defaultLifetimeSeconds
            guard Self.lifetimeSeconds.contains(lifetime) else {
                throw TallyError.validation("ttl_seconds must be between 60 and 86400.", field: "ttl_seconds")
            }
            // Sessions expire on the real clock: a test clock moves billing time, not browser sessions.
            let (session, token) = try await services.stores.portalSessions.create(
                orgID: scope.org.id, role: body.role, user: body.user, returnURL: body.returnURL, lifetimeSeconds: lifetime,
                at: services.clock.now())
            let url = "\(Self.baseURL(request, services: services))\(Portal.path(scope.org.id))/enter/\(token)"
            return try Response.json(SessionResponse(id: session.id, url: url, role: session.role, user: session.user,
                                                     returnURL: session.returnURL, expiresAt: session.expiresAt),
                                     status: .created)
        }
        v1.delete("/orgs/{org}/portal-sessions/{session}") { _, context in
            let scope = try await services.orgScope(context, role: .admin)
            guard let text = context.parameters.get("session"), let id = UUID(idString: text),
                  try await services.stores.portalSessions.revoke(orgID: scope.org.id, sessionID: id, at: services.clock.now()) else {
                throw TallyError.notFound("The portal session")
            }
            return Response(status: .noContent)
        }
    }

    /// Only an absolute http(s) URL without white space (the OpenAPI pattern, exactly): the page
    /// links back to it, so it must never be a script.
    static func validateReturnURL(_ text: String) throws(TallyError) {
        let scalars = Array(text.unicodeScalars)
        let lowered = text.lowercased()
        let prefix = lowered.hasPrefix("https://") ? 8 : lowered.hasPrefix("http://") ? 7 : 0
        // White space as the pattern's `\s` reads it (Python's: Unicode's, and U+001C to U+001F), and NUL.
        let spaceOrNUL = { (scalar: Unicode.Scalar) in scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value) || scalar.value == 0 }
        guard prefix > 0, scalars.count > prefix, scalars.count <= returnURLLengthMaximum, !scalars.contains(where: spaceOrNUL) else {
            throw TallyError.validation("return_url must be an absolute http or https URL of at most \(returnURLLengthMaximum) characters.",
                                        field: "return_url")
        }
    }

    /// `TALLY_PUBLIC_URL`, or the scheme and host this request came to.
    static func baseURL(_ request: Request, services: AppServices) -> String {
        if let publicURL = services.publicURL { return publicURL }
        let host = request.head.authority ?? "127.0.0.1"
        let safeHost = host.unicodeScalars.allSatisfy { $0.properties.isAlphabetic && $0.isASCII || "0123456789.-:[]".unicodeScalars.contains($0) }
        let scheme = request.headers[HTTPField.Name("X-Forwarded-Proto")!] == "https" ? "https" : "http"
        return "\(scheme)://\(safeHost ? host : "127.0.0.1")"
    }
}
