import Foundation
import PropertyBased
import Testing
@testable import TallyCore

/// Properties over the whole range of amounts Tally can meet: anything a numeric(20,4) or
/// numeric(20,6) column can hold (10^20 units), not only what a client may send. None of these
/// may trap; each checks an exact identity against plain Int128 arithmetic. A failure prints the
/// seed that reproduces it (`.fixedSeed(...)`, not to be committed).
@Suite
struct ExtremeAmountsPropertyTests {
    @Test func sumsAndDifferencesOfStoredAmountsAreExact() async {
        await propertyCheck(count: 500, input: Gen.int64().array(of: 1...2_000)) { seeds in
            // Units of a numeric(20,4): up to 10^20 in magnitude, beyond Int64.
            let units = seeds.map { Int128($0) * 10 + Int128($0 % 7) }
            let amounts = units.map { Credits(units: $0) }
            let sum = amounts.sum()
            #expect(sum.units == units.reduce(0, +))
            #expect((sum - amounts[0]) + amounts[0] == sum)
        }
    }

    @Test func textRoundTripsForEveryAmountAClientMaySend() async {
        await propertyCheck(count: 2_000, input: Gen.int64(in: -10_000_000_000_000_000...10_000_000_000_000_000)) { units in
            let credits = Credits(units: Int128(units))
            #expect((try? Credits(parsing: credits.description)) == credits)
        }
    }

    @Test func burnDownOverHugeBucketsAccountsForEveryCredit() async {
        await propertyCheck(count: 200, input: Gen.int64(in: 1...Int64.max).array(of: 1...300), Gen.int64(in: 1...Int64.max)) { seeds, spendSeed in
            let remainders = seeds.map { Int128($0) * 10 }
            let now = Instant(microsecondsSinceEpoch: 1_800_000_000_000_000)
            let list = remainders.enumerated().map { index, units in
                CreditBucket(id: UUID(), source: .adminGrant, granted: Credits(units: units), remaining: Credits(units: units),
                             priority: index % 3, effectiveAt: now, expiresAt: nil, grantedAt: now)
            }
            let available = BurnDown.available(in: list, at: now)
            #expect(available.units == remainders.reduce(0, +))
            // Any spend up to twice what is there: covered from buckets, the rest overage.
            let credits = Credits(units: Int128(spendSeed) % (available.units * 2) + 1)
            guard let plan = try? BurnDown.plan(spending: credits, from: list, at: now, allowOverage: true) else {
                Issue.record("a spend with overage allowed cannot be refused")
                return
            }
            #expect(plan.total == credits)
            #expect(plan.covered == min(credits, available))
            #expect(plan.draws.allSatisfy { $0.credits.isPositive })
        }
    }

    @Test func pricesOfHugeAmountsAtLargeRatesAreExactAndRoundOnce() async {
        await propertyCheck(count: 2_000, input: Gen.int64(in: 0...Int64.max), Gen.int64(in: 0...1_000_000_000_000_000_000)) { units, rateSeed in
            let rateMicros = Int128(rateSeed)
            let credits = Credits(units: Int128(units) * 10)  // up to 10^20 units, a full numeric(20,4)
            let rate = Money(micros: rateMicros, currency: .usd)
            let price = rate.priceOf(credits, .halfAwayFromZero)
            // Exact product at scale 10, rounded once to cents (scale 2): 10^8 per cent.
            let exact = credits.units * rateMicros
            let cents = RoundingRule.halfAwayFromZero.divide(exact, by: 100_000_000)
            #expect(price.micros == cents * 10_000)
            #expect(!price.isNegative)
        }
    }

    @Test func moneyInputIsBoundedAndExact() async {
        await propertyCheck(count: 2_000, input: Gen.int64(in: -1_000_000_000_000_000_000...1_000_000_000_000_000_000)) { micros in
            let money = Money(micros: Int128(micros), currency: .usd)
            let parsed = try? Money(parsing: DecimalText.format(money.micros, scale: 6), currency: .usd, maximumDecimalPlaces: 6)
            #expect(parsed == money)
        }
        #expect(throws: DecimalText.ParseError.outOfRange) {
            try Money(parsing: "1000000000000.000001", currency: .usd, maximumDecimalPlaces: 6)
        }
    }

    /// Validation keeps catalog definitions small (3 multipliers of at most 1000x); a definition
    /// that got past it (a row from an older version) still prices to an error, not a trap.
    @Test func stackedMultipliersBecomeAClearErrorNotATrap() throws {
        let base = Credits(1_000_000_000_000)
        let operation = OperationDefinition(
            code: "upscale", name: "Upscale", credits: base,
            multipliers: (0..<8).map { .init(param: "p\($0)", value: "x", factor: .init(millionths: 999_000_000)) }
        )
        let params = Dictionary(uniqueKeysWithValues: (0..<8).map { ("p\($0)", ParamValue.text("x")) })
        #expect(throws: TallyError.self) {
            try OperationPricing.unitCredits(operation, base: base, params: params)
        }
    }
}
