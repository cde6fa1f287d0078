import Foundation
import Testing
import TallyCore
import TallyJSON
import TallyStore
import TallyTestSupport

@Suite struct SubscriptionTests {
    /// Seed 001: a $250 plan with 4,570 credits from May 6, 400 credits left on May 8, an
    /// immediate downgrade to a $100 plan.
    @Test func theSeedDowngrade() async throws {
        try await TestServer.run { server in
            try await server.createPlan("studio_250", price: "250.00", credits: "4570")
            try await server.createPlan("basic_100", price: "100.00", credits: "1700")
            let clock = try await server.createClock("2026-05-06T09:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            let started = try await server.subscribe(org, plan: "studio_250")
            #expect(started["current_period_end"] == "2026-06-06T09:00:00Z")
            #expect(try await server.spend(org, "4170").status == 201)
            #expect(try await server.available(org) == Credits(400))

            try await server.advance(clock, to: "2026-05-08T14:30:00Z")
            let admin = try await server.createKey(org: org, role: "admin")
            let change = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: admin,
                                                  json: #"{"plan": "basic_100", "effective": "immediate"}"#)
            #expect(change.status == 200)
            #expect(try change.json["charge"]?.text("amount") == "100.00")
            #expect(change["credits_carried"] == "400")
            #expect(change["credits_granted"] == "1700")
            #expect(change["period_end"] == "2026-06-08T14:30:00Z")
            #expect(try await server.available(org) == Credits(400 + 1700))

            var invoices = try await server.invoices(org)
            #expect(invoices.map { $0["total"]?.text("amount") } == ["250.00", "100.00"])
            #expect(invoices.map { $0.text("period_start") } == ["2026-05-06T09:00:00Z", "2026-05-08T14:30:00Z"])
            #expect(invoices.map { $0.text("number") } == ["1", "2"])

            // The next cycle starts June 8 and charges $100 again; the carried 400 expire then
            // (rollover none), as does what is left of May's allocation.
            _ = try await server.spend(org, "100")
            try await server.advance(clock, to: "2026-06-08T14:30:00Z")
            invoices = try await server.invoices(org)
            #expect(invoices.map { $0["total"]?.text("amount") } == ["250.00", "100.00", "100.00"])
            #expect(invoices.last?.text("period_start") == "2026-06-08T14:30:00Z")
            #expect(try await server.available(org) == Credits(1700))
            let expiries = try await server.list("/v1/orgs/\(org)/ledger?type=expiry")
            #expect(expiries.map { $0.text("credits") ?? "" }.sorted() == ["-1700", "-300"])
            #expect(expiries.allSatisfy { $0.text("created_at") == "2026-06-08T14:30:00Z" })
            #expect(try await server.verify() == [])
        }
    }

    @Test func aJanuary31AnchorThroughFourteenRenewals() async throws {
        try await TestServer.run { server in
            try await server.createPlan("monthly", price: "10.00", credits: "100")
            let clock = try await server.createClock("2026-01-31T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.subscribe(org, plan: "monthly")
            // One advance across fourteen boundaries: every renewal runs, in order, at its time.
            try await server.advance(clock, to: "2027-03-31T00:00:00Z")
            let starts = try await server.invoices(org).compactMap { $0.text("period_start") }
            #expect(starts == [
                "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31", "2026-06-30", "2026-07-31", "2026-08-31",
                "2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31", "2027-01-31", "2027-02-28", "2027-03-31",
            ].map { $0 + "T00:00:00Z" })
            let allocations = try await server.list("/v1/orgs/\(org)/ledger?type=plan_allocation&limit=500")
            #expect(allocations.count == 15)
            let subscription = try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: server.platformKey)
            #expect(subscription["current_period_end"] == "2027-04-30T00:00:00Z")
            #expect(try await server.available(org) == Credits(100))
            #expect(try await server.verify() == [])
        }
    }

    @Test func aCappedRolloverNeverExceedsTheCapOverAHundredRenewals() async throws {
        try await TestServer.run { server in
            try await server.createPlan("capped", price: "5.00", credits: "700", rollover: #"{"policy": "capped", "max_credits": "1000"}"#)
            let clock = try await server.createClock("2020-01-15T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.subscribe(org, plan: "capped")
            try await server.advance(clock, to: "2028-05-15T00:00:00Z")
            let rows = try await server.pool.query("""
                SELECT count(*), max(granted) FROM credit_buckets WHERE source = 'rollover'
                """, logger: testLogger).collect()
            let (count, largest) = try rows[0].decode((Int, Credits).self)
            #expect(count == 100)
            #expect(largest == Credits(1000))
            #expect(try await server.available(org) == Credits(1700))
            #expect(try await server.verify() == [])
        }
    }

    /// The same history, renewed on time, twice concurrently at every boundary, and three periods
    /// late: the ledgers and invoices are the same.
    @Test func renewalOnTimeTwiceConcurrentlyAndLateWriteTheSameLedger() async throws {
        let clock = ManualClock("2026-02-10T12:00:00Z")
        try await TestServer.run(clock: clock, databaseConnections: 12) { server in
            try await server.createPlan("roll", price: "20.00", credits: "300", rollover: #"{"policy": "capped", "max_credits": "100"}"#)
            _ = try await server.loadDemoCatalog()
            var orgs: [String] = []
            for name in ["on-time", "concurrent", "late"] {
                let org = try await server.createOrg(name: name)
                try await server.subscribe(org, plan: "roll")
                try await server.grant(org, "50", source: "promotional", expiresAt: "2026-04-01T00:00:00Z")
                _ = try await server.spend(org, "120")
                orgs.append(org)
            }
            let boundaries = ["2026-03-10T12:00:00Z", "2026-04-10T12:00:00Z", "2026-05-10T12:00:00Z"].map { try! Instant(rfc3339: $0) }
            let jobs = server.stores
            let (onTime, concurrent, late) = (UUID(uuidString: orgs[0])!, UUID(uuidString: orgs[1])!, UUID(uuidString: orgs[2])!)
            for boundary in boundaries {
                _ = try await jobs.subscriptions.renewDue(.org(onTime), until: boundary)
                _ = try await jobs.expiry.expireDue(.org(onTime), until: boundary)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<2 {
                        group.addTask { _ = try await jobs.subscriptions.renewDue(.org(concurrent), until: boundary) }
                        group.addTask { _ = try await jobs.expiry.expireDue(.org(concurrent), until: boundary) }
                    }
                    try await group.waitForAll()
                }
            }
            _ = try await jobs.subscriptions.renewDue(.org(late), until: boundaries[2].adding(days: 3))
            _ = try await jobs.expiry.expireDue(.org(late), until: boundaries[2].adding(days: 3))

            let ledgers = try await orgs.asyncMap { try await server.ledgerLines($0) }
            #expect(ledgers[0].count > 10)
            #expect(ledgers[1] == ledgers[0])
            #expect(ledgers[2] == ledgers[0])
            let invoices = try await orgs.asyncMap { org in
                try await server.invoices(org).map { "\($0.text("number") ?? "") \($0.text("period_start") ?? "") \($0["total"]?.text("amount") ?? "")" }
            }
            #expect(invoices[0].count == 4)
            #expect(invoices[1] == invoices[0])
            #expect(invoices[2] == invoices[0])
            #expect(try await server.verify() == [])
        }
    }

    /// Renewals run in batches of many organisations, one transaction each. Every kind of
    /// renewal (rollover, overage invoiced, cancellation, a change to a yearly or a free plan),
    /// batched across organisations, writes what the same renewal writes on its own.
    @Test func renewalsInBatchesWriteWhatEachWritesAlone() async throws {
        let clock = ManualClock("2026-03-05T08:00:00Z")
        try await TestServer.run(clock: clock, databaseConnections: 12) { server in
            try await server.createPlan("roll", price: "20.00", credits: "300", rollover: #"{"policy": "capped", "max_credits": "100"}"#,
                                        overage: #"{"allowed": true, "rate_per_credit": "0.10"}"#)
            try await server.createPlan("yearly", price: "200.00", credits: "4000", interval: "year")
            try await server.createPlan("free", price: "0.00", credits: "50")
            func start(_ variant: Int) async throws -> String {
                let org = try await server.createOrg()
                try await server.subscribe(org, plan: "roll")
                func change(_ path: String, _ json: String) async throws {
                    let response = try await server.request(.POST, "/v1/orgs/\(org)/subscription/\(path)", key: server.platformKey, json: json)
                    try #require(response.status == 200)
                }
                switch variant {
                case 0: _ = try await server.spend(org, "120")
                case 1:
                    _ = try await server.settings(org, #"{"overage_protection": false}"#)
                    _ = try await server.spend(org, "310")
                case 2: try await change("cancel", #"{"at_period_end": true}"#)
                case 3: try await change("change", #"{"plan": "yearly", "effective": "period_end"}"#)
                default:
                    try await change("change", #"{"plan": "free", "effective": "period_end"}"#)
                    _ = try await server.spend(org, "5")
                }
                return org
            }
            var alone: [String] = []
            var batched: [String] = []
            for variant in 0..<5 { alone.append(try await start(variant)) }
            for copy in 0..<15 { batched.append(try await start(copy % 5)) }

            clock.set("2026-05-06T08:00:00Z")   // two boundaries later
            for org in alone { try await server.stores.subscriptions.catchUp(orgID: UUID(uuidString: org)!, until: clock.now()) }
            // Batches of four mix organisations of every kind; three run at once.
            let renewed = try await server.stores.subscriptions.renewDue(.realClock, until: clock.now(), batchSize: 4, concurrency: 3)
            #expect(renewed == 3 * (2 + 2 + 1 + 1 + 2))

            func history(_ org: String) async throws -> [String] {
                let events = try await server.pool.query("""
                    SELECT type FROM events WHERE org_id = \(UUID(uuidString: org)!) ORDER BY type
                    """, logger: testLogger).collect().map { try $0.decode(String.self) }
                let invoices = try await server.invoices(org).map {
                    "\($0.text("number") ?? "-") \($0.text("kind") ?? "") \($0.text("status") ?? "") \($0["total"]?.text("amount") ?? "")"
                }
                let subscription = try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: server.platformKey)
                let state = ["plan", "status", "current_period_start", "current_period_end"].map { subscription[$0] ?? "-" }
                return try await server.ledgerLines(org) + events + invoices.sorted() + state
            }
            let expected = try await alone.asyncMap(history)
            #expect(expected[1].contains("2 overage open 1.00"))
            #expect(expected[3].contains("2027-04-05T08:00:00Z"))
            for (copy, org) in batched.enumerated() {
                #expect(try await history(org) == expected[copy % 5], "variant \(copy % 5)")
            }
            #expect(try await server.verify() == [])
        }
    }

    @Test func spendEverythingThenUpgradeOnTheLastDay() async throws {
        try await TestServer.run { server in
            try await server.createPlan("pro", price: "9.90", credits: "1000")
            try await server.createPlan("max", price: "25.90", credits: "3000")
            let clock = try await server.createClock("2026-03-01T10:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.subscribe(org, plan: "pro")
            #expect(try await server.spend(org, "1000").status == 201)
            #expect(try await server.spend(org, "1").status == 402)
            try await server.advance(clock, to: "2026-03-31T22:00:00Z")
            let change = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey, json: #"{"plan": "max"}"#)
            #expect(change.status == 200)
            // Documented policy: nothing to carry, the new allocation now, the new price now, a new cycle from now.
            #expect(change["credits_carried"] == "0")
            #expect(try change.json["charge"]?.text("amount") == "25.90")
            #expect(change["period_start"] == "2026-03-31T22:00:00Z")
            #expect(change["period_end"] == "2026-04-30T22:00:00Z")
            #expect(try await server.available(org) == Credits(3000))
            #expect(try await server.invoices(org).map { $0["total"]?.text("amount") } == ["9.90", "25.90"])
            // April 1 10:00 is no longer a renewal: nothing more is charged.
            try await server.advance(clock, to: "2026-04-01T10:00:00Z")
            #expect(try await server.invoices(org).count == 2)
        }
    }

    @Test func aPreviewShowsExactlyWhatTheChangeDoesAndWritesNothing() async throws {
        try await TestServer.run { server in
            try await server.createPlan("a", price: "30.00", credits: "1000", rollover: #"{"policy": "all"}"#)
            try await server.createPlan("b", price: "12.00", credits: "400")
            let clock = try await server.createClock("2026-07-01T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.subscribe(org, plan: "a")
            _ = try await server.spend(org, "250.5")
            try await server.advance(clock, to: "2026-07-20T08:00:00Z")
            let ledger = try await server.ledgerCount(org)
            let preview = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey,
                                                   json: #"{"plan": "b", "effective": "immediate", "preview": true}"#)
            #expect(preview.status == 200)
            #expect(preview["preview"] == "true")
            #expect(try await server.ledgerCount(org) == ledger)
            #expect(try await server.invoices(org).count == 1)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: server.platformKey)["plan"] == "a")
            let actual = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey,
                                                  json: #"{"plan": "b", "effective": "immediate"}"#)
            for field in ["plan", "effective_at", "credits_carried", "credits_granted", "period_start", "period_end"] {
                #expect(preview[field] == actual[field], "\(field)")
            }
            #expect(try preview.json["charge"] == actual.json["charge"])
            #expect(preview["credits_carried"] == "749.5")
            #expect(try await server.available(org) == (try Credits(parsing: "1149.5")))
        }
    }

    @Test func aScheduledChangeIsAppliedByRenewalAndALaterOneReplacesIt() async throws {
        try await TestServer.run { server in
            try await server.createPlan("big", price: "50.00", credits: "5000")
            try await server.createPlan("mid", price: "20.00", credits: "2000")
            try await server.createPlan("small", price: "10.00", credits: "1000")
            let clock = try await server.createClock("2026-01-10T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.subscribe(org, plan: "big")
            _ = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey, json: #"{"plan": "mid", "effective": "period_end"}"#)
            let replaced = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey, json: #"{"plan": "small", "effective": "period_end"}"#)
            #expect(try replaced.json["subscription"]?["scheduled_change"]?.text("plan") == "small")
            #expect(try await server.available(org) == Credits(5000))
            try await server.advance(clock, to: "2026-02-10T00:00:00Z")
            let subscription = try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: server.platformKey)
            #expect(subscription["plan"] == "small")
            #expect(try subscription.json["scheduled_change"] == .null)
            #expect(try await server.available(org) == Credits(1000))
            #expect(try await server.invoices(org).map { $0["total"]?.text("amount") } == ["50.00", "10.00"])
        }
    }

    @Test func aChangeToAFreePlanKeepsCreditsUntilTheCycleEnds() async throws {
        try await TestServer.run { server in
            try await server.createPlan("paid", price: "10.00", credits: "1000")
            try await server.createPlan("free", price: "0.00", credits: "50", expiry: #"{"policy": "days", "days": 30}"#)
            let clock = try await server.createClock("2026-04-01T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.subscribe(org, plan: "paid")
            try await server.advance(clock, to: "2026-04-20T00:00:00Z")
            let change = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey, json: #"{"plan": "free"}"#)
            #expect(change["credits_carried"] == "0")
            #expect(try change.json["charge"] == .null)
            #expect(try await server.available(org) == Credits(1050))
            try await server.advance(clock, to: "2026-05-01T00:00:00Z")   // the old cycle's end
            #expect(try await server.available(org) == Credits(50))
            #expect(try await server.invoices(org).count == 1)
            #expect(try await server.verify() == [])
        }
    }

    @Test func cancellationAtPeriodEndAndNow() async throws {
        try await TestServer.run { server in
            try await server.createPlan("p", price: "10.00", credits: "100", expiry: #"{"policy": "never"}"#)
            let clock = try await server.createClock("2026-04-01T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.subscribe(org, plan: "p")
            try await server.grant(org, "25", source: "refund")
            let later = try await server.request(.POST, "/v1/orgs/\(org)/subscription/cancel", key: server.platformKey, json: #"{"at_period_end": true}"#)
            #expect(later["cancel_at_period_end"] == "true")
            #expect(try await server.available(org) == Credits(125))
            try await server.advance(clock, to: "2026-05-01T00:00:00Z")
            let ended = try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: server.platformKey)
            #expect(ended["status"] == "canceled")
            #expect(ended["canceled_at"] == "2026-05-01T00:00:00Z")
            #expect(try await server.available(org) == Credits(25))   // plan credits gone, the rest stays
            #expect(try await server.invoices(org).count == 1)

            try await server.subscribe(org, plan: "p")
            #expect(try await server.available(org) == Credits(125))
            let now = try await server.request(.POST, "/v1/orgs/\(org)/subscription/cancel", key: server.platformKey, json: #"{"at_period_end": false}"#)
            #expect(now["status"] == "canceled")
            #expect(try await server.available(org) == Credits(25))
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/subscription/cancel", key: server.platformKey, json: "{}").status == 409)
            #expect(try await server.verify() == [])
        }
    }

    @Test func subscriptionRulesAndRoles() async throws {
        try await TestServer.run { server in
            try await server.createPlan("p", price: "10.00", credits: "100")
            try await server.createPlan("q", price: "12.00", credits: "100")
            let org = try await server.createOrg()
            let member = try await server.createKey(org: org, role: "member")
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/subscription", key: member, json: #"{"plan": "p"}"#).status == 403)
            let unknown = try await server.request(.POST, "/v1/orgs/\(org)/subscription", key: server.platformKey, json: #"{"plan": "nope"}"#)
            #expect(unknown.status == 422)
            #expect(unknown["field"] == "plan")
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: member).status == 404)
            try await server.subscribe(org, plan: "p")
            let twice = try await server.request(.POST, "/v1/orgs/\(org)/subscription", key: server.platformKey, json: #"{"plan": "q"}"#)
            #expect(twice.status == 409)
            #expect(twice["code"] == "subscription_exists")
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: member)["cost_per_credit"] == nil)
            let view = try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: member)
            #expect(try view.json["cost_per_credit"]?.text("amount") == "0.10")
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: member, json: #"{"plan": "q"}"#).status == 403)
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey, json: #"{"plan": "p"}"#).status == 409)
            // A plan in use is immutable; an unused one may change.
            let edit = #"{"code": "p", "name": "p", "price": {"amount": "11.00", "currency": "USD"}, "interval": "month", "credits_per_period": "100"}"#
            let inUse = try await server.request(.PUT, "/v1/plans/p", key: server.platformKey, json: edit)
            #expect(inUse.status == 409)
            #expect(inUse["code"] == "plan_in_use")
            let unused = try await server.request(.PUT, "/v1/plans/q", key: server.platformKey, json: edit.replacingOccurrences(of: #""p""#, with: #""q""#))
            #expect(unused.status == 200)
            #expect(try await server.request(.GET, "/v1/plans/q", key: server.platformKey).text.contains("11.00"))
        }
    }

    @Test func aPeriodThatEndedIsRenewedBeforeTheNextSpendWithoutAnyJob() async throws {
        let clock = ManualClock("2026-06-01T00:00:00Z")
        try await TestServer.run(clock: clock) { server in
            try await server.createPlan("p", price: "10.00", credits: "100")
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "p")
            _ = try await server.spend(org, "100")
            clock.set("2026-07-01T00:00:01Z")
            let spend = try await server.spend(org, "40")
            #expect(spend.status == 201)
            #expect(spend["available_after"] == "60")
            #expect(try await server.invoices(org).count == 2)
        }
    }

    @Test func testClocksMoveForwardOnlyAndRunJobsInTimeOrder() async throws {
        try await TestServer.run { server in
            try await server.createPlan("p", price: "10.00", credits: "100", expiry: #"{"policy": "days", "days": 10}"#)
            let clock = try await server.createClock("2026-01-01T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            let onClock = try await server.request(.GET, "/v1/orgs/\(org)", key: server.platformKey)
            #expect(onClock["created_at"] == "2026-01-01T00:00:00Z")
            try await server.subscribe(org, plan: "p")
            try await server.grant(org, "5", expiresAt: "2026-01-05T00:00:00Z")
            let back = try await server.request(.POST, "/v1/test-clocks/\(clock)/advance", key: server.platformKey, json: #"{"to": "2025-12-31T00:00:00Z"}"#)
            #expect(back.status == 422)
            try await server.advance(clock, to: "2026-02-15T00:00:00Z")
            let lines = try await server.ledgerLines(org)
            #expect(lines == [
                "2026-01-01T00:00:00Z free_credits 5.0000 0.0000",
                "2026-01-01T00:00:00Z plan_allocation 100.0000 0.0000",
                "2026-01-05T00:00:00Z expiry -5.0000 0.0000",
                "2026-01-11T00:00:00Z expiry -100.0000 0.0000",
                "2026-02-01T00:00:00Z plan_allocation 100.0000 0.0000",
                "2026-02-11T00:00:00Z expiry -100.0000 0.0000",
            ])
            // However often the jobs run now, nothing is expired twice.
            _ = try await server.stores.expiry.expireDue(.testClock(UUID(uuidString: clock)!), until: try Instant(rfc3339: "2026-02-15T00:00:00Z"))
            try await server.advance(clock, to: "2026-02-15T00:00:00Z")
            #expect(try await server.ledgerLines(org) == lines)
            #expect(try await server.request(.POST, "/v1/orgs", key: server.platformKey, json: #"{"name": "x", "test_clock_id": "00000000-0000-7000-8000-000000000000"}"#).status == 422)
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
