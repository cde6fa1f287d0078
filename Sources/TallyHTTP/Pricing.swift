import TallyCore
import TallyStore

extension AppServices {
    /// What a usage or hold request costs. Raw `credits` are for the platform key only: an
    /// organisation's own keys spend through priced operations.
    func price(_ body: UsageBody, scope: OrgScope) async throws -> SpendRequest {
        let details = try body.details()
        switch (body.credits, body.operation) {
        case (let credits?, nil):
            guard scope.caller.role == .platform else {
                throw TallyError.forbidden("Raw credits may only be spent with the platform key; spend through an operation.")
            }
            try Validate.positive(credits)
            if body.quantity != nil { throw TallyError.validation("quantity goes with operation, not credits.", field: "quantity") }
            return SpendRequest(credits: credits, usage: details)
        case (nil, _?):
            throw TallyError.validation("Pricing by operation is not available yet.", field: "operation")
        case (_?, _?):
            throw TallyError.validation("Send either credits or operation, not both.", field: "credits")
        case (nil, nil):
            throw TallyError.validation("Send credits or an operation.", field: "credits")
        }
    }
}
