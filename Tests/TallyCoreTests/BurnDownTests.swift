import Foundation
import Testing
@testable import TallyCore

/// Builds buckets for tables: ids are fixed so that the last tie-break is visible.
func bucket(_ n: UInt8, _ source: BucketSource, _ remaining: String, priority: Int? = nil, expires: Int64? = nil,
            granted: Int64 = 0, effective: Int64 = 0) -> CreditBucket {
    let credits = try! Credits(parsing: remaining)
    return CreditBucket(id: UUID(uuid: (0, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, n)), source: source,
                        granted: max(credits, Credits(1)), remaining: credits, priority: priority ?? source.defaultPriority,
                        effectiveAt: Instant(secondsSinceEpoch: effective), expiresAt: expires.map(Instant.init(secondsSinceEpoch:)),
                        grantedAt: Instant(secondsSinceEpoch: granted))
}

let now = Instant(secondsSinceEpoch: 1000)

@Suite struct BurnDownOrderTests {
    @Test func priorityThenExpiryThenGrantThenID() {
        let buckets = [
            bucket(1, .purchase, "10", expires: nil, granted: 1),          // 30, never
            bucket(2, .purchase, "10", expires: 5000, granted: 2),         // 30, expires
            bucket(3, .freeCredits, "10", expires: nil, granted: 3),       // 10, never
            bucket(4, .planAllocation, "10", expires: 4000, granted: 4),   // 20
            bucket(5, .freeCredits, "10", expires: 2000, granted: 5),      // 10, expires sooner
            bucket(6, .purchase, "10", expires: 5000, granted: 1),         // 30, same expiry, older grant
            bucket(8, .purchase, "10", expires: 5000, granted: 1),         // same as 6 but larger id
        ]
        let order = BurnDown.spendable(buckets, at: now).map { $0.id.uuid.15 }
        #expect(order == [5, 3, 4, 6, 8, 2, 1])
    }

    @Test func expiredEmptyAndFutureBucketsAreNeitherSpentNorCounted() {
        let buckets = [
            bucket(1, .freeCredits, "10", expires: 1000),             // expires exactly now
            bucket(2, .freeCredits, "10", expires: 999),              // expired
            bucket(3, .freeCredits, "0"),                             // empty
            bucket(4, .freeCredits, "10", effective: 1001),           // not yet effective
            bucket(5, .purchase, "7", expires: 1001),                 // still good for a second
        ]
        #expect(BurnDown.spendable(buckets, at: now).map { $0.id.uuid.15 } == [5])
        #expect(BurnDown.available(in: buckets, at: now) == Credits(7))
    }

    @Test func anInstantIsExpiredFromItsExpiryOnToTheMicrosecond() {
        let b = bucket(1, .freeCredits, "1", expires: 1000)
        #expect(b.isSpendable(at: Instant(microsecondsSinceEpoch: 999_999_999)))
        #expect(!b.isSpendable(at: Instant(microsecondsSinceEpoch: 1_000_000_000)))
        #expect(!b.isSpendable(at: Instant(microsecondsSinceEpoch: 1_000_001_000)))
    }
}

@Suite struct BurnDownPlanTests {
    let buckets = [
        bucket(1, .freeCredits, "5"),
        bucket(2, .purchase, "10", expires: 9000),
        bucket(3, .purchase, "2.5"),
    ]

    /// Spend -> the draws as "bucket:credits", in the order taken.
    static let cases: [(spend: String, draws: String)] = [
        ("1.3", "1:1.3"),
        ("5", "1:5"),
        ("5.0001", "1:5 2:0.0001"),
        ("15", "1:5 2:10"),
        ("17.5", "1:5 2:10 3:2.5"),
    ]

    @Test(arguments: cases.indices)
    func spansBucketsInOrder(index: Int) throws {
        let (spend, expected) = Self.cases[index]
        let plan = try BurnDown.plan(spending: try Credits(parsing: spend), from: buckets, at: now)
        let described = plan.draws.map { "\($0.bucketID.uuid.15):\($0.credits)" }.joined(separator: " ")
        #expect(described == expected)
        #expect(plan.overage == .zero)
        #expect(plan.total == (try Credits(parsing: spend)))
    }

    @Test func refusesWithTheShortfallAndChangesNothing() throws {
        var balance = SpendableBalance(buckets: buckets, at: now)
        #expect(throws: TallyError.insufficientCredits(required: try Credits(parsing: "17.5001"), available: try Credits(parsing: "17.5"))) {
            try balance.spend(try Credits(parsing: "17.5001"))
        }
        #expect(balance.available == (try Credits(parsing: "17.5")))
        let error = TallyError.insufficientCredits(required: Credits(20), available: try Credits(parsing: "17.5"))
        #expect(error.extras["shortfall"] == "2.5")
        #expect(error.kind == .paymentRequired)
    }

    @Test func overageTakesEverythingThenRecordsTheRest() throws {
        let plan = try BurnDown.plan(spending: Credits(20), from: buckets, at: now, allowOverage: true)
        #expect(plan.covered == (try Credits(parsing: "17.5")))
        #expect(plan.overage == (try Credits(parsing: "2.5")))
        let empty = try BurnDown.plan(spending: try Credits(parsing: "4.1"), from: [], at: now, allowOverage: true)
        #expect(empty.draws.isEmpty)
        #expect(empty.overage == (try Credits(parsing: "4.1")))
    }

    @Test func aBatchOfSpendsGetsWhatTheSameSpendsGetOneByOne() throws {
        var balance = SpendableBalance(buckets: [bucket(1, .freeCredits, "500")], at: now)
        var succeeded = 0
        var refused = 0
        for _ in 0..<1000 {
            do {
                _ = try balance.spend(Credits(3))
                succeeded += 1
            } catch {
                refused += 1
            }
        }
        #expect(succeeded == 166)
        #expect(refused == 834)
        #expect(balance.available == Credits(2))
    }
}

@Suite struct ReversalPlanTests {
    let a = UUID(uuid: (0, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 1))
    let b = UUID(uuid: (0, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 2))

    var spent: SpentCredits {
        SpentCredits(draws: [.init(bucketID: a, credits: Credits(5)), .init(bucketID: b, credits: Credits(3))], overage: Credits(2))
    }

    @Test func reversesOverageFirstThenTheLastBucketDrawn() throws {
        let plan = try Reversal.plan(spent: spent, alreadyReversed: .zero, requested: Credits(4), isExpired: { _ in false })
        #expect(plan.overage == Credits(2))
        #expect(plan.returns == [.init(bucketID: b, credits: Credits(2))])
        #expect(plan.refund == .zero)
    }

    @Test func continuesWhereEarlierReversalsStopped() throws {
        let plan = try Reversal.plan(spent: spent, alreadyReversed: Credits(4), requested: Credits(3), isExpired: { _ in false })
        #expect(plan.overage == .zero)
        #expect(plan.returns == [.init(bucketID: b, credits: Credits(1)), .init(bucketID: a, credits: Credits(2))])
    }

    @Test func anExpiredBucketsShareBecomesARefund() throws {
        let plan = try Reversal.plan(spent: spent, alreadyReversed: .zero, requested: nil, isExpired: { $0 == self.a })
        #expect(plan.total == Credits(10))
        #expect(plan.refund == Credits(5))
        #expect(plan.returns == [.init(bucketID: b, credits: Credits(3))])
    }

    @Test func neverMoreThanWasSpent() throws {
        #expect(throws: TallyError.self) {
            try Reversal.plan(spent: spent, alreadyReversed: Credits(9), requested: Credits(2), isExpired: { _ in false })
        }
        do {
            _ = try Reversal.plan(spent: spent, alreadyReversed: Credits(10), requested: nil, isExpired: { _ in false })
            Issue.record("a full second reversal must be refused")
        } catch {
            #expect(error.code == "already_reversed")
        }
        let rest = try Reversal.plan(spent: spent, alreadyReversed: Credits(9), requested: nil, isExpired: { _ in false })
        #expect(rest.total == Credits(1))
        #expect(rest.returns == [.init(bucketID: a, credits: Credits(1))])
    }
}

@Suite struct HoldSettlementTests {
    let a = UUID(uuid: (0, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 1))
    let b = UUID(uuid: (0, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 2))

    @Test(arguments: [("0", "0", "20"), ("12.5", "12.5", "7.5"), ("15", "15", "5"), ("20", "20", "0")])
    func capturesFirstDrawnFirstAndReleasesTheRest(capture: String, captured: String, released: String) throws {
        let draws: [BurnDownPlan.Draw] = [.init(bucketID: a, credits: Credits(15)), .init(bucketID: b, credits: Credits(5))]
        let result = HoldSettlement.capture(try Credits(parsing: capture), from: draws)
        #expect(result.captured.map(\.credits).sum() == (try Credits(parsing: captured)))
        #expect(result.released.map(\.credits).sum() == (try Credits(parsing: released)))
        // First drawn, first captured; capturing nothing captures no bucket at all.
        #expect(result.captured.first?.bucketID == (capture == "0" ? nil : a))
    }
}

@Suite struct OverageRulesTests {
    @Test func theCapAllowsUpToItAndRefusesBeyond() throws {
        try OverageRules.check(needed: Credits(5), incurred: Credits(95), cap: Credits(100))
        try OverageRules.check(needed: Credits(500), incurred: Credits(95), cap: nil)
        do {
            try OverageRules.check(needed: try Credits(parsing: "5.0001"), incurred: Credits(95), cap: Credits(100))
            Issue.record("beyond the cap must be refused")
        } catch let error as TallyError {
            #expect(error.code == "overage_cap_reached")
            #expect(error.kind == .paymentRequired)
        }
    }

    @Test func theSeedOverageLines() throws {
        let rate = try Money(parsing: "0.10", currency: .usd, maximumDecimalPlaces: 6)
        #expect(OverageRules.line(credits: try Credits(parsing: "4.1"), rate: rate).amount.amountText == "0.41")
        #expect(OverageRules.line(credits: try Credits(parsing: "2.1"), rate: rate).amount.amountText == "0.21")
        #expect(OverageRules.line(credits: try Credits(parsing: "6.2"), rate: rate).amount.amountText == "0.62")
    }

    @Test func protectionOrAPlanWithoutOverageMeansNoOverage() {
        let period = LivePeriod(subscriptionID: UUID(), planCode: "p", planName: "P", start: now, end: now.adding(days: 30),
                                allocation: Credits(100), overageRate: Money(micros: 100_000, currency: .usd))
        let off = OrgSettings(overageProtection: false, overageCapCredits: Credits(50), autoTopUp: .init(enabled: false, thresholdCredits: nil, packCode: nil), lastAutoTopUpAt: nil)
        #expect(SpendTerms(period: period, settings: off).overage?.capCredits == Credits(50))
        #expect(SpendTerms(period: period, settings: .defaults).overage == nil)
        let noOveragePlan = LivePeriod(subscriptionID: UUID(), planCode: "p", planName: "P", start: now, end: now, allocation: .zero, overageRate: nil)
        #expect(SpendTerms(period: noOveragePlan, settings: off).overage == nil)
        #expect(SpendTerms(period: nil, settings: off).overage == nil)
    }

    @Test func invoicedOverageComesBackAsRefundCredits() throws {
        let a = UUID()
        let spent = SpentCredits(draws: [.init(bucketID: a, credits: Credits(2))], overage: try Credits(parsing: "2.1"))
        let drafted = try Reversal.plan(spent: spent, alreadyReversed: .zero, requested: nil, isExpired: { _ in false })
        #expect(drafted.overage == (try Credits(parsing: "2.1")))
        let invoiced = try Reversal.plan(spent: spent, alreadyReversed: .zero, requested: nil, overageInvoiced: true, isExpired: { _ in false })
        #expect(invoiced.overage == .zero)
        #expect(invoiced.refund == (try Credits(parsing: "2.1")))
        #expect(invoiced.returns == [.init(bucketID: a, credits: Credits(2))])
    }
}
