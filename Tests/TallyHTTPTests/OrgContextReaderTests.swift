import Foundation
import Testing
import TallyCore
@testable import TallyStore
import TallyTestSupport

extension TestServer {
    /// Thirty organisations: every third on a test clock, every second subscribed to a plan,
    /// each then given what `each` adds (with its index).
    func mixedOrganisations(_ each: (String, Int) async throws -> Void) async throws -> [UUID] {
        try await createPlan("pro", price: "20.00", credits: "1000")
        let clock = try await createClock("2026-03-01T00:00:00Z")
        var orgs: [UUID] = []
        for index in 0..<30 {
            let org = try await createOrg(extra: index % 3 == 0 ? #", "test_clock_id": "\#(clock)""# : "")
            if index % 2 == 0 { _ = try await subscribe(org, plan: "pro") }
            try await each(org, index)
            orgs.append(UUID(idString: org)!)
        }
        return orgs
    }
}

/// Contexts read for many requests in one statement are each exactly the context the single
/// statement reads: the right organisation, clock, period, plan and stored answer per request.
@Suite struct OrgContextReaderTests {
    @Test func batchedReadsMatchSingleReadsUnderConcurrency() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            let orgs = try await server.mixedOrganisations { org, index in
                try await server.grant(org, "10")
                if index % 5 == 0 { _ = try await server.spend(org, "1", key: "stored-\(index)") }
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

/// Balance reads served many per statement are each exactly the organisation's own: its
/// context, buckets, holds and period usage at its own time, as the single reads give them.
@Suite struct BatchedBalanceReadTests {
    @Test func batchedBalanceReadsMatchSingleReadsUnderConcurrency() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            let orgs = try await server.mixedOrganisations { org, index in
                for grant in 0..<(index % 4) { try await server.grant(org, "\(index + grant + 1)") }
                if index % 5 == 0 { _ = try await server.spend(org, "0.5", key: "spent-\(index)") }
            }
            let wallTime = server.clock.now()
            let requests: [UUID] = (0..<300).map { n in n % 31 == 30 ? UUID() : orgs[n % 30] }
            var expected: [Balance?] = []
            for org in requests {
                guard let context = try await server.stores.orgs.context(org) else {
                    expected.append(nil)
                    continue
                }
                expected.append(try await server.stores.ledger.balance(orgID: org, at: context.clockTime ?? wallTime, period: context.period))
            }
            let batched = try await withThrowingTaskGroup(of: (Int, OrgBalanceRead?).self) { group in
                for (index, org) in requests.enumerated() {
                    group.addTask { (index, try await server.stores.ledger.contextAndBalance(orgID: org, wallTime: wallTime)) }
                }
                var all = [OrgBalanceRead?](repeating: nil, count: requests.count)
                for try await (index, read) in group { all[index] = read }
                return all
            }
            #expect(batched.map { $0?.balance } == expected)
            #expect(zip(batched, requests).allSatisfy { read, org in read.map { $0.context.org.id == org } ?? true })
            #expect(expected.contains { $0 == nil })
            #expect(expected.contains { ($0?.buckets.count ?? 0) > 1 })
            #expect(expected.contains { $0?.period != nil })
        }
    }
}
