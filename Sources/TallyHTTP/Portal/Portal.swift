import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TallyCore
import TallyJSON
import TallyStore

/// The credits portal (API.md "Credits portal"): server-rendered pages for one organisation,
/// reached through a portal session's link. Every page acts through the same `orgScope` and
/// stores as the API, with the session's organisation and role as the caller.
enum Portal {
    static let cookieName = "tally_portal"

    static func path(_ orgID: UUID) -> String { "/portal/\(orgID.idString)" }

    /// The organisation named by a `/portal/{org}/...` path.
    static func orgID(inPath path: String) -> UUID? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0] == "portal" else { return nil }
        return UUID(idString: String(parts[1]))
    }

    /// The token a write form must carry: derived from the session's secret, so another site can
    /// neither read nor forge it (and the cookie is SameSite=Lax besides).
    static func csrfToken(sessionToken: String) -> String {
        Hex.lowercase(KeyMaterial.hash("tally-portal-csrf:" + sessionToken))
    }

    static func sessionToken(_ request: Request) -> String? {
        request.cookies[cookieName]?.value
    }

    /// What every portal answer carries: no caching of account pages, no framing, no scripts,
    /// no referrer to another site (a portal URL must not leak).
    static func secure(_ headers: inout HTTPFields) {
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
    }

    static func html(_ page: HTML, status: HTTPResponse.Status = .ok) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        secure(&headers)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page.text)))
    }

    static func redirect(_ location: String) -> Response {
        var headers: HTTPFields = [.location: location]
        secure(&headers)
        return Response(status: .seeOther, headers: headers)
    }

    /// A page of its own for what stops a portal request (no tabs: the session may be gone).
    static func messagePage(title: String, message: String, status: HTTPResponse.Status) -> Response {
        var response = html("""
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title)</title><link rel="stylesheet" href="\(PortalAssets.stylesheetPath)"></head>
            <body><main id="main"><div class="card" role="alert"><h1>\(title)</h1><p>\(message)</p></div></main></body></html>
            """, status: status)
        if status == .serviceUnavailable { response.headers[.retryAfter] = "1" }
        return response
    }

    static var signedOut: Response {
        messagePage(
        title: "This link is no longer valid",
        message: "Your billing session has expired or was ended. Open the billing page again from the application you came from.",
        status: .unauthorized)
    }
}

/// Turns any error of a portal request into a page (an API client gets problem+json; a person
/// gets words), with the same status the API would answer.
struct PortalErrorMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let (status, problem) = ProblemMiddleware.problem(for: error, context: context)
            let title = switch status.code {
            case 401: "Signed out"
            case 403: "Not available with your access"
            case 404: "Not found"
            case 503: "Briefly unavailable"
            default: "That did not work"
            }
            let message = status.code == 503 ? "Billing is briefly unavailable. Please try again in a moment." : problem.detail
            return Portal.messagePage(title: title, message: message, status: status)
        }
    }
}

/// Admits a portal request when its cookie holds a live session of the organisation in the
/// path: the caller is then that organisation with the session's role, and changes made while
/// serving it record the session (`KeyStamp`).
struct PortalSessionMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext
    let services: AppServices

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let orgID = Portal.orgID(inPath: request.uri.path) else { throw TallyError.notFound("The page") }
        guard let token = Portal.sessionToken(request),
              let session = try await services.stores.portalSessions.session(orgID: orgID, token: token, at: services.clock.now()) else {
            return Portal.signedOut
        }
        var context = context
        context.caller = AuthenticatedKey(keyID: session.id, orgID: orgID, role: session.role, prefix: PortalSessionStore.stampPrefix)
        context.portal = session
        return try await KeyStamp.$current.withValue(session.stamp) { try await next(request, context) }
    }
}

extension Request {
    /// A portal form's fields, after checking its CSRF token and (when sent) its Origin: a write
    /// that another site could have caused is refused (403) before anything is read from it.
    mutating func portalForm(context: TallyRequestContext) async throws -> FormFields {
        let buffer = try await collectBody(upTo: TallyRequestContext.bodySizeLimit)
        let fields = FormFields(String(decoding: buffer.readableBytesView, as: UTF8.self))
        guard let token = Portal.sessionToken(self), let sent = fields["csrf"],
              KeyMaterial.constantTimeEquals(Array(sent.utf8), Array(Portal.csrfToken(sessionToken: token).utf8)) else {
            throw TallyError.forbidden("This form has expired; open the page again and retry.")
        }
        // What the database cannot store (U+0000) is refused as in a JSON body, naming the field.
        if let field = JSONValue.object(fields.values.map { ($0.key, JSONValue.string($0.value)) }).firstUnstorableText() {
            throw TallyError.unstorableText(field: field)
        }
        if let origin = headers[.origin], let host = head.authority,
           origin != "http://\(host)", origin != "https://\(host)" {
            throw TallyError.forbidden("This form was sent from another site.")
        }
        return fields
    }

    /// The query string's fields, decoded the way a GET form sends them.
    var portalQuery: FormFields { FormFields(uri.query ?? "") }
}
