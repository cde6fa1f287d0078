/// What a unit of work costs: a base in credits, tiers by a parameter's value, multipliers,
/// add-ons, components (a pipeline costs the sum of its parts) and a free quantity per request.
public struct OperationDefinition: Sendable, Equatable {
    public struct Tier: Sendable, Equatable, Codable {
        public let param: String
        public let value: String
        public let credits: Credits
        public init(param: String, value: String, credits: Credits) {
            self.param = param
            self.value = value
            self.credits = credits
        }
    }

    public struct Multiplier: Sendable, Equatable, Codable {
        public let param: String
        public let value: String
        public let factor: Factor
        public init(param: String, value: String, factor: Factor) {
            self.param = param
            self.value = value
            self.factor = factor
        }
    }

    public struct Addon: Sendable, Equatable, Codable {
        /// A boolean parameter: `true` adds `credits` per unit.
        public let param: String
        public let credits: Credits
        public init(param: String, credits: Credits) {
            self.param = param
            self.credits = credits
        }
    }

    /// Bounds that keep every price computable exactly (Int128 holds base x 3 factors).
    public static let creditsMaximum = Credits(1_000_000)
    public static let multiplierParamsMaximum = 3
    public static let listMaximum = 50

    public let code: String
    public let name: String
    /// The base cost of one unit; nil for a pipeline, which costs the sum of its components.
    public let credits: Credits?
    public let tiers: [Tier]
    public let multipliers: [Multiplier]
    public let addons: [Addon]
    public let components: [String]
    public let freeQuantityPerRequest: Int

    public init(code: String, name: String, credits: Credits?, tiers: [Tier] = [], multipliers: [Multiplier] = [],
                addons: [Addon] = [], components: [String] = [], freeQuantityPerRequest: Int = 0) {
        self.code = code
        self.name = name
        self.credits = credits
        self.tiers = tiers
        self.multipliers = multipliers
        self.addons = addons
        self.components = components
        self.freeQuantityPerRequest = freeQuantityPerRequest
    }

    public var isPipeline: Bool { !components.isEmpty }

    /// The shape rules of a definition; `componentExists` tells whether a component is a known,
    /// non-pipeline operation (pipelines do not nest, so they can never form a cycle).
    public func validate(componentIsOperation: (String) -> Bool) throws(TallyError) {
        try CatalogRules.code(code)
        try CatalogRules.name(name)
        if isPipeline {
            guard credits == nil else { throw TallyError.validation("A pipeline costs the sum of its components; leave credits out.", field: "credits") }
            guard tiers.isEmpty else { throw TallyError.validation("A pipeline has no tiers of its own.", field: "tiers") }
            guard Set(components).count == components.count else { throw TallyError.validation("components must not repeat.", field: "components") }
            for (index, component) in components.enumerated() where component == code || !componentIsOperation(component) {
                throw TallyError.validation("Component '\(component)' is not an operation (pipelines do not nest).", field: "components[\(index)]")
            }
        } else {
            guard let credits else { throw TallyError.validation("credits is required (or components for a pipeline).", field: "credits") }
            try Self.checkCredits(credits, field: "credits")
        }
        guard tiers.count <= Self.listMaximum, multipliers.count <= Self.listMaximum, addons.count <= Self.listMaximum,
              components.count <= Self.listMaximum else {
            throw TallyError.validation("At most \(Self.listMaximum) tiers, multipliers, add-ons and components.", field: "tiers")
        }
        for (index, tier) in tiers.enumerated() {
            try CatalogRules.code(tier.param, field: "tiers[\(index)].param")
            try Self.checkCredits(tier.credits, field: "tiers[\(index)].credits")
        }
        guard Set(tiers.map(\.param)).count <= 1 else {
            throw TallyError.validation("Tiers price one parameter; use multipliers for others.", field: "tiers")
        }
        guard Set(tiers.map(\.value)).count == tiers.count else { throw TallyError.validation("Tier values must not repeat.", field: "tiers") }
        for (index, multiplier) in multipliers.enumerated() {
            try CatalogRules.code(multiplier.param, field: "multipliers[\(index)].param")
            guard multiplier.factor.millionths > 0, multiplier.factor <= Factor.maximum else {
                throw TallyError.validation("factor must be above 0 and at most \(Factor.maximum).", field: "multipliers[\(index)].factor")
            }
            guard !tiers.contains(where: { $0.param == multiplier.param }) else {
                throw TallyError.validation("A parameter is priced by tiers or by multipliers, not both.", field: "multipliers[\(index)].param")
            }
        }
        guard Set(multipliers.map { "\($0.param)=\($0.value)" }).count == multipliers.count else {
            throw TallyError.validation("Multiplier values must not repeat.", field: "multipliers")
        }
        guard Set(multipliers.map(\.param)).count <= Self.multiplierParamsMaximum else {
            throw TallyError.validation("At most \(Self.multiplierParamsMaximum) parameters may carry multipliers.", field: "multipliers")
        }
        for (index, addon) in addons.enumerated() {
            try CatalogRules.code(addon.param, field: "addons[\(index)].param")
            try Self.checkCredits(addon.credits, field: "addons[\(index)].credits")
        }
        guard (0...OperationPricing.quantityMaximum).contains(freeQuantityPerRequest) else {
            throw TallyError.validation("free_quantity_per_request must be between 0 and \(OperationPricing.quantityMaximum).", field: "free_quantity_per_request")
        }
    }

    static func checkCredits(_ credits: Credits, field: String) throws(TallyError) {
        guard !credits.isNegative, credits <= creditsMaximum else {
            throw TallyError.validation("\(field) must be between 0 and \(creditsMaximum).", field: field)
        }
    }
}

/// A multiplier such as 1.5: millionths, exact.
public struct Factor: Sendable, Equatable, Comparable, CustomStringConvertible, Codable {
    public static let scale = 6
    public static let maximum = Factor(millionths: 1_000_000_000)
    public let millionths: Int64

    public init(millionths: Int64) { self.millionths = millionths }

    public init(parsing text: some StringProtocol) throws(DecimalText.ParseError) {
        millionths = try DecimalText.parse(text, scale: Self.scale)
    }

    public var description: String { DecimalText.format(millionths, scale: Self.scale) }

    /// Written and read as its decimal text ("1.5"), like credits: exact, never a binary float.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try Factor(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.explanation)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
    public static func < (a: Factor, b: Factor) -> Bool { a.millionths < b.millionths }
}

/// A pricing parameter's value as the request gave it.
public enum ParamValue: Sendable, Equatable {
    case text(String)
    case flag(Bool)
}

/// The exact cost of a request.
public struct OperationQuote: Sendable, Equatable {
    public let operation: String
    public let quantity: Int
    /// The cost of one unit after tiers, multipliers and add-ons, rounded half up to 4 places.
    public let unitCredits: Credits
    /// The quantity that is charged: the quantity less the free quantity per request.
    public let billableQuantity: Int
    /// The operation's free quantity per request (e.g. the first 5 previews).
    public let freeQuantityPerRequest: Int
    public let credits: Credits

    /// The largest whole quantity `available` credits cover in one request, up to the maximum.
    public func maxQuantity(available: Credits) -> Int {
        guard unitCredits.isPositive else { return OperationPricing.quantityMaximum }
        let affordable = unitCredits.wholeTimes(in: available)
        return Int(min(Int64(OperationPricing.quantityMaximum), Int64(freeQuantityPerRequest) + affordable))
    }
}

/// Pricing: `round_half_up_4((tier or base) x multipliers + add-ons)` per unit, times the
/// quantity after the free quantity. A plan's rate for the operation replaces its base.
public enum OperationPricing {
    public static let quantityMaximum = 10_000

    public static func quote(
        _ operation: OperationDefinition, components: [String: OperationDefinition], quantity: Int,
        params: [String: ParamValue], planRates: [String: Credits]
    ) throws(TallyError) -> OperationQuote {
        guard quantity >= 1, quantity <= quantityMaximum else {
            throw TallyError.validation("quantity must be between 1 and \(quantityMaximum).", field: "quantity")
        }
        let parts = operation.components.compactMap { components[$0] }
        precondition(parts.count == operation.components.count, "a pipeline's components are loaded with it")
        try checkParams(params, known: [operation] + parts)

        let base: Credits
        if let rate = planRates[operation.code] {
            base = rate
        } else if operation.isPipeline {
            var sum = Credits.zero
            for part in parts { sum += try unitCredits(part, base: planRates[part.code] ?? part.credits ?? .zero, params: params) }
            base = sum
        } else {
            base = operation.credits ?? .zero
        }
        let unit = try unitCredits(operation, base: base, params: params)
        let billable = max(0, quantity - operation.freeQuantityPerRequest)
        guard let credits = unit.multiplied(by: billable), credits <= Credits.inputMaximum else {
            throw TallyError.validation("The request costs more credits than one request may spend.", field: "quantity")
        }
        return OperationQuote(operation: operation.code, quantity: quantity, unitCredits: unit, billableQuantity: billable,
                              freeQuantityPerRequest: operation.freeQuantityPerRequest, credits: credits)
    }

    /// One unit: the matching tier's credits (else `base`), times every matching multiplier, plus
    /// every add-on switched on; exact until the one rounding, half up to 4 places.
    static func unitCredits(_ operation: OperationDefinition, base: Credits, params: [String: ParamValue]) throws(TallyError) -> Credits {
        var start = base
        if let tierParam = operation.tiers.first?.param, case .text(let value)? = params[tierParam],
           let tier = operation.tiers.first(where: { $0.value == value }) {
            start = tier.credits
        }
        // numerator / 10^(6k) credit-units, k = the number of factors applied. Every step is
        // checked: a catalog may stack enough multipliers to leave any integer type behind.
        let outOfRange = TallyError.validation("The price of one unit is out of range.", field: "params")
        var numerator = start.units
        var denominator = Int128(1)
        for multiplier in operation.multipliers {
            if case .text(let value)? = params[multiplier.param], value == multiplier.value {
                let (scaled, overflow) = numerator.multipliedReportingOverflow(by: Int128(multiplier.factor.millionths))
                let (wider, overflow2) = denominator.multipliedReportingOverflow(by: 1_000_000)
                guard !overflow, !overflow2 else { throw outOfRange }
                (numerator, denominator) = (scaled, wider)
            }
        }
        for addon in operation.addons where params[addon.param] == .flag(true) {
            let (part, overflow) = addon.credits.units.multipliedReportingOverflow(by: denominator)
            let (sum, overflow2) = numerator.addingReportingOverflow(part)
            guard !overflow, !overflow2 else { throw outOfRange }
            numerator = sum
        }
        let units = RoundingRule.halfAwayFromZero.divide(numerator, by: denominator)
        guard units.magnitude <= Credits.inputMaximum.units.magnitude else { throw outOfRange }
        return Credits(units: units)
    }

    /// Every parameter must mean something to the operation (or its components), and a priced
    /// value must be one the catalog lists: a typo is a 422, never a silent base price.
    static func checkParams(_ params: [String: ParamValue], known operations: [OperationDefinition]) throws(TallyError) {
        var values: [String: Set<String>] = [:]
        var flags: Set<String> = []
        for operation in operations {
            for tier in operation.tiers { values[tier.param, default: []].insert(tier.value) }
            for multiplier in operation.multipliers { values[multiplier.param, default: []].insert(multiplier.value) }
            for addon in operation.addons { flags.insert(addon.param) }
        }
        for (name, value) in params.sorted(by: { $0.key < $1.key }) {
            let field = "params.\(name)"
            if let allowed = values[name] {
                guard case .text(let text) = value else { throw TallyError.validation("\(field) must be a string.", field: field) }
                guard allowed.contains(text) else {
                    throw TallyError.validation("\(field) '\(text)' is not one of: \(allowed.sorted().joined(separator: ", ")).", field: field)
                }
            } else if flags.contains(name) {
                guard case .flag = value else { throw TallyError.validation("\(field) must be true or false.", field: field) }
            } else {
                throw TallyError.validation("\(field) is not a parameter of this operation.", field: field)
            }
        }
    }
}
