import Foundation
import Hummingbird
import TallyCore
import TallyJSON
import TallyStore

/// Settings (admins, seed 004's billing settings): overage protection and its cap, auto top-up,
/// usage alerts. The form is turned into the API's `PATCH .../settings` body and decoded and
/// checked by the same code, so the page cannot store what the API would refuse.
struct SettingsPage {
    let services: AppServices

    func render(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        return try await form(page, settings: page.scope.context.settings, notice: PortalPage.notice(request.portalQuery))
    }

    private func form(_ page: PortalPage, settings: OrgSettings, notice: HTML, status: HTTPResponse.Status = .ok) async throws -> Response {
        let packs = try await services.stores.catalog.packs(limit: 100, after: nil).items
        let options = packs.map { pack -> HTML in
            let selected: HTML = pack.code == settings.autoTopUp.packCode ? " selected" : .empty
            return "<option value=\"\(pack.code)\"\(selected)>\(pack.name): \(Display.credits(pack.credits)) credits for \(Display.money(pack.price))</option>"
        }
        let overageNote: HTML = page.scope.context.period?.overageRate.map {
            "<p class=\"hint\">With protection off, usage beyond your credits is billed at \(Display.money($0)) per credit on the period's overage invoice.</p>"
        } ?? "<p class=\"hint\">Your plan does not allow overage: usage stops when credits run out, whatever this setting says.</p>"
        let checked = { (on: Bool) -> HTML in on ? " checked" : .empty }
        let main: HTML = """
            <form method="post" action="\(page.base)/settings">\(page.csrfField)
            <section class="card" aria-labelledby="overage-title"><h2 id="overage-title">Overage protection</h2>
            <div class="field"><label class="check"><input type="checkbox" id="overage_protection" name="overage_protection" value="on"\(checked(settings.overageProtection))>
            Block usage when credits run out</label>\(overageNote)</div>
            <div class="field"><label for="overage_cap_credits">Overage cap (credits per period)</label>
            <input type="text" inputmode="decimal" id="overage_cap_credits" name="overage_cap_credits" value="\(settings.overageCapCredits?.description)">
            <p class="hint">Leave empty for no cap.</p></div></section>
            <section class="card" aria-labelledby="topup-title"><h2 id="topup-title">Auto top-up</h2>
            <div class="field"><label class="check"><input type="checkbox" id="auto_topup_enabled" name="auto_topup_enabled" value="on"\(checked(settings.autoTopUp.enabled))>
            Buy a pack automatically when credits run low</label></div>
            <div class="field"><label for="auto_topup_threshold">When available credits fall below</label>
            <input type="text" inputmode="decimal" id="auto_topup_threshold" name="auto_topup_threshold" value="\(settings.autoTopUp.thresholdCredits?.description)"></div>
            <div class="field"><label for="auto_topup_pack">Pack to buy</label><select id="auto_topup_pack" name="auto_topup_pack">
            <option value="">Choose a pack</option>\(options)</select></div></section>
            <section class="card" aria-labelledby="alerts-title"><h2 id="alerts-title">Alerts</h2>
            <div class="field"><label for="alert_thresholds_percent">Usage alerts (% of the period's credits)</label>
            <input type="text" id="alert_thresholds_percent" name="alert_thresholds_percent" value="\(settings.alertThresholdsPercent.map(String.init).joined(separator: ", "))">
            <p class="hint">For example 80, 100, 110. Each fires once per period.</p></div>
            <div class="field"><label for="low_balance_credits">Low balance alert below (credits)</label>
            <input type="text" inputmode="decimal" id="low_balance_credits" name="low_balance_credits" value="\(settings.lowBalanceCredits?.description)"></div>
            <div class="field"><label for="expiry_warning_days">Warn this many days before credits expire</label>
            <input type="number" id="expiry_warning_days" name="expiry_warning_days" min="0" max="365" value="\(settings.expiryWarningDays)"></div></section>
            <div class="actions"><button type="submit" id="save">Save settings</button></div>
            </form>
            """
        return page.render(.settings, title: "Settings", notice: notice, main, status: status)
    }

    func save(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        var request = request
        let fields = try await request.portalForm(context: context)
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        do {
            let body = try StrictJSONDecoder.decode(SettingsBody.self, from: try Self.settingsJSON(fields))
            _ = try await services.stores.orgs.updateSettings(orgID: page.scope.org.id, try body.patch(), at: page.scope.now)
        } catch let error as TallyError {
            return try await form(page, settings: page.scope.context.settings, notice: PortalPage.error(error.detail),
                                  status: ProblemMiddleware.status(for: error.kind))
        }
        return Portal.redirect("\(page.base)/settings?done=settings_saved")
    }

    /// The form as the API's settings body: an empty box clears its value, an unticked box is false.
    static func settingsJSON(_ fields: FormFields) throws(TallyError) -> JSONValue {
        func decimal(_ name: String) -> JSONValue { fields[name].map(JSONValue.string) ?? .null }
        var thresholds: [JSONValue] = []
        for part in (fields["alert_thresholds_percent"] ?? "").split(whereSeparator: { $0 == "," || $0 == " " }) {
            guard let percent = Int(part) else {
                throw TallyError.validation("Usage alerts must be whole percentages separated by commas.", field: "alert_thresholds_percent")
            }
            thresholds.append(.number(String(percent)))
        }
        var members: [(key: String, value: JSONValue)] = [
            ("overage_protection", .bool(fields["overage_protection"] == "on")),
            ("overage_cap_credits", decimal("overage_cap_credits")),
            ("auto_topup", .object([
                ("enabled", .bool(fields["auto_topup_enabled"] == "on")),
                ("threshold_credits", decimal("auto_topup_threshold")),
                ("pack", fields["auto_topup_pack"].map(JSONValue.string) ?? .null),
            ])),
            ("alert_thresholds_percent", .array(thresholds)),
            ("low_balance_credits", decimal("low_balance_credits")),
        ]
        if let text = fields["expiry_warning_days"] {
            guard let days = Int(text) else { throw TallyError.validation("Enter the warning days as a whole number.", field: "expiry_warning_days") }
            members.append(("expiry_warning_days", .number(String(days))))
        }
        return .object(members)
    }
}
