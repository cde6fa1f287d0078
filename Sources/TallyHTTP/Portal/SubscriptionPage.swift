import Foundation
import Hummingbird
import TallyCore
import TallyStore

/// The Subscription tab: the current plan, Change Plan (seed 001: the exact preview, and only
/// Confirm changes anything) and Cancel (the same preview-then-confirm).
struct SubscriptionPage {
    let services: AppServices

    func render(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services)
        return try await overview(page, notice: PortalPage.notice(request.portalQuery))
    }

    private func overview(_ page: PortalPage, notice: HTML, status: HTTPResponse.Status = .ok) async throws -> Response {
        let subscription = try await services.stores.subscriptions.current(orgID: page.scope.org.id)
        var plan: Plan?
        if let subscription { plan = try await services.stores.catalog.plan(subscription.planCode) }
        var main = currentCard(page, subscription: subscription, plan: plan)
        if page.isAdmin {
            let plans = try await services.stores.catalog.plans(limit: 100, after: nil).items
            main = "\(main)\(changeCard(page, plans: plans, current: subscription?.status == .active ? plan?.code : nil))"
            if let subscription, subscription.status == .active, !subscription.cancelAtPeriodEnd {
                main = """
                    \(main)<section class="card" aria-labelledby="cancel-title"><h2 id="cancel-title">Cancel</h2>
                    <p>Cancel at the end of the period to keep using this period's credits until it ends, or now to end the plan at once.</p>
                    <div class="actions"><a class="button secondary" href="\(page.base)/subscription/cancel?when=period_end">Cancel at period end</a>
                    <a class="button danger" href="\(page.base)/subscription/cancel?when=now">Cancel now</a></div></section>
                    """
            }
        }
        return page.render(.subscription, title: "Subscription", notice: notice, main, status: status)
    }

    private func currentCard(_ page: PortalPage, subscription: Subscription?, plan: Plan?) -> HTML {
        guard let subscription, let plan, subscription.status == .active else {
            return """
                <section class="card" aria-labelledby="plan-title"><h2 id="plan-title">Current Plan</h2>
                <p><span class="badge">No plan</span></p><p>This organisation has no active subscription.</p>
                <h3>Subscription Expiry</h3><p>No expiry date set. Your plan does not have a fixed expiry.</p></section>
                """
        }
        let expiry: HTML
        if subscription.cancelAtPeriodEnd {
            expiry = "<p>Your subscription ends on <strong>\(page.date(subscription.period.end))</strong>.</p>"
        } else if plan.creditsPerPeriod.isZero {
            expiry = "<p>No expiry date set. Your plan does not have a fixed expiry.</p>"
        } else {
            expiry = "<p>The current period ends on <strong>\(page.date(subscription.period.end))</strong>, when the plan renews.</p>"
        }
        let scheduled: HTML = subscription.scheduledPlanCode.map {
            "<p class=\"notice warn\">Changes to plan <strong>\($0)</strong> on \(page.date(subscription.period.end)).</p>"
        } ?? .empty
        return """
            <section class="card" aria-labelledby="plan-title"><h2 id="plan-title">Current Plan</h2>
            <p><span class="badge" id="current-plan">\(plan.name)</span></p>
            <dl class="facts"><dt>Price</dt><dd>\(Display.money(plan.price)) per \(plan.interval.rawValue)</dd>
            <dt>Credits per period</dt><dd>\(Display.credits(plan.creditsPerPeriod))</dd>
            <dt>Cost per credit</dt><dd>\(plan.costPerCredit.map(Display.money) ?? "—")</dd>
            <dt>Current period</dt><dd>\(page.date(subscription.period.start)) – \(page.date(subscription.period.end))</dd></dl>
            <h3>Subscription Expiry</h3>\(expiry)\(scheduled)</section>
            """
    }

    private func changeCard(_ page: PortalPage, plans: [Plan], current: String?) -> HTML {
        let cards = plans.map { plan -> HTML in
            let isCurrent = plan.code == current
            let actions: HTML = isCurrent ? "<p class=\"label\">Your current plan</p>" : """
                <div class="actions"><a class="button" href="\(page.base)/subscription/change?plan=\(FormFields.encode(plan.code))&amp;effective=immediate" aria-label="Change to \(plan.name) now">Change now</a>
                <a class="button secondary" href="\(page.base)/subscription/change?plan=\(FormFields.encode(plan.code))&amp;effective=period_end" aria-label="Change to \(plan.name) at period end">At period end</a></div>
                """
            return """
                <div class="plan\(isCurrent ? " current" : "")"><h3>\(plan.name)</h3><div class="price">\(Display.money(plan.price))<span class="label"> / \(plan.interval.rawValue)</span></div>
                <div>\(Display.credits(plan.creditsPerPeriod)) credits per \(plan.interval.rawValue)</div>
                <div class="label">\(plan.costPerCredit.map { "\(Display.money($0)) per credit" } ?? "")</div>\(actions)</div>
                """
        }
        return """
            <section class="card" aria-labelledby="change-title"><h2 id="change-title">Change Plan</h2>
            <p class="label">Choose a plan to see exactly what the change does. Nothing changes until you confirm.</p>
            <div class="plans">\(cards)</div></section>
            """
    }

    // MARK: Change

    /// The preview: the very transaction the change would run, rolled back.
    func changePreview(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        let query = request.portalQuery
        guard let code = query["plan"], let effective = PlanChangeRequest.Effective(rawValue: query["effective"] ?? "immediate") else {
            throw TallyError.validation("Choose a plan.", field: "plan")
        }
        let (stored, outcome) = try await PortalAction.run({ ChangeResponse($0, plan: nil) }) { render in
            try await services.stores.subscriptions.change(orgID: page.scope.org.id, PlanChangeRequest(planCode: code, effective: effective, preview: true),
                                                           at: page.scope.now, render: render)
        }
        guard let outcome, let plan = try await services.stores.catalog.plan(code) else {
            return try await overview(page, notice: PortalPage.error(PortalAction.problemDetail(stored)), status: .init(code: stored.status))
        }
        let charge = outcome.charge.map(Display.money) ?? Display.money(Money(micros: 0, currency: plan.price.currency))
        let keepsCredits: HTML = plan.price.micros == 0 && effective == .immediate
            ? "<p>Your existing credits stay usable until the end of the current cycle.</p>" : .empty
        let currentRow: HTML = page.scope.context.period.map { "<dt>Current plan</dt><dd>\($0.planName)</dd>" } ?? .empty
        let facts: HTML = effective == .immediate ? """
            <dl class="facts" id="preview">\(currentRow)<dt>New plan</dt><dd>\(plan.name)</dd><dt>Charged now</dt><dd id="charge">\(charge)</dd>
            <dt>Credits carried over</dt><dd id="carried">\(Display.credits(outcome.creditsCarried))</dd>
            <dt>New plan credits</dt><dd>\(Display.credits(outcome.creditsGranted))</dd>
            <dt>New period</dt><dd>\(page.date(outcome.periodStart)) – <span id="period-end">\(page.date(outcome.periodEnd))</span></dd></dl>
            """ : """
            <dl class="facts" id="preview">\(currentRow)<dt>New plan</dt><dd>\(plan.name)</dd><dt>Starts</dt><dd id="period-end">\(page.date(outcome.effectiveAt))</dd>
            <dt>Charged now</dt><dd id="charge">\(Display.money(Money(micros: 0, currency: plan.price.currency)))</dd>
            <dt>Then</dt><dd>\(Display.money(plan.price)) per \(plan.interval.rawValue) for \(Display.credits(plan.creditsPerPeriod)) credits</dd></dl>
            """
        let main: HTML = """
            <section class="card" aria-labelledby="confirm-title"><h2 id="confirm-title">Change to \(plan.name)</h2>
            \(facts)\(keepsCredits)
            <form method="post" action="\(page.base)/subscription/change">
            \(PortalAction.hiddenFields(page, [("plan", code), ("effective", effective.rawValue)]))
            <div class="actions"><button type="submit" id="confirm">Confirm</button><a class="button secondary" href="\(page.base)/subscription">Back</a></div>
            </form></section>
            """
        return page.render(.subscription, title: "Change Plan", main)
    }

    func change(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        var request = request
        let form = try await request.portalForm(context: context)
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        guard let code = form["plan"], let effective = PlanChangeRequest.Effective(rawValue: form["effective"] ?? "") else {
            throw TallyError.validation("Choose a plan.", field: "plan")
        }
        let claim = try PortalAction.claim(request, form: form, fields: ["plan", "effective"])
        let (stored, _) = try await PortalAction.run({ ChangeResponse($0, plan: nil) }) { render in
            try await services.stores.subscriptions.change(orgID: page.scope.org.id, PlanChangeRequest(planCode: code, effective: effective, preview: false),
                                                           at: page.scope.now, claim: claim, render: render)
        }
        guard (200..<300).contains(stored.status) else {
            return try await overview(page, notice: PortalPage.error(PortalAction.problemDetail(stored)), status: .init(code: stored.status))
        }
        return Portal.redirect("\(page.base)/subscription?done=\(effective == .immediate ? "plan_changed" : "change_scheduled")")
    }

    // MARK: Cancel

    func cancelPreview(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        let atPeriodEnd = request.portalQuery["when"] != "now"
        guard let subscription = try await services.stores.subscriptions.current(orgID: page.scope.org.id), subscription.status == .active else {
            throw TallyError.notFound("The subscription")
        }
        let balance = try await services.stores.ledger.balance(orgID: page.scope.org.id, at: page.scope.now)
        let planCredits = balance.buckets.filter(\.source.isPlanCredit).map(\.remaining).sum()
        let effect: HTML = atPeriodEnd ? """
            <p>Your plan stays active until <strong id="period-end">\(page.date(subscription.period.end))</strong> and then ends; nothing more is charged.
            The \(Display.credits(planCredits)) plan credits left stay usable until then.</p>
            """ : """
            <p>Your plan ends <strong>now</strong>. The <strong id="plan-credits">\(Display.credits(planCredits))</strong> plan credits left expire at once;
            purchased and granted credits stay. Nothing is refunded.</p>
            """
        let main: HTML = """
            <section class="card" aria-labelledby="cancel-title"><h2 id="cancel-title">\(atPeriodEnd ? "Cancel at period end" : "Cancel now")</h2>
            \(effect)
            <form method="post" action="\(page.base)/subscription/cancel">
            \(PortalAction.hiddenFields(page, [("when", atPeriodEnd ? "period_end" : "now")]))
            <div class="actions"><button type="submit" class="danger" id="confirm">Confirm</button><a class="button secondary" href="\(page.base)/subscription">Keep my plan</a></div>
            </form></section>
            """
        return page.render(.subscription, title: "Cancel", main)
    }

    func cancel(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        var request = request
        let form = try await request.portalForm(context: context)
        let page = try await PortalPage.open(request, context, services: services, role: .admin)
        let atPeriodEnd = form["when"] != "now"
        let claim = try PortalAction.claim(request, form: form, fields: ["when"])
        let (stored, _) = try await PortalAction.run({ SubscriptionResponse($0, plan: nil) }) { render in
            try await services.stores.subscriptions.cancel(orgID: page.scope.org.id, atPeriodEnd: atPeriodEnd, at: page.scope.now, claim: claim, render: render)
        }
        guard (200..<300).contains(stored.status) else {
            return try await overview(page, notice: PortalPage.error(PortalAction.problemDetail(stored)), status: .init(code: stored.status))
        }
        return Portal.redirect("\(page.base)/subscription?done=\(atPeriodEnd ? "cancel_scheduled" : "canceled")")
    }
}
