import Foundation
import Hummingbird
import TallyCore
import TallyStore

/// One portal request's view of its organisation: the session, the scope the API would use,
/// and the page frame (header, tabs, main).
struct PortalPage {
    enum Tab: String, CaseIterable {
        case credits, subscription, billing, settings

        var title: String {
            switch self {
            case .credits: "Credits"
            case .subscription: "Subscription"
            case .billing: "Billing & Transactions"
            case .settings: "Settings"
            }
        }
    }

    let session: PortalSession
    let scope: OrgScope
    let csrf: String
    let base: String

    var isAdmin: Bool { session.role == .admin }
    var timezone: String { scope.org.timezone }

    /// The page's session and organisation, for a role of at least `role` (403 below it, as the API).
    static func open(_ request: Request, _ context: TallyRequestContext, services: AppServices, role: KeyRole = .member) async throws -> PortalPage {
        guard let session = context.portal, let token = Portal.sessionToken(request) else { throw TallyError.notFound("The page") }
        let scope = try await services.orgScope(context, role: role)
        return PortalPage(session: session, scope: scope, csrf: Portal.csrfToken(sessionToken: token), base: Portal.path(scope.org.id))
    }

    /// The hidden field every write form carries.
    var csrfField: HTML { "<input type=\"hidden\" name=\"csrf\" value=\"\(csrf)\">" }

    func date(_ instant: Instant) -> String { Display.date(instant, timezone: timezone) }
    func dateTime(_ instant: Instant) -> String { Display.dateTime(instant, timezone: timezone) }

    /// The whole document: header with the organisation and who is signed in, the tabs, then `main`.
    func render(_ tab: Tab, title: String, notice: HTML = .empty, _ main: HTML, status: HTTPResponse.Status = .ok) -> Response {
        let tabs = Tab.allCases.filter { $0 != .settings || isAdmin }.map { item -> HTML in
            let current: HTML = item == tab ? " aria-current=\"page\"" : ""
            return "<a href=\"\(base)/\(item.rawValue)\"\(current)>\(item.title)</a>"
        }
        let who = [session.user, isAdmin ? "Admin" : "Member"].compactMap { $0 }.joined(separator: " · ")
        let back: HTML = session.returnURL.map { "<a href=\"\($0)\">Back to the application</a> · " } ?? .empty
        return Portal.html("""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · \(scope.org.name)</title><link rel="stylesheet" href="\(PortalAssets.stylesheetPath)"></head>
            <body><a class="skip" href="#main">Skip to content</a>
            <header class="top"><h1>\(scope.org.name)</h1>
            <div class="who">\(back)<span>\(who)</span> · <form method="post" action="\(base)/signout">\(csrfField)<button class="linkish" type="submit">Sign out</button></form></div></header>
            <nav class="tabs" aria-label="Billing sections">\(tabs)</nav>
            <main id="main">\(notice)\(main)</main>
            </body></html>
            """, status: status)
    }

    /// What a form that succeeded says on the page it returns to (`?done=`; only these fixed
    /// texts, so a crafted link cannot put words on the page).
    static func notice(_ query: FormFields) -> HTML {
        let text: String? = switch query["done"] {
        case "purchased": "Thank you: the credits are in your balance and the invoice is under Billing & Transactions."
        case "plan_changed": "Your plan has been changed."
        case "change_scheduled": "Your plan change is scheduled for the end of the current period."
        case "cancel_scheduled": "Your subscription will end at the end of the current period."
        case "canceled": "Your subscription has been canceled."
        case "settings_saved": "Your settings have been saved."
        default: nil
        }
        return text.map { "<div class=\"notice ok\" role=\"status\">\($0)</div>" } ?? .empty
    }

    /// A refusal shown above the page that sent the form.
    static func error(_ message: String) -> HTML { "<div class=\"notice error\" role=\"alert\">\(message)</div>" }
}
