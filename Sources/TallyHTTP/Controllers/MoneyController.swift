import Foundation
import Hummingbird
import TallyCore
import TallyJSON
import TallyStore

/// Purchases, invoice payment and voiding.
struct MoneyController {
    let services: AppServices

    struct PurchaseBody: Decodable {
        let pack: String?
        let credits: Credits?
    }

    struct PurchaseResponse: Encodable {
        let bucketID: UUID
        let entryID: UUID
        let credits: Credits
        let expiresAt: Instant?
        let invoice: InvoiceResponse

        init(_ outcome: PurchaseOutcome) {
            bucketID = outcome.bucketID
            entryID = outcome.entryID
            credits = outcome.credits
            expiresAt = outcome.expiresAt
            invoice = InvoiceResponse(outcome.invoice)
        }
    }

    struct PayBody: Decodable {
        let reference: String
    }

    func register(on v1: RouterGroup<TallyRequestContext>) {
        v1.post("/orgs/{org}/purchases") { request, context in
            let scope = try await services.orgScope(context, role: .admin)
            var request = request
            let json = try await request.jsonBody(context: context)
            let body = try StrictJSONDecoder.decode(PurchaseBody.self, from: json)
            let item = try Self.purchaseItem(pack: body.pack, credits: body.credits)
            let claim = try Idempotency.claim(request, body: json, required: true)
            let stored = try await services.stores.purchases.purchase(orgID: scope.org.id, at: scope.now, PurchaseRequest(item), claim: claim,
                                                                      render: Idempotency.renderer(PurchaseResponse.init))
            return Idempotency.response(stored)
        }
        // Payments are recorded by the operator's billing integration, never by the customer.
        v1.post("/orgs/{org}/invoices/{invoice}/pay") { request, context in
            try context.requirePlatform()
            let scope = try await services.orgScope(context)
            var request = request
            let body = try await request.decode(PayBody.self, context: context)
            try Validate.text(body.reference, field: "reference")
            let invoice = try await services.stores.invoices.pay(orgID: scope.org.id, invoiceID: try invoiceID(context), reference: body.reference, at: scope.now)
            return try Response.json(InvoiceResponse(invoice))
        }
        v1.post("/orgs/{org}/invoices/{invoice}/void") { _, context in
            try context.requirePlatform()
            let scope = try await services.orgScope(context)
            let invoice = try await services.stores.invoices.void(orgID: scope.org.id, invoiceID: try invoiceID(context), at: scope.now)
            return try Response.json(InvoiceResponse(invoice))
        }
    }

    /// A pack, or a positive number of credits (the API's body and the portal's form alike).
    static func purchaseItem(pack: String?, credits: Credits?) throws(TallyError) -> PurchaseRequest.Item {
        switch (pack, credits) {
        case (let pack?, nil): return .pack(pack)
        case (nil, let credits?):
            try Validate.positive(credits)
            return .credits(credits)
        default: throw TallyError.validation("Send either pack or credits.", field: "pack")
        }
    }

    private func invoiceID(_ context: TallyRequestContext) throws -> UUID {
        guard let text = context.parameters.get("invoice"), let id = UUID(idString: text) else { throw TallyError.notFound("The invoice") }
        return id
    }
}
