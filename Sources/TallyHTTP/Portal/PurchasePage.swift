import Foundation
import Hummingbird
import TallyCore
import TallyStore

/// Purchase Credits (admins): a pack, or a number of credits where the plan sells them (at
/// least its minimum); the price is shown before anything is bought.
struct PurchasePage {
    let services: AppServices

    func choose(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        return try await choosePage(page, notice: .empty)
    }

    private func choosePage(_ page: PortalPage, notice: HTML, status: HTTPResponse.Status = .ok) async throws -> Response {
        let packs = try await services.stores.catalog.packs(limit: 100, after: nil).items
        let packCards = packs.map { pack -> HTML in
            let expiry: HTML = pack.expiresAfterDays.map { "<div class=\"label\">Credits expire \($0) days after purchase</div>" } ?? .empty
            return """
                <div class="plan"><h3>\(pack.name)</h3><div class="price">\(Display.money(pack.price))</div>
                <div>\(Display.credits(pack.credits)) credits</div>\(expiry)
                <div class="actions"><a class="button" href="\(page.base)/purchase/review?pack=\(FormFields.encode(pack.code))" aria-label="Buy \(pack.name)">Buy</a></div></div>
                """
        }
        var byNumber: HTML = .empty
        if let code = page.scope.context.period?.planCode, let plan = try await services.stores.catalog.plan(code), let unit = plan.creditPrice {
            let minimum = plan.minPurchaseCredits
            byNumber = """
                <section class="card" aria-labelledby="amount-title"><h2 id="amount-title">Buy a number of credits</h2>
                <p>\(Display.money(unit)) per credit on the \(plan.name) plan\(minimum.map { ", at least \(Display.credits($0)) at a time" } ?? "").</p>
                <form method="get" action="\(page.base)/purchase/review"><div class="field"><label for="credits">Credits</label>
                <input type="number" id="credits" name="credits" min="\(minimum?.description ?? "1")" step="any" required value="\(minimum?.description ?? "")"></div>
                <button type="submit">See the price</button></form></section>
                """
        }
        let main: HTML = """
            <section class="card" aria-labelledby="packs-title"><h2 id="packs-title">Purchase Credits</h2>
            <div class="plans">\(packCards)</div></section>\(byNumber)
            """
        return page.render(.credits, title: "Purchase Credits", notice: notice, main, status: status)
    }

    func review(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        let query = request.portalQuery
        let item: PurchaseRequest.Item
        do {
            item = try Self.item(pack: query["pack"], credits: query["credits"])
        } catch {
            return try await choosePage(page, notice: PortalPage.error(error.detail), status: .unprocessableContent)
        }
        let priced: PurchaseStore.Priced
        do {
            priced = try await services.stores.purchases.price(PurchaseRequest(item), orgID: page.scope.org.id)
        } catch let error as TallyError {
            return try await choosePage(page, notice: PortalPage.error(error.detail), status: ProblemMiddleware.status(for: error.kind))
        }
        let expiry = priced.expiresAfterDays.map { "\($0) days after purchase" } ?? "never"
        let fields: [(String, String)] = switch item {
        case .pack(let code): [("pack", code)]
        case .credits(let credits): [("credits", credits.description)]
        }
        let main: HTML = """
            <section class="card" aria-labelledby="review-title"><h2 id="review-title">Confirm your purchase</h2>
            <dl class="facts" id="preview"><dt>Item</dt><dd>\(priced.line.description)</dd>
            <dt>Credits</dt><dd id="credits-bought">\(Display.credits(priced.credits))</dd>
            <dt>Price</dt><dd id="price">\(Display.money(priced.line.amount))</dd><dt>Credits expire</dt><dd>\(expiry)</dd></dl>
            <p class="label">An invoice for this amount is added under Billing &amp; Transactions.</p>
            <form method="post" action="\(page.base)/purchase">\(PortalAction.hiddenFields(page, fields))
            <div class="actions"><button type="submit" id="confirm">Confirm purchase</button><a class="button secondary" href="\(page.base)/purchase">Back</a></div>
            </form></section>
            """
        return page.render(.credits, title: "Confirm purchase", main)
    }

    func buy(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        var request = request
        let form = try await request.portalForm(context: context)
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        let item = try Self.item(pack: form["pack"], credits: form["credits"])
        let claim = try PortalAction.claim(request, form: form, fields: ["pack", "credits"])
        let (stored, _) = try await PortalAction.run(status: 201, MoneyController.PurchaseResponse.init) { render in
            try await services.stores.purchases.purchase(orgID: page.scope.org.id, at: page.scope.now, PurchaseRequest(item), claim: claim, render: render)
        }
        guard (200..<300).contains(stored.status) else {
            return try await choosePage(page, notice: PortalPage.error(PortalAction.problemDetail(stored)), status: .init(code: stored.status))
        }
        return Portal.redirect("\(page.base)/credits?view=purchases&done=purchased")
    }

    /// The form's pack or number of credits, by the API's rules (`MoneyController.purchaseItem`).
    static func item(pack: String?, credits: String?) throws(TallyError) -> PurchaseRequest.Item {
        var number: Credits?
        if let credits {
            guard let parsed = try? Credits(parsing: credits) else {
                throw TallyError.validation("Enter a number of credits with at most 4 decimal places.", field: "credits")
            }
            number = parsed
        }
        return try MoneyController.purchaseItem(pack: pack, credits: number)
    }
}
