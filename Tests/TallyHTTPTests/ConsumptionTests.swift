import AsyncHTTPClient
import Foundation
import Testing
import TallyCore
import TallyTestSupport

@Suite struct ConsumptionTests {
    /// Balance 500; 1000 concurrent consumes of 3 credits from real parallel HTTP clients over
    /// at least 16 database connections: exactly 166 succeed, 834 get 402, 2 credits remain.
    @Test func concurrentSpendsNeverOverdraw() async throws {
        try await TestServer.run(databaseConnections: 24) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "500")
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<1000 {
                    group.addTask { try await server.spend(org, "3").status }
                }
                var statuses: [Int] = []
                for try await status in group { statuses.append(status) }
                return statuses
            }
            #expect(statuses.filter { $0 == 201 }.count == 166)
            #expect(statuses.filter { $0 == 402 }.count == 834)
            #expect(try await server.available(org) == Credits(2))
            #expect(try await server.verify() == [])
            let usage = try await server.pool.query("SELECT count(*), sum(credits) FROM ledger_entries WHERE type = 'usage'", logger: testLogger).collect()
            let (count, sum) = try usage[0].decode((Int, Credits).self)
            #expect(count == 166)
            #expect(sum == Credits(-498))
        }
    }

    @Test func aSpendReportsWhatItDrewAndWhatIsLeft() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let free = try await server.grant(org, "5", source: "free_credits")
            let paid = try await server.grant(org, "10", source: "refund")
            let response = try await server.spend(org, "7.3", extra: #", "event_id": "evt_1", "event_name": "Wedding", "actor": "user_7", "metadata": {"batch": 3}"#)
            #expect(response.status == 201)
            #expect(response["credits"] == "7.3")
            #expect(response["available_after"] == "7.7")
            #expect(response["overage_credits"] == "0")
            guard case .array(let drawn)? = try response.json["drawn"] else { Issue.record("no drawn"); return }
            #expect(drawn.map { $0.text("bucket_id") } == [free, paid])
            #expect(drawn.map { $0.text("credits") } == ["5", "2.3"])
            let entries = try await server.list("/v1/orgs/\(org)/ledger?type=usage")
            #expect(entries.count == 1)
            #expect(entries[0].text("credits") == "-7.3")
            #expect(entries[0].text("event_id") == "evt_1")
            #expect(entries[0].text("actor") == "user_7")
            #expect(entries[0]["metadata"] == .object([("batch", .number("3"))]))
        }
    }

    @Test func burnsFreeThenExpiringThenNeverExpiringCredits() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let never = try await server.grant(org, "10", source: "refund")                                              // 30, never expires
            let later = try await server.grant(org, "10", source: "refund", expiresAt: "2099-01-01T00:00:00Z")         // 30, expires later
            let sooner = try await server.grant(org, "10", source: "refund", expiresAt: "2098-01-01T00:00:00Z")        // 30, expires sooner
            let free = try await server.grant(org, "10", source: "free_credits")                                        // 10
            var order: [String] = []
            for _ in 0..<4 {
                let response = try await server.spend(org, "10")
                guard case .array(let drawn)? = try response.json["drawn"] else { Issue.record("no drawn"); return }
                order.append(drawn[0].text("bucket_id") ?? "")
            }
            #expect(order == [free, sooner, later, never])
            #expect(try await server.spend(org, "0.0001").status == 402)
        }
    }

    @Test func anExpiredBucketIsNotSpentOneMillisecondAfterItsExpiry() async throws {
        let clock = ManualClock("2026-03-01T12:00:00Z")
        try await TestServer.run(clock: clock) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10", expiresAt: "2026-03-01T12:00:01Z")
            clock.set("2026-03-01T12:00:00.999Z")
            #expect(try await server.available(org) == Credits(10))
            #expect(try await server.spend(org, "1").status == 201)
            clock.set("2026-03-01T12:00:01.001Z")
            #expect(try await server.available(org) == .zero)
            let refused = try await server.spend(org, "1")
            #expect(refused.status == 402)
            #expect(refused["available"] == "0")
            #expect(refused["shortfall"] == "1")
            #expect(try await server.verify() == [])
        }
    }

    @Test(arguments: [#""1.23456""#, #""abc""#, "1e400", #""NaN""#, "-1", "0", #""0""#, #""-5""#, "true", "null", #""1000000000001""#])
    func badAmountsAre422AndWriteNothing(amount: String) async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            let before = try await server.ledgerCount(org)
            let response = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: server.platformKey,
                                                    json: #"{"credits": \#(amount)}"#, headers: [("Idempotency-Key", "k")])
            #expect(response.status == 422)
            #expect(response["field"] == "credits")
            #expect(try await server.ledgerCount(org) == before)
            #expect(try await server.count("idempotency_keys") == 1)  // the grant's only
            let grant = try await server.request(.POST, "/v1/orgs/\(org)/grants", key: server.platformKey,
                                                 json: #"{"credits": \#(amount), "source": "free_credits"}"#, headers: [("Idempotency-Key", "g")])
            #expect(grant.status == 422)
            #expect(try await server.ledgerCount(org) == before)
        }
    }

    @Test func equalAmountsSpelledDifferentlyAreEqual() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            for amount in [#""1.3""#, "1.3", #""1.3000""#] {
                let response = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: server.platformKey,
                                                        json: #"{"credits": \#(amount)}"#, headers: [("Idempotency-Key", UUID().uuidString)])
                #expect(response["credits"] == "1.3")
            }
            #expect(try await server.available(org) == (try Credits(parsing: "6.1")))
        }
    }

    @Test func rawCreditsAreForThePlatformKeyOnly() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let member = try await server.createKey(org: org, role: "member")
            let response = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: member, json: #"{"credits": "1"}"#,
                                                    headers: [("Idempotency-Key", "x")])
            #expect(response.status == 403)
            let grant = try await server.request(.POST, "/v1/orgs/\(org)/grants", key: member, json: #"{"credits": "1", "source": "admin_grant"}"#,
                                                 headers: [("Idempotency-Key", "y")])
            #expect(grant.status == 403)
            #expect(try await server.available(org) == Credits(10))
        }
    }
}
