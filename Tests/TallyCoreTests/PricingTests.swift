import Testing
@testable import TallyCore

private func credits(_ text: String) -> Credits { try! Credits(parsing: text) }
private func factor(_ text: String) -> Factor { try! Factor(parsing: text) }

@Suite struct PricingTests {
    let smartCrop = OperationDefinition(code: "smart_crop", name: "Smart crop", credits: credits("1.3"))
    let backgroundRemoval = OperationDefinition(code: "background_removal", name: "Background removal", credits: credits("2.8"))
    let generation = OperationDefinition(
        code: "image_generation", name: "Image generation", credits: credits("1"),
        tiers: [.init(param: "resolution", value: "512x512", credits: credits("1")),
                .init(param: "resolution", value: "1024x1024", credits: credits("4")),
                .init(param: "resolution", value: "2048x2048", credits: credits("10"))],
        multipliers: [.init(param: "model", value: "standard", factor: factor("1")),
                      .init(param: "model", value: "advanced", factor: factor("1.5"))],
        addons: [.init(param: "transparent_background", credits: credits("1"))]
    )
    let analysis = OperationDefinition(code: "ai_analysis", name: "AI analysis", credits: credits("1"))
    let export = OperationDefinition(code: "export", name: "Export", credits: credits("1"))
    var pipeline: OperationDefinition {
        OperationDefinition(code: "full_pipeline", name: "Full pipeline", credits: nil, components: ["ai_analysis", "export"])
    }
    let preview = OperationDefinition(code: "sample_preview", name: "Sample preview", credits: credits("1"), freeQuantityPerRequest: 5)

    func quote(_ operation: OperationDefinition, _ quantity: Int = 1, _ params: [String: ParamValue] = [:], rates: [String: Credits] = [:]) throws -> OperationQuote {
        try OperationPricing.quote(operation, components: ["ai_analysis": analysis, "export": export], quantity: quantity, params: params, planRates: rates)
    }

    @Test func theSeedArithmetic() throws {
        // Seed 001: with 500 credits, 384 smart crops or 178 background removals fit.
        #expect(try quote(smartCrop).maxQuantity(available: Credits(500)) == 384)
        #expect(try quote(backgroundRemoval).maxQuantity(available: Credits(500)) == 178)
        #expect(try quote(smartCrop, 100).credits == Credits(130))
        #expect(try quote(backgroundRemoval, 83).credits == credits("232.4"))
        // Seed 001's plan: 3,515 smart crops from 4,570 credits.
        #expect(try quote(smartCrop).maxQuantity(available: Credits(4570)) == 3515)
    }

    @Test(arguments: [
        ("512x512", "standard", false, "1"), ("1024x1024", "standard", false, "4"), ("2048x2048", "standard", false, "10"),
        ("1024x1024", "advanced", false, "6"), ("1024x1024", "advanced", true, "7"), ("2048x2048", "advanced", true, "16"),
        ("512x512", "advanced", true, "2.5"),
    ])
    func tiersMultipliersAndAddons(resolution: String, model: String, transparent: Bool, expected: String) throws {
        let result = try quote(generation, 1, ["resolution": .text(resolution), "model": .text(model), "transparent_background": .flag(transparent)])
        #expect(result.unitCredits == credits(expected))
    }

    @Test func withoutTheTierParameterTheBaseApplies() throws {
        #expect(try quote(generation).unitCredits == Credits(1))
        #expect(try quote(generation, 4, ["model": .text("advanced")]).credits == Credits(6))
    }

    @Test func unknownValuesAndParametersAre422WithTheFieldNamed() {
        for (params, field) in [
            (["resolution": ParamValue.text("4096x4096")], "params.resolution"),
            (["model": .text("turbo")], "params.model"),
            (["resolutoin": .text("512x512")], "params.resolutoin"),
            (["transparent_background": .text("yes")], "params.transparent_background"),
            (["resolution": .flag(true)], "params.resolution"),
        ] {
            do {
                _ = try quote(generation, 1, params)
                Issue.record("\(params) should be refused")
            } catch let error as TallyError {
                #expect(error.kind == .unprocessable)
                #expect(error.field == field)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }

    @Test func roundsHalfUpToFourPlacesPerUnitThenMultiplies() throws {
        let odd = OperationDefinition(code: "odd", name: "Odd", credits: credits("1.0001"),
                                      multipliers: [.init(param: "m", value: "x", factor: factor("1.5"))])
        // 1.0001 x 1.5 = 1.50015 -> 1.5002 per unit (half up), then x 3 = 4.5006.
        let result = try OperationPricing.quote(odd, components: [:], quantity: 3, params: ["m": .text("x")], planRates: [:])
        #expect(result.unitCredits == credits("1.5002"))
        #expect(result.credits == credits("4.5006"))
        let down = OperationDefinition(code: "down", name: "Down", credits: credits("1.0001"),
                                       multipliers: [.init(param: "m", value: "x", factor: factor("1.4"))])
        // 1.40014 -> 1.4001
        #expect(try OperationPricing.quote(down, components: [:], quantity: 1, params: ["m": .text("x")], planRates: [:]).unitCredits == credits("1.4001"))
    }

    @Test func multipliersCompound() throws {
        let op = OperationDefinition(code: "c", name: "C", credits: credits("2"),
                                     multipliers: [.init(param: "model", value: "advanced", factor: factor("1.5")),
                                                   .init(param: "batch", value: "4", factor: factor("4"))])
        #expect(try OperationPricing.quote(op, components: [:], quantity: 1, params: ["model": .text("advanced"), "batch": .text("4")], planRates: [:]).unitCredits == Credits(12))
    }

    @Test func pipelinesCostTheSumOfTheirComponents() throws {
        #expect(try quote(pipeline).unitCredits == Credits(2))
        #expect(try quote(pipeline, 10).credits == Credits(20))
        // A plan's rate of a component changes the pipeline's sum; its rate of the pipeline replaces it.
        #expect(try quote(pipeline, 1, rates: ["export": credits("0.5")]).unitCredits == credits("1.5"))
        #expect(try quote(pipeline, 1, rates: ["full_pipeline": credits("1.8")]).unitCredits == credits("1.8"))
    }

    @Test func theFreeQuantityIsFreeAndTheRestIsCharged() throws {
        #expect(try quote(preview, 3).credits == .zero)
        #expect(try quote(preview, 5).credits == .zero)
        #expect(try quote(preview, 6).credits == Credits(1))
        #expect(try quote(preview, 12).billableQuantity == 7)
        #expect(try quote(preview, 3).maxQuantity(available: .zero) == 5)
        #expect(try quote(preview, 1).maxQuantity(available: Credits(2)) == 7)
    }

    @Test func aPlanRateReplacesTheBaseButNotATier() throws {
        #expect(try quote(smartCrop, 10, rates: ["smart_crop": credits("1.1")]).credits == Credits(11))
        #expect(try quote(generation, 1, ["resolution": .text("1024x1024")], rates: ["image_generation": credits("0.5")]).unitCredits == Credits(4))
        #expect(try quote(generation, 1, [:], rates: ["image_generation": credits("0.5")]).unitCredits == credits("0.5"))
    }

    @Test(arguments: [0, -1, 10_001, Int.max])
    func quantitiesOutsideOneToTenThousandAre422(quantity: Int) {
        #expect(throws: TallyError.self) { try quote(smartCrop, quantity) }
    }

    @Test func theCostPerCreditOfTheSeedPlan() throws {
        let plan = Plan(code: "studio", name: "Studio", price: Money(micros: 250_000_000, currency: .usd), interval: .month,
                        creditsPerPeriod: Credits(4570), creditExpiry: .periodEnd, rollover: .none, overageAllowed: true,
                        overageRate: Money(micros: 100_000, currency: .usd), minPurchaseCredits: nil, creditPrice: nil,
                        purchasedCreditsExpireAfterDays: nil, operationRates: [:])
        let perCredit = try #require(plan.costPerCredit)
        #expect(perCredit.amountText == "0.0547")
        // A 4.1-credit operation at that rate: 0.22427 -> 0.2243.
        let cost = Money(micros: credits("4.1").units * perCredit.micros / Credits.unitsPerCredit, currency: .usd)
        #expect(cost.rounded(toDecimalPlaces: 4, .halfAwayFromZero).amountText == "0.2243")
        #expect(plan.costPerCredit != nil)
        let payAsYouGo = Plan(code: "payg", name: "Pay as you go", price: .zero(.usd), interval: .month, creditsPerPeriod: .zero,
                              creditExpiry: .never, rollover: .none, overageAllowed: false, overageRate: nil,
                              minPurchaseCredits: Credits(1000), creditPrice: Money(micros: 50_000, currency: .usd),
                              purchasedCreditsExpireAfterDays: nil, operationRates: [:])
        // Pay-as-you-go (seed 003 "Show cost per credit"): no allocation, so the credit price.
        #expect(payAsYouGo.costPerCredit == Money(micros: 50_000, currency: .usd))
        #expect(throws: Never.self) { try payAsYouGo.validate() }
    }

    @Test func definitionsAreValidated() {
        let known: (String) -> Bool = { ["ai_analysis", "export"].contains($0) }
        #expect(throws: Never.self) { try generation.validate(componentIsOperation: known) }
        #expect(throws: Never.self) { try pipeline.validate(componentIsOperation: known) }
        let nested = OperationDefinition(code: "p2", name: "P2", credits: nil, components: ["full_pipeline"])
        #expect(throws: TallyError.self) { try nested.validate(componentIsOperation: known) }
        let noCredits = OperationDefinition(code: "x", name: "X", credits: nil)
        #expect(throws: TallyError.self) { try noCredits.validate(componentIsOperation: known) }
        let badCode = OperationDefinition(code: "Smart Crop", name: "X", credits: Credits(1))
        #expect(throws: TallyError.self) { try badCode.validate(componentIsOperation: known) }
        let zeroFactor = OperationDefinition(code: "z", name: "Z", credits: Credits(1), multipliers: [.init(param: "m", value: "a", factor: Factor(millionths: 0))])
        #expect(throws: TallyError.self) { try zeroFactor.validate(componentIsOperation: known) }
    }
}
