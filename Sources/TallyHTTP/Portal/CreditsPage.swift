import Foundation
import Hummingbird
import TallyCore
import TallyStore

/// The Credits tab (seed 003, in its order): Available Credits with the cost per credit and the
/// two buttons, the Monthly Usage Summary, then Credit Usage or Purchase History.
struct CreditsPage {
    let services: AppServices
    static let pageSize = 20

    func render(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services)
        let query = request.portalQuery
        let org = page.scope.org
        let balance = try await services.stores.ledger.balance(orgID: org.id, at: page.scope.now, period: page.scope.context.period)
        let months = try await services.stores.reports.monthlySummary(orgID: org.id, timezone: org.timezone, at: page.scope.now, months: 4)
        let showPurchases = query["view"] == "purchases"
        var cursor: Int64?
        if let text = query["cursor"] {
            guard let value = Int64(text), value > 0 else { throw TallyError.validation("The page link is not valid.", field: "cursor") }
            cursor = value
        }
        let filter = showPurchases
            ? LedgerQueries.EntryFilter(types: LedgerEntryType.additions + [.reversal])
            : LedgerQueries.EntryFilter(types: [.usage], eventID: query["event"], actor: query["user"])
        let entries = try await services.stores.ledger.entries(orgID: org.id, filter: filter, limit: Self.pageSize, before: cursor)
        let names = try await operationNames()
        let main: HTML = """
            \(availableCard(page, balance: balance, showCost: query["cost"] == "show"))
            \(summaryCard(months))
            <section class="card" aria-labelledby="history"><h2 id="history" class="visually-hidden">History</h2>
            <nav class="subtabs" aria-label="History">
            <a href="\(page.base)/credits"\(showPurchases ? HTML.empty : " aria-current=\"page\"")>Credit Usage</a>
            <a href="\(page.base)/credits?view=purchases"\(showPurchases ? " aria-current=\"page\"" : HTML.empty)>Purchase History</a>
            </nav>
            \(showPurchases ? purchaseTable(page, entries.items) : usageTable(page, entries.items, names: names, query: query))
            \(pager(page, next: entries.nextCursor, query: query, first: cursor != nil))
            </section>
            """
        return page.render(.credits, title: "Credits", notice: PortalPage.notice(query), main)
    }

    private func availableCard(_ page: PortalPage, balance: Balance, showCost: Bool) -> HTML {
        let cost = page.scope.context.period?.costPerCredit
        let costText: HTML
        if let cost {
            costText = showCost
                ? "<span id=\"cost-per-credit\">\(Display.money(cost))</span> <a href=\"\(page.base)/credits\">Hide</a>"
                : "<span id=\"cost-per-credit\" aria-label=\"hidden\">••••</span> <a href=\"\(page.base)/credits?cost=show\">Show</a>"
        } else {
            costText = "<span id=\"cost-per-credit\">not set by a plan</span>"
        }
        let held: HTML = balance.reserved.isPositive
            ? "<p class=\"label\">\(Display.credits(balance.reserved)) more credits are held for work in progress.</p>" : .empty
        let purchase: HTML = page.isAdmin ? "<a class=\"button\" href=\"\(page.base)/purchase\">Purchase Credits</a>" : .empty
        return """
            <section class="card" aria-labelledby="available-title">
            <h2 id="available-title">Available Credits</h2>
            <p class="balance" id="available">\(Display.credits(balance.available))</p>
            \(held)
            <div class="row"><span class="label">Cost per Credit</span> \(costText)</div>
            <div class="actions">\(purchase)<a class="button secondary" href="\(page.base)/billing">View Billing</a></div>
            </section>
            """
    }

    /// Four month cards, the current month first with its badge, and a bar chart of the same
    /// months (oldest on the left) drawn as SVG: no script, no inline style.
    private func summaryCard(_ months: [MonthUsage]) -> HTML {
        let cards = months.map { month -> HTML in
            let badge: HTML = month.current ? " <span class=\"badge\">Current</span>" : .empty
            return """
                <div class="month"><h3>\(Display.month(month.month.description))\(badge)</h3>
                <div class="label">Usage</div><div class="used">\(Display.credits(month.creditsUsed))</div>
                <div class="label">Usage transactions: <strong>\(month.transactions)</strong></div></div>
                """
        }
        let largest = months.map(\.creditsUsed.units).max() ?? 0
        let chronological = Array(months.reversed())
        let width = 100, gap = 20, height = 100, top = 20
        let bars = chronological.enumerated().map { index, month -> HTML in
            let barHeight = largest > 0 ? Int(month.creditsUsed.units * Int128(height) / largest) : 0
            let x = gap / 2 + index * (width + gap)
            let label = Display.month(month.month.description)
            return """
                <rect x="\(x)" y="\(top + height - max(barHeight, 1))" width="\(width)" height="\(max(barHeight, 1))" rx="4" fill="#b42318"><title>\(label): \(Display.credits(month.creditsUsed)) credits</title></rect>
                <text x="\(x + width / 2)" y="\(top + height - max(barHeight, 1) - 5)" text-anchor="middle" font-size="14" fill="#1b1f24">\(Display.credits(month.creditsUsed))</text>
                <text x="\(x + width / 2)" y="\(top + height + 18)" text-anchor="middle" font-size="14" fill="#57606a">\(String(label.prefix(3)))</text>
                """
        }
        let description = chronological.map { "\(Display.month($0.month.description)) \(Display.credits($0.creditsUsed))" }.joined(separator: ", ")
        return """
            <section class="card" aria-labelledby="summary-title">
            <h2 id="summary-title">Monthly Usage Summary</h2>
            <div class="months">\(cards)</div>
            <svg class="chart-svg" viewBox="0 0 \(chronological.count * (width + gap)) \(top + height + 24)" width="100%" height="150" role="img" aria-label="Credits used per month: \(description)">\(bars)</svg>
            </section>
            """
    }

    private func usageTable(_ page: PortalPage, _ entries: [LedgerEntry], names: [String: String], query: FormFields) -> HTML {
        let rows = entries.map { entry -> HTML in
            let operation = entry.operation.map { names[$0] ?? $0 }
            let user = entry.actor == "system" ? "System" : entry.actor
            return """
                <tr><td>Usage\(operation.map { HTML("<div class=\"label\">\($0)</div>") } ?? .empty)</td>
                <td class="num negative">\(Display.credits(entry.costCredits))</td><td>\(entry.eventName ?? "")</td><td>\(entry.eventID ?? "")</td>
                <td>\(user)</td><td>\(page.dateTime(entry.createdAt))</td></tr>
                """
        }
        let empty: HTML = entries.isEmpty ? "<tr><td colspan=\"6\">No usage matches.</td></tr>" : .empty
        return """
            <form class="filters" method="get" action="\(page.base)/credits" role="search">
            <div><label for="event">Event ID</label><input type="text" id="event" name="event" value="\(query["event"])" maxlength="200"></div>
            <div><label for="user">User</label><input type="text" id="user" name="user" value="\(query["user"])" maxlength="200"></div>
            <button type="submit">Filter</button> <a href="\(page.base)/credits">Clear</a>
            <span class="label">Download usage: <a href="\(page.base)/usage/export?format=json">JSON</a> · <a href="\(page.base)/usage/export?format=csv">CSV</a></span>
            </form>
            <div class="table-wrap"><table id="usage-table"><caption class="visually-hidden">Credit Usage</caption>
            <thead><tr><th scope="col">Type</th><th scope="col" class="num">Credits</th><th scope="col">Event</th><th scope="col">Event ID</th>
            <th scope="col">User</th><th scope="col">Date</th></tr></thead>
            <tbody>\(rows)\(empty)</tbody></table></div>
            """
    }

    private func purchaseTable(_ page: PortalPage, _ entries: [LedgerEntry]) -> HTML {
        let rows = entries.map { entry -> HTML in
            """
            <tr><td>\(Self.additionLabel(entry.type))</td><td class="num positive">+\(Display.credits(entry.costCredits))</td>
            <td>\(entry.eventName ?? entry.reason ?? "")</td><td>\(page.dateTime(entry.createdAt))</td></tr>
            """
        }
        let empty: HTML = entries.isEmpty ? "<tr><td colspan=\"4\">No credits added yet.</td></tr>" : .empty
        return """
            <div class="table-wrap"><table id="purchase-table"><caption class="visually-hidden">Purchase History</caption>
            <thead><tr><th scope="col">Type</th><th scope="col" class="num">Credits</th><th scope="col">Event</th><th scope="col">Date</th></tr></thead>
            <tbody>\(rows)\(empty)</tbody></table></div>
            """
    }

    /// Seed 003's names: Purchase, Free Credits, Admin Grant, Refund (reversals are refunds there).
    static func additionLabel(_ type: LedgerEntryType) -> String {
        switch type {
        case .purchase: "Purchase"
        case .freeCredits: "Free Credits"
        case .adminGrant: "Admin Grant"
        case .promotional: "Promotional"
        case .refund, .reversal: "Refund"
        case .planAllocation: "Plan Allocation"
        case .rollover: "Rollover"
        default: type.rawValue
        }
    }

    private func pager(_ page: PortalPage, next: String?, query: FormFields, first: Bool) -> HTML {
        var kept: [String] = []
        for name in ["view", "event", "user"] { if let value = query[name] { kept.append("\(name)=\(FormFields.encode(value))") } }
        let base = "\(page.base)/credits?" + kept.joined(separator: "&")
        let newest: HTML = first ? "<a href=\"\(base)\">Newest</a>" : .empty
        let older: HTML = next.map { "<a href=\"\(base)\(kept.isEmpty ? "" : "&")cursor=\($0)\">Older</a>" } ?? .empty
        return "<nav class=\"pager\" aria-label=\"Pages\">\(newest)\(older)</nav>"
    }

    private func operationNames() async throws -> [String: String] {
        var names: [String: String] = [:]
        var cursor: String?
        repeat {
            let page = try await services.stores.catalog.operations(limit: 500, after: cursor)
            for operation in page.items { names[operation.code] = operation.name }
            cursor = page.nextCursor
        } while cursor != nil && names.count < 5_000
        return names
    }
}
