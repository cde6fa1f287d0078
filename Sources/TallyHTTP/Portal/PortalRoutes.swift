import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TallyCore
import TallyStore

/// The portal's routes: its stylesheet, the link that starts a session, and the pages (behind
/// the session's cookie). A page answers with a page, an error too.
struct PortalRoutes {
    let services: AppServices

    func register(on router: Router<TallyRequestContext>) {
        let portal = router.group("/portal").add(middleware: PortalErrorMiddleware())
        portal.get("/assets/portal.css") { _, _ in
            var headers: HTTPFields = [.contentType: "text/css; charset=utf-8", .cacheControl: "public, max-age=3600"]
            headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: PortalAssets.stylesheet)))
        }
        portal.get("/{org}/enter/{token}") { request, context in
            try await enter(request, context)
        }
        portal.get("/{org}") { request, _ in
            guard let orgID = Portal.orgID(inPath: request.uri.path) else { throw TallyError.notFound("The page") }
            return Portal.redirect("\(Portal.path(orgID))/credits")
        }

        let pages = portal.group("/{org}").add(middleware: PortalSessionMiddleware(services: services))
        let credits = CreditsPage(services: services)
        let purchase = PurchasePage(services: services)
        let subscription = SubscriptionPage(services: services)
        let billing = BillingPage(services: services)
        let settings = SettingsPage(services: services)
        let confirm = ConfirmPage(services: services)
        pages.get("/credits") { try await credits.render($0, $1) }
        pages.get("/usage/export") { try await export($0, $1) }
        pages.get("/purchase") { try await purchase.choose($0, $1) }
        pages.get("/purchase/review") { try await purchase.review($0, $1) }
        pages.post("/purchase") { try await purchase.buy($0, $1) }
        pages.get("/subscription") { try await subscription.render($0, $1) }
        pages.get("/subscription/change") { try await subscription.changePreview($0, $1) }
        pages.post("/subscription/change") { try await subscription.change($0, $1) }
        pages.get("/subscription/cancel") { try await subscription.cancelPreview($0, $1) }
        pages.post("/subscription/cancel") { try await subscription.cancel($0, $1) }
        pages.get("/billing") { try await billing.render($0, $1) }
        pages.get("/invoices/{invoice}") { try await billing.invoice($0, $1) }
        pages.get("/settings") { try await settings.render($0, $1) }
        pages.post("/settings") { try await settings.save($0, $1) }
        pages.get("/confirm") { try await confirm.render($0, $1) }
        pages.post("/signout") { try await signOut($0, $1) }
    }

    /// The session's link: sets the cookie (HttpOnly, SameSite=Lax, Secure over HTTPS, scoped to
    /// this organisation's pages, gone when the session expires) and goes to the Credits tab, or
    /// to `?next=` (a page of the portal, e.g. `confirm?operation=ai_analysis&quantity=20`).
    private func enter(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let now = services.clock.now()
        guard let orgID = Portal.orgID(inPath: request.uri.path), let token = context.parameters.get("token"),
              let session = try await services.stores.portalSessions.session(orgID: orgID, token: token, at: now) else {
            return Portal.signedOut
        }
        let base = Portal.path(orgID)
        var response = Portal.redirect("\(base)/\(Self.safeNext(request.portalQuery["next"]) ?? "credits")")
        let secure = services.publicURL?.lowercased().hasPrefix("https://") == true
            || request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
        let seconds = max(1, Int(session.expiresAt.secondsSinceEpoch - now.secondsSinceEpoch))
        response.setCookie(Cookie(name: Portal.cookieName, value: token, maxAge: seconds, path: base, secure: secure, httpOnly: true, sameSite: .lax))
        return response
    }

    /// A page of this portal only: lowercase path segments and a query, never another site.
    static func safeNext(_ next: String?) -> String? {
        guard let next, next.utf8.count <= 1000 else { return nil }
        let path = next.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard !path.isEmpty, path.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || $0 == "/" }), !path.hasPrefix("/"),
              !path.contains("//"), !next.unicodeScalars.contains(where: { $0.value < 0x21 || $0 == "\\" || $0 == "#" }) else {
            return nil
        }
        return next
    }

    private func export(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services)
        let format = request.portalQuery["format"] ?? "json"
        guard format == "json" || format == "csv" else { throw TallyError.validation("format must be json or csv.", field: "format") }
        var response = UsageExport(reports: services.stores.reports, orgID: page.scope.org.id, from: nil, to: nil, csv: format == "csv").download()
        Portal.secure(&response.headers)
        return response
    }

    private func signOut(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        var request = request
        _ = try await request.portalForm(context: context)
        guard let orgID = Portal.orgID(inPath: request.uri.path), let token = Portal.sessionToken(request) else { return Portal.signedOut }
        try await services.stores.portalSessions.revoke(orgID: orgID, token: token, at: services.clock.now())
        var response = Portal.messagePage(title: "Signed out", message: "You have signed out of billing. Open it again from your application.",
                                          status: .ok)
        response.setCookie(Cookie(name: Portal.cookieName, value: "signed-out", maxAge: 0, path: Portal.path(orgID), httpOnly: true, sameSite: .lax))
        return response
    }
}
