import Foundation
import Testing
import TallyCore
import TallyJSON
import TallyStore
import TallyTestSupport

@Suite struct BatchingTests {
    /// Concurrent spends of one organisation go through shared transactions, yet each keeps its
    /// own answer: in a batch that runs out of credits part-way, the first spends succeed, the
    /// rest get their own 402 with their own stored replay, and the ledger is exact.
    @Test func successesAndRefusalsMixInsideBatches() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            let before = await server.stores.consumption.batchStatistics
            let keys = (0..<60).map { "spend-\($0)" }
            let responses = try await withThrowingTaskGroup(of: (String, TestResponse).self) { group in
                for key in keys {
                    group.addTask { (key, try await server.spend(org, "7", key: key)) }
                }
                var all: [String: TestResponse] = [:]
                for try await (key, response) in group { all[key] = response }
                return all
            }
            let after = await server.stores.consumption.batchStatistics
            let succeeded = responses.values.filter { $0.status == 201 }
            let refused = responses.values.filter { $0.status == 402 }
            #expect(succeeded.count == 14)          // 14 x 7 = 98 of 100
            #expect(refused.count == 46)
            #expect(refused.allSatisfy { $0["available"] == "2" && $0["shortfall"] == "5" })
            // Every success reports the balance right after itself: 93, 86, ..., 2, each once.
            let afters = Set(succeeded.compactMap { $0["available_after"] })
            #expect(afters == Set(stride(from: 93, through: 2, by: -7).map(String.init)))
            // The spends shared transactions.
            #expect(after.spends - before.spends == 60)
            #expect(after.batches - before.batches < 60)
            // Each spend has its own entry and its own replayable answer, 402s included.
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=usage&limit=500").count == 14)
            for key in keys.prefix(20) {
                let replay = try await server.spend(org, "7", key: key)
                #expect(replay.body == responses[key]!.body)
                #expect(replay.header("Idempotent-Replayed") == "true")
            }
            #expect(try await server.available(org) == Credits(2))
            #expect(try await server.verify() == [])
            let summary = try await server.request(.GET, "/v1/orgs/\(org)/usage/summary?months=1", key: server.platformKey)
            guard case .array(let months)? = try summary.json["data"] else { Issue.record("no summary"); return }
            #expect(months.first?.text("credits_used") == "98")
            #expect(months.first?.text("transactions") == "14")
        }
    }

    @Test func duplicateKeysInsideOneBatchGetOneEffect() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            let responses = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for index in 0..<40 {
                    group.addTask { try await server.spend(org, index % 4 == 0 ? "2" : "1", key: index % 2 == 0 ? "even" : "odd-\(index % 4)") }
                }
                var all: [TestResponse] = []
                for try await response in group { all.append(response) }
                return all
            }
            // "even" carries two bodies ("2" and "1"): whichever came first won; the other is a conflict.
            let statuses = Dictionary(grouping: responses, by: \.status).mapValues(\.count)
            #expect(statuses[201, default: 0] + statuses[409, default: 0] == 40)
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=usage").count == 3)
            #expect(try await server.verify() == [])
        }
    }
}
