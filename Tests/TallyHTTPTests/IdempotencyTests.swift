import Foundation
import Testing
import TallyCore
import TallyStore
import TallyTestSupport

@Suite struct IdempotencyTests {
    @Test func fiftyConcurrentDuplicatesProduceOneEntryAndFiftyIdenticalResponses() async throws {
        try await TestServer.run(databaseConnections: 20) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            let responses = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for _ in 0..<50 {
                    group.addTask { try await server.spend(org, "4.1", key: "same-key") }
                }
                var all: [TestResponse] = []
                for try await response in group { all.append(response) }
                return all
            }
            #expect(Set(responses.map(\.status)) == [201])
            #expect(Set(responses.map(\.body)).count == 1)
            #expect(responses.filter { $0.header("Idempotent-Replayed") == "true" }.count == 49)
            let usage = try await server.list("/v1/orgs/\(org)/ledger?type=usage")
            #expect(usage.count == 1)
            #expect(try await server.available(org) == (try Credits(parsing: "95.9")))
        }
    }

    @Test func aReplayOfA402IsByteForByteTheFirstEvenAfterCreditsArrive() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "1")
            let first = try await server.spend(org, "3", key: "k402")
            #expect(first.status == 402)
            #expect(first["code"] == "insufficient_credits")
            #expect(first["required"] == "3")
            #expect(first["available"] == "1")
            #expect(first["shortfall"] == "2")
            try await server.grant(org, "10")
            let again = try await server.spend(org, "3", key: "k402")
            #expect(again.status == 402)
            #expect(again.body == first.body)
            #expect(again.header("Idempotent-Replayed") == "true")
            #expect(try await server.available(org) == Credits(11))
        }
    }

    /// A finished spend's replay (and a conflicting reuse of its key) on a replica that reads the
    /// organisation's context afresh (none kept, `OrgContextCache`) is answered from that read:
    /// no transaction, no batch.
    @Test func aFinishedSpendIsReplayedWithoutATransaction() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let first = try await server.spend(org, "1.3", key: "fast")
            #expect(first.status == 201)
            let orgID = try #require(UUID(idString: org))
            server.stores.orgs.spendContexts.forget(orgID)
            let before = await server.stores.consumption.batchStatistics
            let replay = try await server.spend(org, "1.3", key: "fast")
            #expect(replay.status == 201)
            #expect(replay.body == first.body)
            #expect(replay.header("Idempotent-Replayed") == "true")
            server.stores.orgs.spendContexts.forget(orgID)
            let conflict = try await server.spend(org, "2", key: "fast")
            #expect(conflict.status == 409)
            #expect(conflict["code"] == "idempotency_conflict")
            let after = await server.stores.consumption.batchStatistics
            #expect(after.batches == before.batches)
            #expect(after.spends == before.spends)
            #expect(try await server.available(org) == (try Credits(parsing: "8.7")))
        }
    }

    /// With the organisation's context kept from an earlier spend, a replay skips the context
    /// read and is found by the spend's claim: the same answer, byte for byte, nothing spent again.
    @Test func aFinishedSpendIsReplayedByItsClaimWhenTheContextIsKept() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let first = try await server.spend(org, "1.3", key: "kept")
            #expect(first.status == 201)
            let orgID = try #require(UUID(idString: org))
            #expect(server.stores.orgs.spendContexts.context(orgID) != nil)
            let replay = try await server.spend(org, "1.3", key: "kept")
            #expect(replay.status == 201)
            #expect(replay.body == first.body)
            #expect(replay.header("Idempotent-Replayed") == "true")
            let conflict = try await server.spend(org, "2", key: "kept")
            #expect(conflict.status == 409)
            #expect(conflict["code"] == "idempotency_conflict")
            #expect(try await server.count("ledger_entries WHERE type = 'usage'") == 1)
            #expect(try await server.available(org) == (try Credits(parsing: "8.7")))
        }
    }

    @Test func theSameKeyWithAnotherBodyIsAConflict() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            #expect(try await server.spend(org, "1", key: "k").status == 201)
            let conflict = try await server.spend(org, "2", key: "k")
            #expect(conflict.status == 409)
            #expect(conflict["code"] == "idempotency_conflict")
            // Members in another order are the same request.
            let a = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: server.platformKey, json: #"{"credits": "1", "actor": "u"}"#, headers: [("Idempotency-Key", "o")])
            let b = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: server.platformKey, json: #"{ "actor": "u", "credits": "1" }"#, headers: [("Idempotency-Key", "o")])
            #expect(a.status == 201)
            #expect(b.body == a.body)
            #expect(try await server.available(org) == Credits(8))
        }
    }

    @Test func keysAreScopedToTheOrganisation() async throws {
        try await TestServer.run { server in
            let a = try await server.createOrg(name: "A")
            let b = try await server.createOrg(name: "B")
            try await server.grant(a, "10")
            try await server.grant(b, "10")
            #expect(try await server.spend(a, "1", key: "shared").status == 201)
            #expect(try await server.spend(b, "1", key: "shared").header("Idempotent-Replayed") == nil)
            #expect(try await server.available(b) == Credits(9))
        }
    }

    @Test func aMissingOrBadKeyIsRefusedAndWritesNothing() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let missing = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: server.platformKey, json: #"{"credits": "1"}"#)
            #expect(missing.status == 400)
            #expect(missing["code"] == "idempotency_key_required")
            let bad = try await server.spend(org, "1", key: String(repeating: "x", count: 256))
            #expect(bad.status == 400)
            #expect(try await server.available(org) == Credits(10))
        }
    }
}

@Suite struct ReversalTests {
    @Test func reversalAfterTheSourceBucketExpiredBecomesARefundBucket() async throws {
        let clock = ManualClock("2026-05-01T00:00:00Z")
        try await TestServer.run(clock: clock) { server in
            let org = try await server.createOrg()
            let short = try await server.grant(org, "5", expiresAt: "2026-05-02T00:00:00Z")
            let long = try await server.grant(org, "10", source: "refund")
            let spend = try await server.spend(org, "8")
            let entry = try #require(spend["entry_id"])
            clock.set("2026-05-03T00:00:00Z")
            #expect(try await server.available(org) == Credits(7))
            let reversal = try await server.request(.POST, "/v1/orgs/\(org)/usage/\(entry)/reverse", key: server.platformKey, json: #"{"reason": "failed job"}"#)
            #expect(reversal.status == 201)
            #expect(reversal["credits"] == "8")
            #expect(reversal["refund_credits"] == "5")
            guard case .array(let returned)? = try reversal.json["returned"] else { Issue.record("no returned"); return }
            #expect(returned.map { $0.text("bucket_id") } == [long])
            #expect(returned.map { $0.text("credits") } == ["3"])
            let refundBucket = try #require(reversal["refund_bucket_id"])
            #expect(refundBucket != short)
            #expect(try await server.available(org) == Credits(15))
            // Nothing is left to reverse.
            let again = try await server.request(.POST, "/v1/orgs/\(org)/usage/\(entry)/reverse", key: server.platformKey, json: #"{}"#)
            #expect(again.status == 409)
            #expect(again["code"] == "already_reversed")
            #expect(try await server.verify() == [])
        }
    }

    @Test func partialReversalsNeverExceedTheSpend() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let entry = try #require(try await server.spend(org, "4.1")["entry_id"])
            let path = "/v1/orgs/\(org)/usage/\(entry)/reverse"
            #expect(try await server.request(.POST, path, key: server.platformKey, json: #"{"credits": "1.3"}"#).status == 201)
            let tooMuch = try await server.request(.POST, path, key: server.platformKey, json: #"{"credits": "2.9"}"#)
            #expect(tooMuch.status == 409)
            #expect(tooMuch["code"] == "reversal_exceeds_usage")
            #expect(tooMuch["reversible"] == "2.8")
            #expect(try await server.request(.POST, path, key: server.platformKey, json: #"{"credits": "2.8"}"#).status == 201)
            #expect(try await server.available(org) == Credits(10))
            #expect(try await server.verify() == [])
        }
    }

    @Test func concurrentReversalsOfOneUsageReverseItOnce() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let entry = try #require(try await server.spend(org, "6")["entry_id"])
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        try await server.request(.POST, "/v1/orgs/\(org)/usage/\(entry)/reverse", key: server.platformKey, json: #"{"credits": "1"}"#).status
                    }
                }
                var all: [Int] = []
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses.filter { $0 == 201 }.count == 6)
            #expect(statuses.filter { $0 == 409 }.count == 14)
            #expect(try await server.available(org) == Credits(10))
            #expect(try await server.verify() == [])
        }
    }

    @Test func onlyUsageCanBeReversedAndOnlyByAdmins() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let grantEntry = try #require(try await server.list("/v1/orgs/\(org)/ledger").first?.text("id"))
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/usage/\(grantEntry)/reverse", key: server.platformKey, json: "{}").status == 404)
            let entry = try #require(try await server.spend(org, "1")["entry_id"])
            let member = try await server.createKey(org: org, role: "member")
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/usage/\(entry)/reverse", key: member, json: "{}").status == 403)
            let admin = try await server.createKey(org: org, role: "admin")
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/usage/\(entry)/reverse", key: admin).status == 201)
        }
    }
}
