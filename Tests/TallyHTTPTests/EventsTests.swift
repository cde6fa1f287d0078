import AsyncHTTPClient
import Foundation
import Testing
import TallyCore
import TallyHTTP
import TallyJobs
import TallyJSON
import TallyStore
import TallyTestSupport

extension TestServer {
    func createEndpoint(url: String, events: String = #"["*"]"#, key: String? = nil, org: String? = nil) async throws -> (id: String, secret: String) {
        let orgMember = org.map { #", "org_id": "\#($0)""# } ?? ""
        let response = try await request(.POST, "/v1/webhook-endpoints", key: key ?? platformKey, json: #"{"url": "\#(url)", "events": \#(events)\#(orgMember)}"#)
        guard response.status == 201, let id = response["id"], let secret = response["secret"] else {
            throw TestSetupError("endpoint: \(response.status) \(response.text)")
        }
        return (id, secret)
    }

    /// One `credits.expired` event for `org`: five credits granted on `day` (YYYY-MM-DD) to expire a
    /// second after its midnight, and the expiry job run a day later.
    func expireFiveCredits(_ org: String, on day: String) async throws {
        try await grant(org, "5", expiresAt: "\(day)T00:00:01Z")
        _ = try await stores.expiry.expireDue(.realClock, until: try Instant(rfc3339: "\(day)T00:00:00Z").adding(days: 1))
    }

    /// Runs the webhook deliverer over this server's database with `clock`; organisations'
    /// endpoints may reach private addresses only when `allowPrivateTargets`.
    func deliver(clock: any WallClock, allowPrivateTargets: Bool = false) async throws -> Int {
        try await WebhookDeliverer(store: stores.webhooks, allowPrivateTargets: allowPrivateTargets, clock: clock, logger: testLogger).deliverDue()
    }
}

@Suite struct WebhookTests {
    /// 50 concurrent spends push an organisation past 110% of its allocation: a real receiver on
    /// loopback gets usage.threshold_reached for 80, 100 and 110 exactly once each, and every
    /// signature verifies.
    @Test func thresholdAlertsFireOnceEachUnderConcurrentSpends() async throws {
        let receiver = WebhookReceiver()
        try await receiver.run { url in
            try await TestServer.run(databaseConnections: 20) { server in
                try await server.createPlan("p", price: "10.00", credits: "100", overage: #"{"allowed": true, "rate_per_credit": "0.10"}"#)
                let org = try await server.createOrg()
                try await server.subscribe(org, plan: "p")
                _ = try await server.settings(org, #"{"overage_protection": false}"#)
                let endpoint = try await server.createEndpoint(url: url, events: #"["usage.threshold_reached"]"#)
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<50 { group.addTask { try await server.spend(org, "2.3").status } }
                    var all: [Int] = []
                    for try await status in group { all.append(status) }
                    return all
                }
                #expect(statuses.allSatisfy { $0 == 201 })   // 115 credits: 15 of them overage
                _ = try await server.deliver(clock: server.clock)
                let bodies = receiver.requests
                #expect(bodies.count == 3)
                var percents: [Int] = []
                for received in bodies {
                    let signature = try #require(received.header("Tally-Signature"))
                    #expect(WebhookSignature.verify(header: signature, body: received.body, secret: endpoint.secret))
                    #expect(!WebhookSignature.verify(header: signature, body: received.body + [0x20], secret: endpoint.secret))
                    let event = try JSONParser.parse(received.body)
                    #expect(event["type"] == .string("usage.threshold_reached"))
                    #expect(event["org_id"] == .string(org))
                    #expect(received.header("Tally-Event-Id") == event.text("id"))
                    if case .number(let percent)? = event["data"]?["percent"] { percents.append(Int(percent)!) }
                }
                #expect(percents.sorted() == [80, 100, 110])
                #expect(try await server.count("alert_firings") == 3)
            }
        }
    }

    @Test func aDeliveryThatFailsThreeTimesSucceedsOnTheFourthWithEveryAttemptRecorded() async throws {
        let receiver = WebhookReceiver(failFirst: 3)
        try await receiver.run { url in
            let clock = ManualClock("2026-06-01T00:00:00Z")
            try await TestServer.run(clock: clock) { server in
                let org = try await server.createOrg()
                let endpoint = try await server.createEndpoint(url: url, events: #"["credits.expired"]"#, org: org)
                try await server.expireFiveCredits(org, on: "2026-06-01")
                #expect(try await server.deliver(clock: clock) == 1)       // fails, retry in 30 s
                #expect(try await server.deliver(clock: clock) == 0)       // not due yet
                for wait in [30, 60, 120] as [Int64] {
                    clock.advance(seconds: wait)
                    #expect(try await server.deliver(clock: clock) == 1)
                }
                #expect(receiver.requests.count == 4)
                let deliveries = try await server.list("/v1/webhook-endpoints/\(endpoint.id)/deliveries")
                #expect(deliveries.count == 1)
                #expect(deliveries[0].text("status") == "delivered")
                #expect(deliveries[0].text("attempts") == "4")
                guard case .array(let attempts)? = deliveries[0]["attempt_log"] else { Issue.record("no attempts"); return }
                #expect(attempts.map { $0.text("status_code") } == ["500", "500", "500", "200"])
                // Every attempt carried the same event id, for the receiver to deduplicate.
                #expect(Set(receiver.requests.compactMap { $0.header("Tally-Event-Id") }).count == 1)
                let resend = try await server.request(.POST, "/v1/webhook-endpoints/\(endpoint.id)/deliveries/\(deliveries[0].text("id")!)/resend", key: server.platformKey)
                #expect(resend.status == 202)
                #expect(try await server.deliver(clock: clock) == 1)
                #expect(receiver.requests.count == 5)
            }
        }
    }

    @Test func aWorkerThatDiesMidDeliveryLosesNothing() async throws {
        let clock = ManualClock("2026-06-01T00:00:00Z")
        try await TestServer.run(clock: clock) { server in
            let org = try await server.createOrg()
            _ = try await server.createEndpoint(url: "http://127.0.0.1:9/hooks", org: org)
            try await server.expireFiveCredits(org, on: "2026-06-01")
            // A worker claims the delivery and dies before sending it.
            let claimed = try await server.stores.webhooks.claimDue(at: clock.now(), limit: 10)
            #expect(claimed.count == 1)
            #expect(try await server.stores.webhooks.claimDue(at: clock.now(), limit: 10).isEmpty)
            clock.advance(seconds: WebhookStore.leaseSeconds)
            let again = try await server.stores.webhooks.claimDue(at: clock.now(), limit: 10)
            #expect(again.map(\.deliveryID) == claimed.map(\.deliveryID))
            #expect(again.first?.attempt == 2)
        }
    }

    @Test func endpointsAreValidatedAndScoped() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let admin = try await server.createKey(org: org, role: "admin")
            let member = try await server.createKey(org: org, role: "member")
            for (url, field) in [("ftp://example.com/x", "url"), ("http://no-such-host.invalid/hook", "url"), ("not a url", "url")] {
                let response = try await server.request(.POST, "/v1/webhook-endpoints", key: server.platformKey, json: #"{"url": "\#(url)", "events": ["*"]}"#)
                #expect(response.status == 422, "\(url)")
                #expect(response["field"] == field)
            }
            #expect(try await server.request(.POST, "/v1/webhook-endpoints", key: server.platformKey, json: #"{"url": "http://127.0.0.1/x", "events": ["nope"]}"#)["field"] == "events[0]")
            // An organisation's endpoint must be public: no posting into Tally's own network.
            let privateTarget = try await server.request(.POST, "/v1/webhook-endpoints", key: admin, json: #"{"url": "http://127.0.0.1:8080/x", "events": ["*"]}"#)
            #expect(privateTarget.status == 422)
            #expect(try await server.request(.POST, "/v1/webhook-endpoints", key: member, json: #"{"url": "http://127.0.0.1/x", "events": ["*"]}"#).status == 403)
            let global = try await server.createEndpoint(url: "http://127.0.0.1:9/x")
            #expect(try await server.list("/v1/webhook-endpoints", key: admin).isEmpty)
            #expect(try await server.request(.GET, "/v1/webhook-endpoints/\(global.id)/deliveries", key: admin).status == 404)
            let listed = try await server.list("/v1/webhook-endpoints")
            #expect(listed.count == 1)
            #expect(listed[0]["secret"] == .null)
            #expect(try await server.request(.DELETE, "/v1/webhook-endpoints/\(global.id)", key: server.platformKey).status == 204)
            #expect(try await server.list("/v1/webhook-endpoints").isEmpty)
            // A deleted endpoint is gone for every operation, not only from the list.
            #expect(try await server.request(.GET, "/v1/webhook-endpoints/\(global.id)/deliveries", key: server.platformKey).status == 404)
            #expect(try await server.request(.DELETE, "/v1/webhook-endpoints/\(global.id)", key: server.platformKey).status == 404)
        }
    }
}

@Suite struct HistoryAndReportsTests {
    @Test func theMonthlySummaryFollowsTheOrganisationsTimeZoneAcrossAMonthBoundary() async throws {
        try await TestServer.run { server in
            // 22:30Z on Oct 31 is 23:30 in Berlin (CET); 23:30Z is already Nov 1 there.
            let clock = try await server.createClock("2026-08-15T12:00:00Z")
            let org = try await server.createOrg(timezone: "Europe/Berlin", extra: #", "test_clock_id": "\#(clock)""#)
            try await server.grant(org, "1000")
            _ = try await server.spend(org, "2")
            try await server.advance(clock, to: "2026-10-31T22:30:00Z")
            let october = try #require(try await server.spend(org, "5")["entry_id"])
            _ = try await server.spend(org, "0.5")
            try await server.advance(clock, to: "2026-10-31T23:30:00Z")
            _ = try await server.spend(org, "7")
            // A reversal in November of October's usage reduces October.
            _ = try await server.request(.POST, "/v1/orgs/\(org)/usage/\(october)/reverse", key: server.platformKey, json: #"{"credits": "1"}"#)
            let summary = try await server.request(.GET, "/v1/orgs/\(org)/usage/summary", key: server.platformKey)
            guard case .array(let months)? = try summary.json["data"] else { Issue.record("no data"); return }
            #expect(months.map { $0.text("month") } == ["2026-11", "2026-10", "2026-09", "2026-08"])
            #expect(months.map { $0.text("credits_used") } == ["7", "4.5", "0", "2"])
            #expect(months.map { $0.text("transactions") } == ["1", "2", "0", "1"])
            #expect(months.map { $0["current"] } == [.bool(true), .bool(false), .bool(false), .bool(false)])
            let two = try await server.request(.GET, "/v1/orgs/\(org)/usage/summary?months=2", key: server.platformKey)
            guard case .array(let short)? = try two.json["data"] else { Issue.record("no data"); return }
            #expect(short.count == 2)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/usage/summary?months=0", key: server.platformKey).status == 422)
        }
    }

    @Test func historyFiltersByTypeEventActorAndTime() async throws {
        let clock = ManualClock("2026-03-01T00:00:00Z")
        try await TestServer.run(clock: clock) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            try await server.grant(org, "10", source: "promotional")
            _ = try await server.spend(org, "1", extra: #", "event_id": "evt-1", "event_name": "Spring wedding", "actor": "u1""#)
            clock.set("2026-03-02T00:00:00Z")
            _ = try await server.spend(org, "2", extra: #", "event_id": "evt-2", "actor": "u2""#)
            _ = try await server.spend(org, "3")
            let usage = try await server.list("/v1/orgs/\(org)/ledger?type=usage")
            #expect(usage.map { $0.text("credits") } == ["-3", "-2", "-1"])
            #expect(usage.map { $0.text("actor") } == ["system", "u2", "u1"])
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=purchase_history").count == 2)
            let byEvent = try await server.list("/v1/orgs/\(org)/ledger?event_id=evt-1")
            #expect(byEvent.map { $0.text("event_name") } == ["Spring wedding"])
            #expect(try await server.list("/v1/orgs/\(org)/ledger?actor=u2").count == 1)
            let range = try await server.list("/v1/orgs/\(org)/ledger?type=usage&from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z")
            #expect(range.count == 2)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/ledger?from=yesterday", key: server.platformKey).status == 422)
        }
    }

    @Test func eventsAreWrittenWithTheChangesThatCauseThem() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            try await server.createPlan("p", price: "10.00", credits: "100", expiry: #"{"policy": "days", "days": 3}"#)
            let clock = try await server.createClock("2026-01-01T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            _ = try await server.settings(org, #"{"low_balance_credits": "20"}"#)
            try await server.subscribe(org, plan: "p")
            _ = try await server.spend(org, "85")
            try await server.advance(clock, to: "2026-02-01T00:00:00Z")
            let invoice = try #require(try await server.invoices(org).first?.text("id"))
            _ = try await server.request(.POST, "/v1/orgs/\(org)/invoices/\(invoice)/pay", key: server.platformKey, json: #"{"reference": "r"}"#)
            let types = try await server.list("/v1/orgs/\(org)/events?limit=500").compactMap { $0.text("type") }
            for expected in ["subscription.changed", "invoice.finalized", "usage.threshold_reached", "balance.low", "credits.expired",
                             "subscription.renewed", "invoice.paid"] {
                #expect(types.contains(expected), "\(expected) in \(types)")
            }
            #expect(types.filter { $0 == "usage.threshold_reached" }.count == 1)   // 85% crossed 80 only
            #expect(types.filter { $0 == "balance.low" }.count == 1)
        }
    }
}

@Suite struct ExportTests {
    @Test func csvAndJSONCarryEveryUsageEntryWithRFC4180Quoting() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            _ = try await server.spend(org, "1.3", extra: #", "event_name": "Smith, \"Jr\"\nwedding", "metadata": {"a": 1}"#)
            _ = try await server.spend(org, "2")
            let csv = try await server.request(.GET, "/v1/orgs/\(org)/usage/export?format=csv", key: server.platformKey)
            #expect(csv.status == 200)
            #expect(csv.header("content-type")?.hasPrefix("text/csv") == true)
            let text = csv.text
            #expect(text.hasPrefix("id,created_at,credits,overage_credits,operation,quantity,event_id,event_name,actor,params,metadata\r\n"))
            #expect(text.contains(#","Smith, ""Jr""\#nwedding",system,,"{""a"":1}"\#r\#n"#))
            #expect(text.contains(",-1.3,0,"))
            let json = try await server.request(.GET, "/v1/orgs/\(org)/usage/export", key: server.platformKey)
            guard case .array(let entries) = try json.json else { Issue.record("not an array"); return }
            #expect(entries.map { $0.text("credits") } == ["-1.3", "-2"])
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/usage/export?format=xml", key: server.platformKey).status == 422)
        }
    }

    /// 100,000 usage entries stream out one database page at a time: the largest piece the
    /// server holds is one page, whatever the size of the export.
    @Test func anExportOfAHundredThousandEntriesStaysWithinAFixedMemoryBound() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let orgID = UUID(uuidString: org)!
            try await server.pool.query("""
                INSERT INTO ledger_entries (org_id, entry_id, type, credits, operation, quantity, event_id, actor, created_at)
                SELECT \(orgID), gen_random_uuid(), 'usage', -1.3, 'smart_crop', 1, 'evt-' || n, 'user-' || (n % 50),
                       timestamptz '2026-01-01' + n * interval '1 second'
                FROM generate_series(1, 100000) AS n
                """, logger: testLogger)
            let rssBefore = residentMegabytes()
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/v1/orgs/\(org)/usage/export?format=csv")
            request.headers.add(name: "Authorization", value: "Bearer \(server.platformKey)")
            let response = try await server.http.execute(request, timeout: .seconds(300))
            var lines = 0
            var bytes = 0
            var peak = rssBefore
            for try await chunk in response.body {
                bytes += chunk.readableBytes
                lines += chunk.readableBytesView.filter { $0 == UInt8(ascii: "\n") }.count
                peak = max(peak, residentMegabytes())
            }
            #expect(lines == 100_001)
            let largest = ExportMeter.shared.largestChunkBytes
            print("export: \(bytes) bytes, largest chunk held \(largest) bytes, resident memory \(rssBefore) MB -> peak \(peak) MB")
            #expect(largest < 512 * 1024)
            #expect(peak - rssBefore < 128)
        }
    }
}

/// Resident memory of this process in MB (server and test share it).
func residentMegabytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
    return kilobytes / 1024
}
