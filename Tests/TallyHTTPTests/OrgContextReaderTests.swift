import Foundation
import Testing
import TallyCore
@testable import TallyStore
import TallyTestSupport

/// Contexts read for many requests in one statement are each exactly the context the single
/// statement reads: the right organisation, clock, period, plan and stored answer per request.
@Suite struct OrgContextReaderTests {
    @Test func batchedReadsMatchSingleReadsUnderConcurrency() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            try await server.createPlan("pro", price: "20.00", credits: "1000")
            let clock = try await server.createClock("2026-03-01T00:00:00Z")
            var orgs: [UUID] = []
            for index in 0..<30 {
                let org = try await server.createOrg(extra: index % 3 == 0 ? #", "test_clock_id": "\#(clock)""# : "")
                if index % 2 == 0 { _ = try await server.subscribe(org, plan: "pro") }
                try await server.grant(org, "10")
                if index % 5 == 0 { _ = try await server.spend(org, "1", key: "stored-\(index)") }
                orgs.append(UUID(idString: org)!)
            }
            // Each request: an organisation (or none), and a key with or without a stored answer.
            let requests: [(UUID, String?)] = (0..<300).map { n in
                let org = n % 31 == 30 ? UUID() : orgs[n % 30]
                return (org, n % 4 == 0 ? "stored-\(n % 30)" : (n % 4 == 1 ? "missing" : nil))
            }
            var expected: [OrgContext?] = []
            for (org, key) in requests {
                let rows = try await server.pool.execute(OrgContextStatement(orgID: org, idempotencyKey: key), logger: testLogger).collect()
                expected.append(rows.first)
            }
            let batched = try await withThrowingTaskGroup(of: (Int, OrgContext?).self) { group in
                for (index, (org, key)) in requests.enumerated() {
                    group.addTask { (index, try await server.stores.orgs.context(org, idempotencyKey: key)) }
                }
                var all = [OrgContext?](repeating: nil, count: requests.count)
                for try await (index, context) in group { all[index] = context }
                return all
            }
            #expect(batched == expected)
            #expect(expected.contains { $0?.storedAnswer != nil })
            #expect(expected.contains { $0?.clockTime != nil })
            #expect(expected.contains { $0?.period != nil })
            #expect(expected.contains { $0 == nil })
        }
    }
}
