import Foundation
import Hummingbird
import NIOCore
import TallyCore
import TallyStore

/// Billing & Transactions: the organisation's invoices, each a printable page and a download.
struct BillingPage {
    let services: AppServices
    static let pageSize = 25

    func render(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services)
        let query = request.portalQuery
        let cursor = try Cursor.uuid(query["cursor"])
        let invoices = try await services.stores.invoices.invoices(orgID: page.scope.org.id, limit: Self.pageSize, after: cursor)
        let rows = invoices.items.map { invoice -> HTML in
            let period: String = switch (invoice.periodStart, invoice.periodEnd) {
            case (let start?, let end?): "\(page.date(start)) – \(page.date(end))"
            default: page.date(invoice.issuedAt ?? invoice.createdAt)
            }
            let link = "\(page.base)/invoices/\(invoice.id.idString)"
            return """
                <tr><td>\(Self.number(invoice))</td><td>\(Self.kind(invoice.kind))</td><td><span class="badge \(invoice.status.rawValue)">\(invoice.status.rawValue.capitalized)</span></td>
                <td class="num">\(Display.money(invoice.total))</td><td>\(period)</td>
                <td><a href="\(link)">View</a> · <a href="\(link)?download=html">Download</a> · <a href="\(link)?download=json">JSON</a></td></tr>
                """
        }
        let empty: HTML = invoices.items.isEmpty ? "<tr><td colspan=\"6\">No invoices yet.</td></tr>" : .empty
        let more: HTML = invoices.nextCursor.map { "<nav class=\"pager\" aria-label=\"Pages\"><a href=\"\(page.base)/billing?cursor=\($0)\">More</a></nav>" } ?? .empty
        let main: HTML = """
            <section class="card" aria-labelledby="invoices-title"><h2 id="invoices-title">Invoices</h2>
            <div class="table-wrap"><table id="invoice-table"><thead><tr><th scope="col">Number</th><th scope="col">Kind</th><th scope="col">Status</th>
            <th scope="col" class="num">Total</th><th scope="col">Period</th><th scope="col">Invoice</th></tr></thead>
            <tbody>\(rows)\(empty)</tbody></table></div>\(more)</section>
            """
        return page.render(.billing, title: "Billing & Transactions", main)
    }

    /// One invoice as a page of its own, made to print; `?download=html` or `=json` to keep it.
    func invoice(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let page = try await PortalPage.open(request, context, services: services)
        guard let text = context.parameters.get("invoice"), let id = UUID(idString: text),
              let invoice = try await services.stores.invoices.invoice(orgID: page.scope.org.id, id: id) else {
            throw TallyError.notFound("The invoice")
        }
        let filename = "invoice-\(Self.number(invoice).replacingOccurrences(of: " ", with: "-"))"
        switch request.portalQuery["download"] {
        case "json":
            var response = try Response.json(InvoiceResponse(invoice))
            response.headers[.contentDisposition] = "attachment; filename=\"\(filename).json\""
            Portal.secure(&response.headers)
            return response
        case "html", nil:
            break
        default:
            throw TallyError.validation("download must be html or json.", field: "download")
        }
        let lines = invoice.lines.map { line -> HTML in
            "<tr><td>\(line.description)</td><td class=\"num\">\(Display.credits(line.quantity))</td><td class=\"num\">\(Display.money(line.unitPrice))</td><td class=\"num\">\(Display.money(line.amount))</td></tr>"
        }
        let period: HTML = switch (invoice.periodStart, invoice.periodEnd) {
        case (let start?, let end?): "<dt>Period</dt><dd>\(page.date(start)) – \(page.date(end))</dd>"
        default: .empty
        }
        let paid: HTML = invoice.paidAt.map { "<dt>Paid</dt><dd>\(page.date($0))</dd>" } ?? .empty
        var response = Portal.html("""
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Invoice \(Self.number(invoice)) · \(page.scope.org.name)</title><link rel="stylesheet" href="\(PortalAssets.stylesheetPath)"></head>
            <body><main id="main" class="invoice"><p class="no-print"><a href="\(page.base)/billing">← Billing &amp; Transactions</a> · Print this page to keep a paper copy.</p>
            <h1>Invoice \(Self.number(invoice))</h1>
            <dl class="facts"><dt>Billed to</dt><dd>\(page.scope.org.name)</dd><dt>Kind</dt><dd>\(Self.kind(invoice.kind))</dd>
            <dt>Status</dt><dd>\(invoice.status.rawValue.capitalized)</dd><dt>Issued</dt><dd>\(page.date(invoice.issuedAt ?? invoice.createdAt))</dd>\(period)\(paid)</dl>
            <div class="table-wrap"><table><thead><tr><th scope="col">Description</th><th scope="col" class="num">Quantity</th>
            <th scope="col" class="num">Unit price</th><th scope="col" class="num">Amount</th></tr></thead><tbody>\(lines)</tbody>
            <tfoot><tr><th scope="row" colspan="3">Total</th><td class="num" id="invoice-total"><strong>\(Display.money(invoice.total))</strong></td></tr></tfoot></table></div>
            </main></body></html>
            """)
        if request.portalQuery["download"] == "html" {
            response.headers[.contentDisposition] = "attachment; filename=\"\(filename).html\""
        }
        return response
    }

    /// The invoice number (sequential per organisation), or "Draft" before it is issued.
    static func number(_ invoice: Invoice) -> String {
        invoice.number.map { String($0) } ?? "Draft"
    }

    static func kind(_ kind: Invoice.Kind) -> String {
        switch kind {
        case .subscription: "Subscription"
        case .purchase: "Credit purchase"
        case .overage: "Overage"
        }
    }
}
