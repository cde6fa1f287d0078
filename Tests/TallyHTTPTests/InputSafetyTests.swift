import Foundation
import Testing
import TallyCore
import TallyTestSupport

/// Input PostgreSQL cannot store, and methods a path does not take: clear 4xx answers that
/// write nothing, never a 500.
@Suite struct InputSafetyTests {
    @Test func aNulCharacterAnywhereInABodyIs422NamingTheFieldAndWritesNothing() async throws {
        try await TestServer.run { server in
            let orgs = try await server.count("orgs")
            let name = try await server.request(.POST, "/v1/orgs", key: server.platformKey, json: #"{"name": "Ac\u0000me"}"#)
            #expect(name.status == 422)
            #expect(name["code"] == "invalid_text")
            #expect(name["field"] == "name")
            #expect(try await server.count("orgs") == orgs)

            let org = try await server.createOrg()
            try await server.grant(org, "100")
            let entries = try await server.ledgerCount(org)
            for (body, field) in [
                (#"{"credits": "1", "metadata": {"batch": {"note": "a\u0000"}}}"#, "metadata.batch.note"),
                (#"{"credits": "1", "metadata": {"k\u0000": 1}}"#, "metadata.k\u{0}"),
                (#"{"credits": "1", "actor": "\u0000"}"#, "actor"),
                (#"{"credits": "1", "event_name": "x", "metadata": {"list": ["ok", "bad\u0000"]}}"#, "metadata.list[1]"),
            ] {
                let response = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: server.platformKey, json: body,
                                                         headers: [("Idempotency-Key", UUID().uuidString)])
                #expect(response.status == 422, "\(body)")
                #expect(response["code"] == "invalid_text")
                #expect(response["field"] == field)
            }
            #expect(try await server.ledgerCount(org) == entries)
        }
    }

    @Test func aNulCharacterInAQueryParameterIs422AndInAPathIs404() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            for (path, field) in [
                ("/v1/orgs/\(org)/ledger?actor=%00", "actor"),
                ("/v1/orgs/\(org)/ledger?event_id=a%00b", "event_id"),
                ("/v1/plans?cursor=%00", "cursor"),
            ] {
                let response = try await server.request(.GET, path, key: server.platformKey)
                #expect(response.status == 422, "\(path)")
                #expect(response["code"] == "invalid_text")
                #expect(response["field"] == field)
            }
            let plan = try await server.request(.GET, "/v1/plans/a%00b", key: server.platformKey)
            #expect(plan.status == 404)
        }
    }

    @Test func aMethodThePathDoesNotTakeIs405WithAllow() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let trace = try await server.request(.TRACE, "/v1/orgs", key: server.platformKey)
            #expect(trace.status == 405)
            #expect(trace["code"] == "method_not_allowed")
            #expect(trace.header("Allow") == "GET, POST")
            let delete = try await server.request(.DELETE, "/v1/orgs/\(org)/balance", key: server.platformKey)
            #expect(delete.status == 405)
            #expect(delete.header("Allow") == "GET")
            // A path that does not exist at all stays 404; an allowed method still works.
            #expect(try await server.request(.GET, "/v1/nothing-here", key: server.platformKey).status == 404)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: server.platformKey).status == 200)
        }
    }

    /// Found by schemathesis: each of these was a 500 or the wrong 4xx.
    @Test func fuzzerFindingsGetTheirProperAnswers() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let noKey = try await server.request(.POST, "/v1/orgs/\(org)/reservations", key: server.platformKey,
                                                 json: #"{"operation": "", "quantity": 1}"#)
            #expect(noKey.status == 400)
            #expect(noKey["code"] == "idempotency_key_required")
            let rateWithoutOverage = try await server.request(.POST, "/v1/plans", key: server.platformKey, json: #"""
                {"code": "p0", "name": "p0", "price": {"amount": "1.00", "currency": "USD"}, "interval": "month", "credits_per_period": "10",
                 "credit_expiry": {"policy": "period_end"}, "rollover": {"policy": "none"}, "overage": {"allowed": false, "rate_per_credit": 0}}
                """#)
            #expect(rateWithoutOverage.status == 422)
            #expect(rateWithoutOverage["field"] == "overage.rate_per_credit")
            // A body that is not an object, on an endpoint whose body is optional: 422, nothing released.
            try await server.grant(org, "10")
            let hold = try await server.request(.POST, "/v1/orgs/\(org)/reservations", key: server.platformKey,
                                                json: #"{"credits": "2"}"#, headers: [("Idempotency-Key", "h")])
            let release = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(hold["id"] ?? "")/release",
                                                   key: server.platformKey, json: #""""#)
            #expect(release.status == 422)
            #expect(release["field"] == "body")
            let withMembers = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(hold["id"] ?? "")/release",
                                                       key: server.platformKey, json: #"{"reason": "x"}"#)
            #expect(withMembers.status == 422)
            #expect(withMembers["field"] == "reason")
            #expect(try await server.available(org) == Credits(8))
            // Plan, rollover and purchase buckets belong to a subscription or an invoice: a bare
            // grant of them is 422 naming the field (a 500 from the database's check before).
            let entries = try await server.ledgerCount(org)
            for source in ["plan_allocation", "rollover", "purchase"] {
                let grant = try await server.request(.POST, "/v1/orgs/\(org)/grants", key: server.platformKey,
                                                     json: #"{"credits": "1", "source": "\#(source)"}"#, headers: [("Idempotency-Key", source)])
                #expect(grant.status == 422, "\(source): \(grant.text)")
                #expect(grant["field"] == "source")
            }
            #expect(try await server.ledgerCount(org) == entries)
            #expect(try await server.available(org) == Credits(8))
            // A scheme in capitals is the same scheme (a 500 from the database's check before).
            let endpoint = try await server.request(.POST, "/v1/webhook-endpoints", key: server.platformKey,
                                                    json: #"{"url": "HTTP://127.0.0.1:9/hook", "events": ["*"]}"#)
            #expect(endpoint.status == 201, "\(endpoint.text)")
            #expect(endpoint["url"] == "http://127.0.0.1:9/hook")
        }
    }

    /// A database that does not move the buckets a spend planned (here a trigger that skips the
    /// update, as a change outside Tally could): the spend is refused and rolled back, the process
    /// does not trap, and spends work again once the database behaves.
    @Test func aLedgerWriteTheDatabaseDoesNotApplyRollsBackInsteadOfTrapping() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let entries = try await server.ledgerCount(org)
            try await server.pool.query("""
                CREATE FUNCTION skip_update() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
                """, logger: testLogger)
            try await server.pool.query("CREATE TRIGGER skip BEFORE UPDATE ON credit_buckets FOR EACH ROW EXECUTE FUNCTION skip_update()", logger: testLogger)
            let refused = try await server.spend(org, "1")
            #expect(refused.status == 500)
            #expect(try await server.ledgerCount(org) == entries)
            try await server.pool.query("DROP TRIGGER skip ON credit_buckets", logger: testLogger)
            #expect(try await server.spend(org, "1").status == 201)
            #expect(try await server.available(org) == Credits(9))
            #expect(try await server.verify() == [])
        }
    }
}
