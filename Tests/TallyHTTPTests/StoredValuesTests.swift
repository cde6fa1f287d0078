import Foundation
import Testing
import TallyCore
import TallyTestSupport

/// A stored value outside its closed set is corruption or a row from a newer migration: reading
/// it fails loudly (500, logged) instead of being billed as some default.
@Suite struct StoredValuesTests {
    @Test func anUnknownBucketSourceFailsTheReadInsteadOfCountingAsAnAdminGrant() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let bucket = try await server.grant(org, "10")
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: server.platformKey).status == 200)
            try await server.pool.query("ALTER TABLE credit_buckets DROP CONSTRAINT credit_buckets_source_check", logger: testLogger)
            try await server.pool.query("UPDATE credit_buckets SET source = 'loyalty' WHERE bucket_id = \(UUID(uuidString: bucket)!)", logger: testLogger)
            let balance = try await server.request(.GET, "/v1/orgs/\(org)/balance", key: server.platformKey)
            #expect(balance.status == 500)
            #expect(balance["code"] == "internal_error")
            let spend = try await server.spend(org, "1")
            #expect(spend.status == 500)
            #expect(try await server.ledgerCount(org) == 1)   // the grant only: nothing was spent from it
        }
    }

    @Test func anUnknownRolloverPolicyFailsThePlanRead() async throws {
        try await TestServer.run { server in
            try await server.createPlan("p", price: "10.00", credits: "100")
            #expect(try await server.request(.GET, "/v1/plans/p", key: server.platformKey).status == 200)
            try await server.pool.query("ALTER TABLE plans DROP CONSTRAINT plans_rollover_check", logger: testLogger)
            try await server.pool.query("UPDATE plans SET rollover = 'half' WHERE code = 'p'", logger: testLogger)
            #expect(try await server.request(.GET, "/v1/plans/p", key: server.platformKey).status == 500)
        }
    }
}
