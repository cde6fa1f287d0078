import Foundation
import Testing
import TallyCore
import TallyJSON
import TallyStore
import TallyTestSupport

/// A browser of the portal: the session's cookie, and the CSRF token the last page carried.
struct PortalBrowser {
    let server: TestServer
    let org: String
    var cookie: String

    /// Opens a session's link as a browser would: the cookie it sets, then its redirect.
    static func open(_ server: TestServer, org: String, url: String) async throws -> (PortalBrowser, TestResponse) {
        let path = String(url[url.range(of: "/portal/")!.lowerBound...])
        let entered = try await server.request(.GET, path)
        guard entered.status == 303, let setCookie = entered.header("Set-Cookie"), let cookie = setCookie.split(separator: ";").first else {
            throw TestSetupError("entering the portal at \(path): \(entered.status) \(entered.text.prefix(300))")
        }
        return (PortalBrowser(server: server, org: org, cookie: String(cookie)), entered)
    }

    func get(_ page: String, org other: String? = nil) async throws -> TestResponse {
        try await server.request(.GET, "/portal/\(other ?? org)/\(page)", headers: [("Cookie", cookie)])
    }

    /// Posts a form; `csrf: nil` sends the token of the page the form came from.
    func post(_ page: String, _ fields: [(String, String)], csrf: String? = nil, from formPage: String = "credits",
              extraHeaders: [(String, String)] = []) async throws -> TestResponse {
        var token = csrf
        if token == nil { token = try await csrfToken(formPage) }
        let body = (fields + [("csrf", token!)]).map { "\($0)=\($1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }
            .joined(separator: "&")
        return try await server.request(.POST, "/portal/\(org)/\(page)",
                                        headers: [("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")] + extraHeaders,
                                        rawBody: Array(body.utf8))
    }

    func csrfToken(_ page: String) async throws -> String {
        let text = try await get(page).text
        guard let range = text.range(of: #"name="csrf" value=""#) else { throw TestSetupError("no CSRF token on \(page)") }
        return String(text[range.upperBound...].prefix(64))
    }

    /// The value of a hidden field of a page's form.
    static func hidden(_ name: String, in html: String) -> String? {
        guard let range = html.range(of: #"name="\#(name)" value=""#) else { return nil }
        return String(html[range.upperBound...].prefix { $0 != "\"" })
    }
}

extension TestServer {
    func portalSession(_ org: String, role: String, key: String? = nil, extra: String = "") async throws -> TestResponse {
        try await request(.POST, "/v1/orgs/\(org)/portal-sessions", key: key ?? platformKey, json: #"{"role": "\#(role)"\#(extra)}"#)
    }

    func portal(_ org: String, role: String, extra: String = "") async throws -> PortalBrowser {
        let created = try await portalSession(org, role: role, extra: extra)
        guard created.status == 201, let url = created["url"] else { throw TestSetupError("portal session: \(created.status) \(created.text)") }
        return try await PortalBrowser.open(self, org: org, url: url).0
    }
}

@Suite struct PortalTests {
    @Test func aSessionIsOneOrganisationAndOneRoleBehindItsCookie() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg(name: "Acme <Studio>")
            let other = try await server.createOrg(name: "Other")
            _ = try await server.grant(org, "1234.5")
            let created = try await server.portalSession(org, role: "admin", extra: #", "user": "alice@example.com", "return_url": "https://app.example.com/billing""#)
            #expect(created.status == 201)
            let url = try #require(created["url"])
            #expect(url.hasPrefix("http://127.0.0.1:\(server.port)/portal/\(org)/enter/tps_"))
            #expect(created["expires_at"] == server.clock.now().adding(seconds: 3600).description)
            let (browser, entered) = try await PortalBrowser.open(server, org: org, url: url)
            let setCookie = try #require(entered.header("Set-Cookie"))
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Lax") && setCookie.contains("Path=/portal/\(org)"))
            #expect(!setCookie.contains("Secure"))
            #expect(entered.header("Location") == "/portal/\(org)/credits")
            let page = try await browser.get("credits")
            #expect(page.status == 200)
            #expect(page.text.contains("Available Credits") && page.text.contains(">1,234.5<"))
            #expect(page.text.contains("Acme &lt;Studio&gt;") && !page.text.contains("Acme <Studio>"))
            #expect(page.text.contains("Purchase Credits") && page.text.contains("alice@example.com"))
            #expect(page.header("Content-Security-Policy")?.contains("frame-ancestors 'none'") == true)
            #expect(page.header("Cache-Control") == "no-store")
            // The cookie opens only its own organisation's pages.
            #expect(try await browser.get("credits", org: other).status == 401)
            // No cookie, or a made-up one: signed out.
            #expect(try await server.request(.GET, "/portal/\(org)/credits").status == 401)
            #expect(try await server.request(.GET, "/portal/\(org)/credits", headers: [("Cookie", "tally_portal=tps_nothing")]).status == 401)
            #expect(try await server.request(.GET, "/portal/\(org)/enter/tps_nothing").status == 401)
        }
    }

    @Test func whoMayCreateASessionAndWhatItTakes() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let other = try await server.createOrg()
            let admin = try await server.createKey(org: org, role: "admin")
            let member = try await server.createKey(org: org, role: "member")
            let otherAdmin = try await server.createKey(org: other, role: "admin")
            #expect(try await server.portalSession(org, role: "member", key: admin).status == 201)
            #expect(try await server.portalSession(org, role: "member", key: member).status == 403)
            #expect(try await server.portalSession(org, role: "admin", key: otherAdmin).status == 404)
            for bad in [#"{"role": "platform"}"#, #"{"role": "admin", "ttl_seconds": 10}"#, #"{"role": "admin", "ttl_seconds": 100000}"#,
                        #"{"role": "admin", "return_url": "javascript:alert(1)"}"#, #"{"role": "admin", "return_url": "/relative"}"#,
                        #"{"role": "admin", "user": ""}"#, #"{"role": "admin", "extra": 1}"#, #"{}"#] {
                let response = try await server.request(.POST, "/v1/orgs/\(org)/portal-sessions", key: admin, json: bad)
                #expect(response.status == 422 || response.status == 400, "\(bad): \(response.status) \(response.text)")
            }
            #expect(try await server.count("portal_sessions") == 1)
        }
    }

    @Test func expiredAndRevokedSessionsSeeNothing() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let short = try await server.portal(org, role: "admin", extra: #", "ttl_seconds": 60"#)
            let created = try await server.portalSession(org, role: "member")
            let revoked = try await PortalBrowser.open(server, org: org, url: try #require(created["url"])).0
            #expect(try await revoked.get("credits").status == 200)
            #expect(try await server.request(.DELETE, "/v1/orgs/\(org)/portal-sessions/\(try #require(created["id"]))", key: server.platformKey).status == 204)
            #expect(try await revoked.get("credits").status == 401)
            #expect(try await short.get("billing").status == 200)
            server.clock.advance(seconds: 61)
            let expired = try await short.get("billing")
            #expect(expired.status == 401 && expired.text.contains("no longer valid"))
            // Signing out ends the session for good.
            let fresh = try await server.portal(org, role: "member")
            #expect(try await fresh.post("signout", []).status == 200)
            #expect(try await fresh.get("credits").status == 401)
        }
    }

    @Test func aMemberSeesButCannotBuyChangeOrConfigure() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "studio_250")
            let member = try await server.portal(org, role: "member")
            let credits = try await member.get("credits").text
            #expect(credits.contains("Available Credits") && credits.contains("4,570") && !credits.contains("Purchase Credits"))
            let subscription = try await member.get("subscription").text
            #expect(subscription.contains("Studio") && !subscription.contains("Change Plan") && !subscription.contains(">Settings<"))
            for page in ["purchase", "settings", "subscription/change?plan=basic_100&effective=immediate", "subscription/cancel?when=now"] {
                #expect(try await member.get(page).status == 403, "\(page)")
            }
            let invoicesBefore = try await server.invoices(org).count
            let token = try await member.csrfToken("credits")
            let bought = try await member.post("purchase", [("pack", "basic"), ("idempotency_key", UUID().uuidString)], csrf: token)
            #expect(bought.status == 403)
            let changed = try await member.post("subscription/change", [("plan", "basic_100"), ("effective", "immediate"),
                                                                        ("idempotency_key", UUID().uuidString)], csrf: token)
            #expect(changed.status == 403)
            #expect(try await member.post("settings", [("overage_protection", "")], csrf: token).status == 403)
            #expect(try await server.invoices(org).count == invoicesBefore)
            #expect(try await server.available(org) == Credits(4570))
        }
    }

    @Test func aWriteNeedsTheFormsTokenAndOurOrigin() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            let admin = try await server.portal(org, role: "admin")
            let forged = try await admin.post("purchase", [("pack", "basic"), ("idempotency_key", UUID().uuidString)], csrf: String(repeating: "0", count: 64))
            #expect(forged.status == 403)
            let crossSite = try await admin.post("purchase", [("pack", "basic"), ("idempotency_key", UUID().uuidString)],
                                                 extraHeaders: [("Origin", "https://evil.example")])
            #expect(crossSite.status == 403)
            let nul = try await admin.post("purchase", [("pack", "basic\u{0}"), ("idempotency_key", UUID().uuidString)])
            #expect(nul.status == 422 && nul.text.contains("cannot be stored"))
            #expect(try await server.available(org) == .zero)
            #expect(try await server.count("invoices") == 0)
        }
    }

    /// Seed 001 through the page: the preview shows the exact charge and carried credits and
    /// writes nothing; only Confirm changes the plan, and a Confirm sent twice changes it once.
    @Test func aPlanChangeIsPreviewedThenConfirmedOnce() async throws {
        try await TestServer.run(clock: ManualClock("2026-05-06T00:00:00Z")) { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "studio_250")
            _ = try await server.spend(org, "4170")
            server.clock.set("2026-05-08T00:00:00Z")
            let admin = try await server.portal(org, role: "admin")
            let ledgerBefore = try await server.ledgerCount(org)
            let preview = try await admin.get("subscription/change?plan=basic_100&effective=immediate")
            #expect(preview.status == 200)
            #expect(preview.text.contains(#"<dd id="charge">$100.00</dd>"#))
            #expect(preview.text.contains(#"<dd id="carried">400</dd>"#))
            #expect(preview.text.contains("8 Jun 2026"))
            #expect(try await server.ledgerCount(org) == ledgerBefore)
            #expect(try await server.invoices(org).count == 1)
            let key = try #require(PortalBrowser.hidden("idempotency_key", in: preview.text))
            let csrf = try #require(PortalBrowser.hidden("csrf", in: preview.text))
            let fields = [("plan", "basic_100"), ("effective", "immediate"), ("idempotency_key", key)]
            let confirmed = try await admin.post("subscription/change", fields, csrf: csrf)
            #expect(confirmed.status == 303)
            #expect(confirmed.header("Location") == "/portal/\(org)/subscription?done=plan_changed")
            #expect(try await admin.post("subscription/change", fields, csrf: csrf).status == 303)
            #expect(try await server.invoices(org).count == 2)
            #expect(try await server.available(org) == Credits(2100))
            let after = try await admin.get("subscription?done=plan_changed").text
            #expect(after.contains("Your plan has been changed.") && after.contains(#"id="current-plan">Basic<"#))
            #expect(try await server.verify() == [])
        }
    }

    @Test func aPurchaseShowsItsPriceAndIsBoughtOnce() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "pay_as_you_go")
            let admin = try await server.portal(org, role: "admin")
            let below = try await admin.get("purchase/review?credits=999")
            #expect(below.status == 422 && below.text.contains("sells at least 1000 credits"))
            for bad in ["purchase/review?credits=-5", "purchase/review?credits=1.23456", "purchase/review?pack=basic&credits=1500", "purchase/review"] {
                #expect(try await admin.get(bad).status == 422, "\(bad)")
            }
            let review = try await admin.get("purchase/review?credits=1500")
            #expect(review.status == 200 && review.text.contains(#"<dd id="price">$75.00</dd>"#))
            #expect(try await server.available(org) == .zero)
            let key = try #require(PortalBrowser.hidden("idempotency_key", in: review.text))
            let csrf = try #require(PortalBrowser.hidden("csrf", in: review.text))
            for _ in 0..<2 {
                let bought = try await admin.post("purchase", [("credits", "1500"), ("idempotency_key", key)], csrf: csrf)
                #expect(bought.status == 303)
            }
            #expect(try await server.available(org) == Credits(1500))
            let history = try await admin.get("credits?view=purchases&done=purchased").text
            #expect(history.contains("Purchase") && history.contains("+1,500") && history.contains("the credits are in your balance"))
            let billing = try await admin.get("billing").text
            #expect(billing.contains("Credit purchase") && billing.contains("$75.00"))
        }
    }

    @Test func settingsSaveThroughTheAPIsRules() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            let admin = try await server.portal(org, role: "admin")
            // What a browser sends for the untouched form: every field, empty ones included.
            let untouched = try await admin.post("settings", [("overage_protection", "on"), ("overage_cap_credits", ""), ("auto_topup_threshold", ""),
                                                              ("auto_topup_pack", ""), ("alert_thresholds_percent", "80, 100, 110"),
                                                              ("low_balance_credits", ""), ("expiry_warning_days", "7")], from: "settings")
            #expect(untouched.status == 303, "\(untouched.text)")
            let saved = try await admin.post("settings", [("overage_cap_credits", "500"), ("auto_topup_enabled", "on"), ("auto_topup_threshold", "100"),
                                                          ("auto_topup_pack", "standard"), ("alert_thresholds_percent", "80, 100, 110"),
                                                          ("expiry_warning_days", "7")], from: "settings")
            #expect(saved.status == 303, "\(saved.text)")
            let settings = try await server.request(.GET, "/v1/orgs/\(org)/settings", key: server.platformKey).json
            #expect(settings["overage_protection"] == .bool(false))
            #expect(settings.text("overage_cap_credits") == "500")
            #expect(settings["auto_topup"]?.text("pack") == "standard")
            #expect(settings["changed_by_api_key_prefix"] == .string("portal"))
            let refused = try await admin.post("settings", [("overage_protection", "on"), ("overage_cap_credits", "-5")], from: "settings")
            #expect(refused.status == 422 && refused.text.contains("must not be negative"))
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/settings", key: server.platformKey).json.text("overage_cap_credits") == "500")
        }
    }

    /// Seed 000: the confirmation shows the exact cost and, when short, the shortfall with
    /// Process disabled.
    @Test func theConfirmationShowsTheShortfall() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            _ = try await server.grant(org, "10")
            let admin = try await server.portal(org, role: "admin", extra: #", "return_url": "https://app.example.com/process""#)
            let enough = try await admin.get("confirm?operation=full_pipeline&quantity=4")
            #expect(enough.status == 200 && enough.text.contains(#"<dd id="cost">8 credits</dd>"#) && !enough.text.contains("disabled"))
            #expect(enough.header("Content-Security-Policy")?.contains("frame-ancestors https://app.example.com") == true)
            let short = try await admin.get("confirm?operation=lifestyle_crop&quantity=3")
            #expect(short.text.contains(#"<dd id="cost">12.3 credits</dd>"#))
            #expect(short.text.contains("you need <strong>2.3</strong> more") && short.text.contains(#"id="process" disabled"#))
            #expect(short.text.contains("Purchase Credits") && short.text.contains("Change Plan"))
            #expect(try await admin.get("confirm?operation=nope").status == 404)
            #expect(try await admin.get("confirm?operation=smart_crop&quantity=0").status == 422)
            #expect(try await admin.get("confirm?operation=smart_crop&quantity=10001").status == 422)   // the pricing's own maximum
            #expect(try await admin.get("confirm?operation=smart_crop&quantity=lots").status == 422)
        }
    }
}
