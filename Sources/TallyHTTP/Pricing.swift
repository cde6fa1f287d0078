import TallyCore
import TallyJSON
import TallyStore

extension AppServices {
    /// What a usage or hold request costs. Raw `credits` are spent by the platform key only: an
    /// organisation's own keys spend through priced operations. Any key may hold raw credits
    /// (`isHold`): a hold is an estimate, and its commit spends what the work really cost.
    func price(_ body: UsageBody, scope: OrgScope, isHold: Bool = false) async throws -> SpendRequest {
        var details = try body.details()
        switch (body.credits, body.operation) {
        case (let credits?, nil):
            guard isHold || scope.caller.role == .platform else {
                throw TallyError.forbidden("Raw credits may only be spent with the platform key; spend through an operation.")
            }
            try Validate.positive(credits)
            if body.quantity != nil { throw TallyError.validation("quantity goes with operation, not credits.", field: "quantity") }
            if body.params != nil { throw TallyError.validation("params go with operation, not credits.", field: "params") }
            return SpendRequest(credits: credits, usage: details)
        case (nil, let operation?):
            let quote = try await quote(operation: operation, quantity: body.quantity ?? 1, params: body.params, scope: scope)
            details.quantity = quote.quantity
            return SpendRequest(credits: quote.credits, usage: details)
        case (_?, _?):
            throw TallyError.validation("Send either credits or operation, not both.", field: "credits")
        case (nil, nil):
            throw TallyError.validation("Send credits or an operation.", field: "credits")
        }
    }

    /// The exact cost of `quantity` of an operation for this organisation (its plan's rates apply).
    func quote(operation code: String, quantity: Int, params: JSONValue?, scope: OrgScope) async throws -> OperationQuote {
        guard let (operation, components) = try await stores.catalog.pricing(code, catalogVersion: scope.context.catalogVersion) else {
            throw TallyError(.notFound, code: "unknown_operation", detail: "There is no operation '\(code)'.", field: "operation")
        }
        let planRates = scope.context.planRates
        return try OperationPricing.quote(operation, components: components, quantity: quantity,
                                          params: try ParamValues.parse(params), planRates: planRates)
    }
}

enum ParamValues {
    /// `params` as pricing reads them: strings and numbers are values, booleans switch add-ons.
    static func parse(_ params: JSONValue?) throws(TallyError) -> [String: ParamValue] {
        guard let params else { return [:] }
        guard case .object(let members) = params else { throw TallyError.validation("params must be an object.", field: "params") }
        var values: [String: ParamValue] = [:]
        for (name, value) in members {
            switch value {
            case .string(let text): values[name] = .text(text)
            case .number(let literal): values[name] = .text(literal)
            case .bool(let flag): values[name] = .flag(flag)
            default: throw TallyError.validation("params.\(name) must be a string, a number or a boolean.", field: "params.\(name)")
            }
        }
        return values
    }
}
