import Foundation
import PostgresNIO
import Testing
import TallyCore
import TallyJSON
import TallyStore
import TallyTestSupport

/// Group commit across organisations: the spends of many organisations share transactions, and
/// each keeps its own answer, entry and stored replay.
@Suite struct CrossOrgBatchingTests {
    static func organisations(_ count: Int, holding credits: String, on server: TestServer) async throws -> [String] {
        var orgs: [String] = []
        for _ in 0..<count {
            let org = try await server.createOrg()
            try await server.grant(org, credits)
            orgs.append(org)
        }
        return orgs
    }

    /// 40 organisations with 10 credits each, 4 concurrent spends of 3 each: in every
    /// organisation exactly three succeed and one is refused, whatever the transactions held.
    @Test func spendsOfManyOrganisationsShareTransactionsAndStayExact() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            let orgs = try await Self.organisations(40, holding: "10", on: server)
            let before = await server.stores.consumption.batchStatistics
            let spends = orgs.flatMap { org in (0..<4).map { (org, "\(org)-\($0)") } }
            let responses = try await withThrowingTaskGroup(of: (String, String, TestResponse).self) { group in
                for (org, key) in spends {
                    group.addTask { (org, key, try await server.spend(org, "3", key: key)) }
                }
                var all: [(org: String, key: String, response: TestResponse)] = []
                for try await answer in group { all.append(answer) }
                return all
            }
            let after = await server.stores.consumption.batchStatistics
            #expect(after.spends - before.spends == 160)
            #expect(after.batches - before.batches < 160)
            #expect(after.organisationsMaximum > 1)
            for org in orgs {
                let mine = responses.filter { $0.org == org }
                #expect(mine.filter { $0.response.status == 201 }.count == 3)
                let refused = mine.filter { $0.response.status == 402 }
                #expect(refused.count == 1)
                #expect(refused.first?.response["shortfall"] == "2")
                #expect(try await server.available(org) == Credits(1))
                #expect(try await server.list("/v1/orgs/\(org)/ledger?type=usage").count == 3)
            }
            // Every answer, 402s included, replays as it was first given.
            for (org, key, response) in responses.prefix(40) {
                let replay = try await server.spend(org, "3", key: key)
                #expect(replay.body == response.body)
                #expect(replay.header("Idempotent-Replayed") == "true")
            }
            #expect(try await server.verify() == [])
        }
    }

    /// A spend that fails for a reason that is not its own answer (here the database refuses one
    /// organisation's ledger rows) fails only its own organisation's spends: the others in the
    /// same transactions are applied once, and the failed ones store nothing, so their retries
    /// are applied exactly once.
    @Test func oneOrganisationsFailureDoesNotUndoTheOthers() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            let orgs = try await Self.organisations(12, holding: "100", on: server)
            let failing = orgs[5]
            try await server.pool.query(PostgresQuery(unsafeSQL: """
                CREATE FUNCTION refuse_one_org() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.org_id = '\(failing)'::uuid THEN RAISE EXCEPTION 'refused for the test'; END IF;
                    RETURN NEW;
                END $$
                """), logger: testLogger)
            try await server.pool.query("""
                CREATE TRIGGER refuse_one_org BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION refuse_one_org()
                """, logger: testLogger)
            let spends = orgs.flatMap { org in (0..<5).map { (org, "\(org)-\($0)") } }
            let responses = try await withThrowingTaskGroup(of: (String, String, Int).self) { group in
                for (org, key) in spends {
                    group.addTask { (org, key, try await server.spend(org, "2", key: key).status) }
                }
                var all: [(org: String, key: String, status: Int)] = []
                for try await answer in group { all.append(answer) }
                return all
            }
            for (org, _, status) in responses {
                if org == failing { #expect(status >= 500) } else { #expect(status == 201) }
            }
            for org in orgs where org != failing { #expect(try await server.available(org) == Credits(90)) }
            #expect(try await server.available(failing) == Credits(100))
            #expect(try await server.ledgerCount(failing) == 1)     // its grant only

            try await server.pool.query("DROP TRIGGER refuse_one_org ON ledger_entries", logger: testLogger)
            for (org, key) in spends {
                let retry = try await server.spend(org, "2", key: key)
                #expect(retry.status == 201)
                #expect(retry.header("Idempotent-Replayed") == (org == failing ? nil : "true"))
            }
            for org in orgs { #expect(try await server.available(org) == Credits(90)) }
            #expect(try await server.verify() == [])
        }
    }
}
