import Foundation
import Testing
import TallyCore
import TallyStore
import TallyTestSupport

/// A spend is priced with the organisation's context as last read on this replica
/// (`OrgContextCache`), and its transaction checks the context's fingerprint: whatever changed
/// since (settings, the test clock's time, the subscription, the plan) the spend is applied on the
/// terms its transaction sees, never on the kept ones.
@Suite struct SpendContextCacheTests {
    /// The threshold for `balance.low` is set after a spend kept the context without it: the
    /// next spend that crosses it tells, as if nothing had been kept.
    @Test func aSettingChangedAfterTheContextWasKeptCounts() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            #expect(try await server.spend(org, "1").status == 201)
            let orgID = try #require(UUID(idString: org))
            let kept = try #require(server.stores.orgs.spendContexts.context(orgID))
            #expect(kept.settings.lowBalanceCredits == nil)
            // Settings change in the database behind the kept context (another replica's request).
            try await server.pool.query("UPDATE orgs SET low_balance_credits = 5 WHERE org_id = \(orgID)", logger: testLogger)
            #expect(try await server.spend(org, "5").status == 201)   // 9 -> 4: crosses 5
            let lows = try await server.list("/v1/orgs/\(org)/events?limit=100").filter { $0.text("type") == "balance.low" }
            #expect(lows.count == 1)
            #expect(server.stores.orgs.spendContexts.context(orgID)?.settings.lowBalanceCredits == Credits(5))
            #expect(try await server.available(org) == Credits(4))
        }
    }

    /// A test clock moved on behind the kept context: the spend is stamped with the clock's new time.
    @Test func aTestClockMovedAfterTheContextWasKeptCounts() async throws {
        try await TestServer.run { server in
            let clock = try await server.createClock("2026-08-15T12:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.grant(org, "100")
            #expect(try await server.spend(org, "1").status == 201)
            let clockID = try #require(UUID(idString: clock))
            try await server.pool.query("UPDATE test_clocks SET frozen_time = '2026-08-20T09:00:00Z' WHERE test_clock_id = \(clockID)",
                                        logger: testLogger)
            let spent = try await server.spend(org, "2")
            #expect(spent.status == 201)
            #expect(spent["created_at"] == "2026-08-20T09:00:00Z")
            let usage = try await server.list("/v1/orgs/\(org)/ledger?type=usage")
            #expect(usage.map { $0.text("created_at") }.contains("2026-08-20T09:00:00Z"))
            #expect(try await server.verify() == [])
        }
    }

    /// Many spends priced with one kept context while the organisation's settings keep changing:
    /// each is applied once (priced again when its context changed), none is lost or doubled.
    @Test func concurrentSpendsAcrossSettingChangesAreEachAppliedOnce() async throws {
        try await TestServer.run(databaseConnections: 12) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "1000")
            #expect(try await server.spend(org, "1").status == 201)
            let orgID = try #require(UUID(idString: org))
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<40 {
                    group.addTask { try await server.spend(org, "2", key: "many-\(i)").status }
                }
                group.addTask {
                    for percent in 1...8 {
                        try await server.pool.query("UPDATE orgs SET low_balance_credits = \(percent) WHERE org_id = \(orgID)", logger: testLogger)
                    }
                    return 201
                }
                var all: [Int] = []
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses.allSatisfy { $0 == 201 })
            #expect(try await server.count("ledger_entries WHERE type = 'usage'") == 41)
            #expect(try await server.count("idempotency_keys WHERE status_code IS NULL") == 0)
            #expect(try await server.available(org) == Credits(919))
            #expect(try await server.verify() == [])
        }
    }
}
