import Foundation
import Testing
import TallyCore
import TallyTestSupport

/// Amounts at the limits: nothing traps, what is too large is a 422 that writes nothing.
@Suite struct LargeAmountsTests {
    /// 1,000 buckets of a trillion credits each: 10^15 credits, more than Int64 ten-thousandths
    /// can sum. Written directly (as rows from before the limits existed could be): the balance,
    /// a spend across them and the ledger still answer exactly, and the server stays up.
    @Test func aBalanceBeyondInt64IsReadAndSpentExactly() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "1000000000000")
            try await server.pool.query("""
                INSERT INTO credit_buckets (org_id, bucket_id, source, granted, remaining, priority, effective_at, expires_at, granted_at, grant_entry_id)
                SELECT org_id, gen_random_uuid(), source, granted, remaining, priority, effective_at, expires_at, granted_at, grant_entry_id
                FROM credit_buckets, generate_series(1, 999)
                """, logger: testLogger)
            let balance = try await server.request(.GET, "/v1/orgs/\(org)/balance", key: server.platformKey)
            #expect(balance.status == 200)
            #expect(balance["available"] == "1000000000000000")
            let spend = try await server.spend(org, "1000000000000")
            #expect(spend.status == 201, "\(spend.text)")
            #expect(spend["available_after"] == "999000000000000")
            #expect(try await server.request(.GET, "/healthz").status == 200)
        }
    }

    /// An organisation holds at most ten trillion credits: the grant that would pass it is 422
    /// and writes nothing; the database refuses an oversized row even when the code is bypassed.
    @Test func grantsStopAtTheBalanceMaximum() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            for _ in 0..<10 {
                try await server.grant(org, "1000000000000")
            }
            let entries = try await server.ledgerCount(org)
            let refused = try await server.request(.POST, "/v1/orgs/\(org)/grants", key: server.platformKey,
                                                   json: #"{"credits": "0.0001", "source": "admin_grant"}"#, headers: [("Idempotency-Key", "over")])
            #expect(refused.status == 422)
            #expect(refused["code"] == "balance_limit_exceeded")
            #expect(try await server.ledgerCount(org) == entries)
            #expect(try await server.available(org) == Credits.balanceMaximum)
            // Spend some, and there is room again.
            #expect(try await server.spend(org, "5").status == 201)
            try await server.grant(org, "5")

            await #expect(throws: (any Error).self) {
                try await server.pool.query("UPDATE credit_buckets SET granted = 10000000000001, remaining = 10000000000001", logger: testLogger)
            }
        }
    }
}
