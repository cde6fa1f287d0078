import Foundation
import HTTPTypes
import Hummingbird
import TallyCore
import TallyJSON
import TallyStore

/// The confirmation step of seed 000 as a page of its own (`.../portal/confirm?operation=&quantity=`,
/// other query fields are the operation's params): the exact credit cost, the balance, and when
/// short the shortfall in red, Process disabled, and the ways to get credits. The application
/// named by the session's return URL may frame it.
struct ConfirmPage {
    let services: AppServices

    func render(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services)
        let query = request.portalQuery
        guard let operation = query["operation"] else { throw TallyError.validation("Name the operation to confirm.", field: "operation") }
        var quantity = 1
        if let text = query["quantity"] {
            // Its range is the pricing's own check (OperationPricing.quantityMaximum).
            guard let value = Int(text) else { throw TallyError.validation("quantity must be a whole number.", field: "quantity") }
            quantity = value
        }
        let params = JSONValue.object(query.values.keys.sorted().filter { $0 != "operation" && $0 != "quantity" }.map { ($0, .string(query.values[$0] ?? "")) })
        let quote = try await services.quote(operation: operation, quantity: quantity, params: params, scope: page.scope)
        let balance = try await services.stores.ledger.balance(orgID: page.scope.org.id, at: page.scope.now, period: page.scope.context.period)
        let answer = QuoteResponse(quote, available: balance.available, terms: page.scope.context.spendTerms)
        let name = try await services.stores.catalog.operation(operation)?.name ?? operation
        let overageCost = page.scope.context.spendTerms.overagePrice(of: answer.shortfall)
        let overage = overageCost != nil
        let verdict: HTML
        if answer.sufficient {
            verdict = "<p class=\"notice ok\" role=\"status\">You have enough credits: \(Display.credits(balance.available - quote.credits)) will be left.</p>"
        } else if overage {
            verdict = """
                <p class="notice warn" role="alert">This is \(Display.credits(answer.shortfall)) credits more than you have; they will be billed as overage
                (\(overageCost.map(Display.money) ?? "")).</p>
                """
        } else {
            let ways: HTML = page.isAdmin
                ? "<a class=\"button\" href=\"\(page.base)/purchase\">Purchase Credits</a><a class=\"button secondary\" href=\"\(page.base)/subscription\">Change Plan</a>"
                : "<a class=\"button secondary\" href=\"\(page.base)/billing\">View Billing</a>"
            verdict = """
                <div class="shortfall" role="alert" id="shortfall">Not enough credits: you need <strong>\(Display.credits(answer.shortfall))</strong> more.
                <div class="actions">\(ways)</div></div>
                """
        }
        let proceed: HTML = answer.sufficient || overage
            ? (page.session.returnURL.map { "<a class=\"button\" id=\"process\" href=\"\($0)\">Process</a>" } ?? "<button type=\"button\" id=\"process\">Process</button>")
            : "<button type=\"button\" id=\"process\" disabled aria-disabled=\"true\">Process</button>"
        let free: HTML = quote.freeQuantityPerRequest > 0
            ? "<dt>Free per request</dt><dd>\(quote.freeQuantityPerRequest)</dd>" : .empty
        let main: HTML = """
            <section class="card" aria-labelledby="confirm-title"><h2 id="confirm-title">Confirm: \(name)</h2>
            <dl class="facts"><dt>Quantity</dt><dd>\(quantity)</dd>\(free)<dt>Credits per item</dt><dd>\(Display.credits(quote.unitCredits))</dd>
            <dt>Total cost</dt><dd id="cost">\(Display.credits(quote.credits)) credits</dd>
            <dt>Your balance</dt><dd id="balance">\(Display.credits(balance.available)) credits</dd></dl>
            \(verdict)
            <div class="actions">\(proceed)</div></section>
            """
        var response = page.render(.credits, title: "Confirm", main)
        if let origin = page.session.returnURL.flatMap(Self.origin) {
            response.headers[.contentSecurityPolicy] = (response.headers[.contentSecurityPolicy] ?? "")
                .replacingOccurrences(of: "frame-ancestors 'none'", with: "frame-ancestors \(origin)")
            response.headers[HTTPField.Name("X-Frame-Options")!] = nil
        }
        return response
    }

    /// `https://app.example.com[:port]` of a return URL (already checked to be http or https).
    static func origin(_ url: String) -> String? {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), let host = parsed.host,
              host.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || "0123456789.-".unicodeScalars.contains($0)) }) else {
            return nil
        }
        return "\(scheme)://\(host)\(parsed.port.map { ":\($0)" } ?? "")"
    }
}
