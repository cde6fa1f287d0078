import Foundation
import Testing
import TallyCore
import TallyStore
import TallyTestSupport

/// Storage that does not only grow: what is past retention goes, the ledger never does.
@Suite struct RetentionTests {
    @Test func storedAnswersEventsDeliveriesAndSettledHoldsGoTheLedgerStays() async throws {
        let receiver = WebhookReceiver()
        try await receiver.run { url in
            let clock = ManualClock("2026-01-01T00:00:00Z")
            try await TestServer.run(clock: clock) { server in
                let org = try await server.createOrg()
                let endpoint = try await server.createEndpoint(url: url, events: #"["credits.expired"]"#, org: org)
                try await server.grant(org, "100")
                try await server.grant(org, "5", expiresAt: "2026-01-01T00:00:01Z")
                let first = try await server.spend(org, "1", key: "kept-for-a-while")
                #expect(first.status == 201)
                let hold = try await server.request(.POST, "/v1/orgs/\(org)/reservations", key: server.platformKey,
                                                    json: #"{"credits": "2"}"#, headers: [("Idempotency-Key", "hold-1")])
                let holdID = try #require(hold["id"])
                #expect(try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(holdID)/release", key: server.platformKey).status == 200)
                _ = try await server.stores.expiry.expireDue(.realClock, until: try Instant(rfc3339: "2026-01-02T00:00:00Z"))
                #expect(try await server.deliver(clock: clock) == 1)
                #expect(receiver.requests.count == 1)
                let ledger = try await server.count("ledger_entries")

                // Inside both windows: nothing goes.
                let policy = RetentionPolicy(idempotencyDays: 30, eventDays: 90)
                let early = try await server.stores.retention.purge(policy, at: try Instant(rfc3339: "2026-01-20T00:00:00Z"))
                #expect(early == RetentionStore.Report())

                // 31 days on: the stored answers go (a key past retention is a new request).
                let month = try await server.stores.retention.purge(policy, at: try Instant(rfc3339: "2026-02-01T00:00:00Z"))
                #expect(month.idempotencyKeys >= 3)
                #expect(month.events == 0 && month.webhookDeliveries == 0 && month.reservations == 0)
                #expect(try await server.count("idempotency_keys") == 0)

                // 91 days on: events, delivered deliveries with their attempts, settled holds.
                let quarter = try await server.stores.retention.purge(policy, at: try Instant(rfc3339: "2026-04-02T00:00:00Z"))
                #expect(quarter.webhookDeliveries == 1)
                #expect(quarter.events == 1)
                #expect(quarter.reservations == 1)
                for table in ["events", "webhook_deliveries", "webhook_attempts", "reservations"] {
                    #expect(try await server.count(table) == 0, "\(table)")
                }
                #expect(try await server.list("/v1/webhook-endpoints/\(endpoint.id)/deliveries").isEmpty)
                // The ledger, the buckets and their postings stay whole.
                #expect(try await server.count("ledger_entries") == ledger)
                #expect(try await server.verify() == [])
                // The old key now makes a new spend.
                let again = try await server.spend(org, "1", key: "kept-for-a-while")
                #expect(again.status == 201)
                #expect(again["entry_id"] != first["entry_id"])
            }
        }
    }

    @Test func anEventStillOwedToAnEndpointStays() async throws {
        let clock = ManualClock("2026-01-01T00:00:00Z")
        try await TestServer.run(clock: clock) { server in
            let org = try await server.createOrg()
            _ = try await server.createEndpoint(url: "http://127.0.0.1:9/never", events: #"["credits.expired"]"#, org: org)
            try await server.expireFiveCredits(org, on: "2026-01-01")
            let report = try await server.stores.retention.purge(RetentionPolicy(), at: try Instant(rfc3339: "2027-01-01T00:00:00Z"))
            #expect(report.events == 0 && report.webhookDeliveries == 0)
            #expect(try await server.count("events") == 1)
            #expect(try await server.count("webhook_deliveries") == 1)
        }
    }

    @Test func retentionIsAtLeastADay() {
        #expect(RetentionPolicy(idempotencyDays: 0, eventDays: -5) == RetentionPolicy(idempotencyDays: 1, eventDays: 1))
    }
}
