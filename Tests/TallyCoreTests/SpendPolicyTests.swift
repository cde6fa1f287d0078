import Foundation
import Testing
@testable import TallyCore

/// The rules of a spend as a table: the balance, the terms and what the transaction has learned,
/// and the step the core asks for next.
@Suite struct SpendPolicyTests {
    static let usd = Currency.named("USD")!
    static let period = LivePeriod(subscriptionID: UUID(), planCode: "pro", planName: "Pro", start: Instant(secondsSinceEpoch: 0),
                                   end: Instant(secondsSinceEpoch: 100_000), allocation: Credits(100),
                                   overageRate: Money(micros: 50_000, currency: usd))

    /// Terms: overage on (with an optional cap) or off, auto top-up on or off.
    static func terms(overage: Bool = false, cap: Int? = nil, topUp: Bool = false) -> SpendTerms {
        let settings = OrgSettings(
            overageProtection: !overage, overageCapCredits: cap.map(Credits.init),
            autoTopUp: topUp ? .init(enabled: true, thresholdCredits: Credits(5), packCode: "pack-100") : .init(enabled: false, thresholdCredits: nil, packCode: nil),
            lastAutoTopUpAt: nil)
        return SpendTerms(period: period, settings: settings)
    }

    static func balance(_ remaining: String) -> SpendableBalance {
        SpendableBalance(buckets: [bucket(1, .freeCredits, remaining)], at: now)
    }

    enum Expected: Equatable {
        case spend(covered: String, overage: String)
        case checkExpiredHolds, freeExpiredHolds, buyTopUp, readOverageIncurred
        case refuse(String)
    }

    static func step(_ decision: SpendDecision, balance: String) -> Expected {
        var held = Self.balance(balance)
        switch decision.next(&held) {
        case .spend(let plan): return .spend(covered: plan.covered.description, overage: plan.overage.description)
        case .checkExpiredHolds: return .checkExpiredHolds
        case .freeExpiredHolds: return .freeExpiredHolds
        case .buyTopUp: return .buyTopUp
        case .readOverageIncurred: return .readOverageIncurred
        case .refuse(let error): return .refuse(error.code)
        }
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let credits: String
        let balance: String
        let terms: SpendTerms
        var mayFree = true
        var expiredHolds: Bool? = nil
        var topUpTried = false
        var incurred: Int? = nil
        let expected: Expected
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "covered", credits: "4.1", balance: "10", terms: terms(), expected: .spend(covered: "4.1", overage: "0")),
        Case(name: "exactly the balance", credits: "10", balance: "10", terms: terms(), expected: .spend(covered: "10", overage: "0")),
        Case(name: "zero costs nothing", credits: "0", balance: "0", terms: terms(), expected: .spend(covered: "0", overage: "0")),
        Case(name: "short: first ask about expired holds", credits: "11", balance: "10", terms: terms(), expected: .checkExpiredHolds),
        Case(name: "short, expired holds keep credits", credits: "11", balance: "10", terms: terms(), expiredHolds: true,
             expected: .freeExpiredHolds),
        Case(name: "short, holds freed already", credits: "11", balance: "10", terms: terms(), mayFree: false, expected: .refuse("insufficient_credits")),
        Case(name: "short, no holds, strict", credits: "11", balance: "10", terms: terms(), expiredHolds: false,
             expected: .refuse("insufficient_credits")),
        Case(name: "short, auto top-up", credits: "11", balance: "10", terms: terms(topUp: true), expiredHolds: false, expected: .buyTopUp),
        Case(name: "short, top-up tried", credits: "11", balance: "10", terms: terms(topUp: true), expiredHolds: false, topUpTried: true,
             expected: .refuse("insufficient_credits")),
        Case(name: "short, overage: read what the period incurred", credits: "11", balance: "10", terms: terms(overage: true),
             expiredHolds: false, expected: .readOverageIncurred),
        Case(name: "overage wins over auto top-up", credits: "11", balance: "10", terms: terms(overage: true, topUp: true),
             expiredHolds: false, expected: .readOverageIncurred),
        Case(name: "overage, no cap", credits: "11", balance: "10", terms: terms(overage: true), expiredHolds: false, incurred: 1_000,
             expected: .spend(covered: "10", overage: "1")),
        Case(name: "overage up to the cap", credits: "13", balance: "10", terms: terms(overage: true, cap: 5), expiredHolds: false, incurred: 2,
             expected: .spend(covered: "10", overage: "3")),
        Case(name: "overage beyond the cap", credits: "13", balance: "10", terms: terms(overage: true, cap: 5), expiredHolds: false, incurred: 3,
             expected: .refuse("overage_cap_reached")),
        Case(name: "overage from nothing", credits: "2.5", balance: "0", terms: terms(overage: true), mayFree: false, incurred: 0,
             expected: .spend(covered: "0", overage: "2.5")),
    ]

    @Test(arguments: cases)
    func theNextStep(_ c: Case) throws {
        var decision = SpendDecision(credits: try Credits(parsing: c.credits), terms: c.terms, mayFreeExpiredHolds: c.mayFree, topUpTried: c.topUpTried)
        decision.expiredHolds = c.expiredHolds
        decision.overageIncurred = c.incurred.map(Credits.init)
        #expect(Self.step(decision, balance: c.balance) == c.expected)
    }

    /// A refusal leaves the balance as it was; a spend takes its credits from it.
    @Test func onlyASpendMovesTheBalance() throws {
        var held = Self.balance("10")
        let refused = SpendDecision(credits: Credits(11), terms: Self.terms(), mayFreeExpiredHolds: false, topUpTried: false)
        guard case .refuse(let error) = refused.next(&held) else { Issue.record("expected a refusal"); return }
        #expect(error.extras["shortfall"] == "1")
        #expect(held.available == Credits(10))
        let spent = SpendDecision(credits: try Credits(parsing: "1.3"), terms: Self.terms(), mayFreeExpiredHolds: true, topUpTried: false)
        guard case .spend = spent.next(&held) else { Issue.record("expected a spend"); return }
        #expect(held.available == (try Credits(parsing: "8.7")))
    }

    @Test func lowBalanceFiresOnlyWhenCrossed() {
        #expect(LowBalanceRule.crossed(threshold: Credits(10), before: Credits(10), after: Credits(9)))
        #expect(!LowBalanceRule.crossed(threshold: Credits(10), before: Credits(9), after: Credits(8)))
        #expect(!LowBalanceRule.crossed(threshold: Credits(10), before: Credits(12), after: Credits(10)))
        #expect(!LowBalanceRule.crossed(threshold: nil, before: Credits(12), after: Credits(0)))
    }
}
