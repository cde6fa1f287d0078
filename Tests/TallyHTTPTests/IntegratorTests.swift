import Foundation
import Testing
import TallyCore
import TallyJSON
import TallyJobs
import TallyTestSupport

/// What an integrator and a team admin reach for on day one (issue 16): finding an organisation
/// by their own id, retrying subscription writes, features used per month, refunds in purchase
/// history, pay-as-you-go cost per credit, members holding raw credits.
@Suite struct IntegratorTests {
    @Test func organisationsAreFoundByExternalIDListedAndPatched() async throws {
        try await TestServer.run { server in
            let acme = try await server.createOrg(name: "Acme", extra: #", "external_id": "acct_1""#)
            server.clock.advance(seconds: 1)   // ids are time-ordered: the list is in creation order
            let globex = try await server.createOrg(name: "Globex", extra: #", "external_id": "acct_2""#)
            let found = try await server.list("/v1/orgs?external_id=acct_2")
            #expect(found.count == 1)
            #expect(found.first?["id"] == .string(globex))
            #expect(try await server.list("/v1/orgs?external_id=nobody").isEmpty)
            // A paged list in creation order.
            let first = try await server.request(.GET, "/v1/orgs?limit=1", key: server.platformKey)
            #expect(first.status == 200)
            let cursor = try #require(first["next_cursor"])
            let second = try await server.list("/v1/orgs?limit=1&cursor=\(cursor)")
            #expect(second.first?["id"] == .string(globex))
            guard case .array(let firstPage)? = try first.json["data"] else { Issue.record("no data"); return }
            #expect(firstPage.map { $0.text("id") } == [acme])

            // Platform only; an organisation's own admin may not rename it or list others.
            let admin = try await server.createKey(org: acme, role: "admin")
            #expect(try await server.request(.GET, "/v1/orgs", key: admin).status == 403)
            #expect(try await server.request(.PATCH, "/v1/orgs/\(acme)", key: admin, json: #"{"name": "Mine"}"#).status == 403)

            let patched = try await server.request(.PATCH, "/v1/orgs/\(acme)", key: server.platformKey,
                                                   json: #"{"name": "Acme GmbH", "timezone": "Europe/Berlin"}"#)
            #expect(patched.status == 200, "\(patched.text)")
            #expect(patched["name"] == "Acme GmbH")
            #expect(patched["external_id"] == "acct_1")
            #expect(patched["timezone"] == "Europe/Berlin")
            // external_id stays unique; a clash is 409 and changes nothing.
            let clash = try await server.request(.PATCH, "/v1/orgs/\(acme)", key: server.platformKey, json: #"{"external_id": "acct_2", "name": "X"}"#)
            #expect(clash.status == 409)
            #expect(clash["code"] == "external_id_taken")
            let unknownZone = try await server.request(.PATCH, "/v1/orgs/\(acme)", key: server.platformKey, json: #"{"timezone": "Mars/Olympus"}"#)
            #expect(unknownZone.status == 422)
            #expect(unknownZone["field"] == "timezone")
            #expect(try await server.request(.PATCH, "/v1/orgs/\(acme)", key: server.platformKey, json: #"{"colour": "red"}"#).status == 422)
            // null clears the external id.
            let cleared = try await server.request(.PATCH, "/v1/orgs/\(acme)", key: server.platformKey, json: #"{"external_id": null}"#)
            #expect(cleared.status == 200)
            #expect(try cleared.json["external_id"] == .null)
            #expect(cleared["name"] == "Acme GmbH")
            #expect(try await server.list("/v1/orgs?external_id=acct_1").isEmpty)
            #expect(try await server.request(.PATCH, "/v1/orgs/\(UUID().uuidString.lowercased())", key: server.platformKey,
                                             json: #"{"name": "Ghost"}"#).status == 404)
        }
    }

    /// A new time zone moves the monthly summary's month boundaries with it.
    @Test func aNewTimeZoneResumsTheMonthlySummary() async throws {
        let clock = ManualClock()
        clock.set("2026-11-30T23:30:00Z")   // Dec 1 00:30 in Berlin, still November in UTC
        try await TestServer.run(clock: clock) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            #expect(try await server.spend(org, "7").status == 201)
            clock.set("2026-12-03T10:00:00Z")
            let before = try await server.list("/v1/orgs/\(org)/usage/summary?months=2")
            #expect(before.map { $0["credits_used"] } == [.string("0"), .string("7")])
            _ = try await server.request(.PATCH, "/v1/orgs/\(org)", key: server.platformKey, json: #"{"timezone": "Europe/Berlin"}"#)
            let after = try await server.list("/v1/orgs/\(org)/usage/summary?months=2")
            #expect(after.map { $0["credits_used"] } == [.string("7"), .string("0")])
        }
    }

    @Test func subscriptionWritesReplayUnderTheirIdempotencyKey() async throws {
        try await TestServer.run { server in
            try await server.createPlan("basic", price: "10.00", credits: "100")
            try await server.createPlan("pro", price: "50.00", credits: "1000")
            let org = try await server.createOrg()
            let subscribe = { (key: String, plan: String) in
                try await server.request(.POST, "/v1/orgs/\(org)/subscription", key: server.platformKey, json: #"{"plan": "\#(plan)"}"#,
                                         headers: [("Idempotency-Key", key)])
            }
            let first = try await subscribe("sub-1", "basic")
            #expect(first.status == 201)
            let retried = try await subscribe("sub-1", "basic")
            #expect(retried.status == 201, "a retry replays the first answer, not subscription_exists: \(retried.text)")
            #expect(retried.body == first.body)
            #expect(retried.header("Idempotent-Replayed") == "true")
            #expect(try await server.invoices(org).count == 1)
            #expect(try await server.available(org) == Credits(100))
            // Another key is a real second subscribe: 409; the same key with another body: idempotency_conflict.
            #expect(try await subscribe("sub-2", "basic")["code"] == "subscription_exists")
            #expect(try await subscribe("sub-1", "pro")["code"] == "idempotency_conflict")

            server.clock.advance(seconds: 3600)
            let change = { (key: String) in
                try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey,
                                         json: #"{"plan": "pro", "effective": "immediate"}"#, headers: [("Idempotency-Key", key)])
            }
            let changed = try await change("change-1")
            #expect(changed.status == 200, "\(changed.text)")
            #expect(try await change("change-1").body == changed.body)
            #expect(try await server.invoices(org).count == 2)
            // A preview writes nothing, not even its key: the same key then does the change for real.
            let preview = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: server.platformKey,
                                                   json: #"{"plan": "basic", "effective": "period_end", "preview": true}"#,
                                                   headers: [("Idempotency-Key", "change-2")])
            #expect(preview.status == 200)
            #expect(try preview.json["subscription"]?["scheduled_change"] != .null)
            let scheduled = try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: server.platformKey)
            #expect(try scheduled.json["scheduled_change"] == .null)

            let cancel = { (key: String) in
                try await server.request(.POST, "/v1/orgs/\(org)/subscription/cancel", key: server.platformKey,
                                         json: #"{"at_period_end": false}"#, headers: [("Idempotency-Key", key)])
            }
            let canceled = try await cancel("cancel-1")
            #expect(canceled.status == 200, "\(canceled.text)")
            #expect(canceled["status"] == "canceled")
            let again = try await cancel("cancel-1")
            #expect(again.status == 200)
            #expect(again.body == canceled.body)
            // Without a key a second cancel is the real answer: nothing live to cancel.
            let unkeyed = try await server.request(.POST, "/v1/orgs/\(org)/subscription/cancel", key: server.platformKey, json: #"{"at_period_end": false}"#)
            #expect(unkeyed.status != 200)
            #expect(try await server.verify().isEmpty)
        }
    }

    @Test func theSummaryBreaksUsageDownByOperationNetOfReversals() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            for (code, credits) in [("crop", "1.3"), ("upscale", "4.1")] {
                let op = try await server.request(.POST, "/v1/operations", key: server.platformKey,
                                                  json: #"{"code": "\#(code)", "name": "\#(code)", "credits": "\#(credits)"}"#)
                #expect(op.status == 201)
            }
            try await server.grant(org, "100")
            let use = { (operation: String, quantity: Int) in
                try await server.request(.POST, "/v1/orgs/\(org)/usage", key: server.platformKey,
                                         json: #"{"operation": "\#(operation)", "quantity": \#(quantity)}"#, headers: [("Idempotency-Key", UUID().uuidString)])
            }
            #expect(try await use("crop", 10).status == 201)
            #expect(try await use("crop", 1).status == 201)
            let upscale = try await use("upscale", 2)
            #expect(upscale.status == 201)
            #expect(try await server.spend(org, "0.5").status == 201)
            let entry = try #require(upscale["entry_id"])
            let reversed = try await server.request(.POST, "/v1/orgs/\(org)/usage/\(entry)/reverse", key: server.platformKey,
                                                    json: #"{"credits": "4.1", "reason": "failed render"}"#, headers: [("Idempotency-Key", "rev")])
            #expect(reversed.status == 201, "\(reversed.text)")

            let months = try await server.list("/v1/orgs/\(org)/usage/summary?months=2&by=operation")
            #expect(months.count == 2)
            #expect(months[0]["credits_used"] == .string("18.9"))
            guard case .array(let operations)? = months[0]["operations"] else { Issue.record("no operations"); return }
            let rows = operations.map { "\($0.text("operation") ?? "null") \($0.text("credits_used") ?? "-") \($0.text("transactions") ?? "-")" }
            #expect(rows == ["crop 14.3 2", "upscale 4.1 1", "null 0.5 1"])
            #expect(months[1]["operations"] == .array([]))
            // Without by=operation the months carry no breakdown; another value is 422.
            #expect(try await server.list("/v1/orgs/\(org)/usage/summary?months=1")[0]["operations"] == nil)
            let bad = try await server.request(.GET, "/v1/orgs/\(org)/usage/summary?by=day", key: server.platformKey)
            #expect(bad.status == 422)
            #expect(bad["field"] == "by")
        }
    }

    @Test func purchaseHistoryListsCreditReturnsAsRefunds() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "50", source: "admin_grant")
            let spend = try await server.spend(org, "10")
            let entry = try #require(spend["entry_id"])
            let reversal = try await server.request(.POST, "/v1/orgs/\(org)/usage/\(entry)/reverse", key: server.platformKey,
                                                    json: #"{"credits": "4", "reason": "partial failure"}"#, headers: [("Idempotency-Key", "r")])
            #expect(reversal.status == 201)
            let history = try await server.list("/v1/orgs/\(org)/ledger?type=purchase_history")
            #expect(history.map { $0["type"] } == [.string("refund"), .string("admin_grant")])
            #expect(history.first?["credits"] == .string("4"))
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=refund").count == 1)
            // The full ledger, and a listing that names reversals, still call it a reversal.
            #expect(try await server.list("/v1/orgs/\(org)/ledger").first?["type"] == .string("reversal"))
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=reversal,refund").first?["type"] == .string("reversal"))
        }
    }

    @Test func aPayAsYouGoPlanShowsItsCreditPriceAsTheCostPerCredit() async throws {
        try await TestServer.run { server in
            try await server.createPlan("payg", price: "0.00", credits: "0",
                                        extra: #", "credit_price": {"amount": "0.05", "currency": "USD"}, "min_purchase_credits": "1000""#)
            try await server.createPlan("studio", price: "250.00", credits: "4570")
            let plans = try await server.list("/v1/plans")
            let costs = Dictionary(uniqueKeysWithValues: plans.compactMap { plan -> (String, JSONValue)? in
                guard case .string(let code)? = plan["code"] else { return nil }
                return (code, plan["cost_per_credit"]?["amount"] ?? .null)
            })
            #expect(costs["payg"] == .string("0.05"))
            #expect(costs["studio"] == .string("0.0547"))
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "payg")
            let subscription = try await server.request(.GET, "/v1/orgs/\(org)/subscription", key: server.platformKey)
            #expect(try subscription.json["cost_per_credit"]?["amount"] == .string("0.05"))
            let balance = try await server.request(.GET, "/v1/orgs/\(org)/balance", key: server.platformKey)
            #expect(try balance.json["cost_per_credit"]?["amount"] == .string("0.05"))
        }
    }

    @Test func membersHoldRawCreditsButSpendThroughOperations() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let member = try await server.createKey(org: org, role: "member")
            try await server.grant(org, "20")
            let hold = try await server.request(.POST, "/v1/orgs/\(org)/reservations", key: member, json: #"{"credits": "12.5"}"#,
                                                headers: [("Idempotency-Key", "hold")])
            #expect(hold.status == 201, "\(hold.text)")
            #expect(try await server.available(org) == Credits(parsing: "7.5"))
            let commit = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(hold["id"] ?? "")/commit", key: member,
                                                  json: #"{"credits": "3"}"#, headers: [("Idempotency-Key", "commit")])
            #expect(commit.status == 201 || commit.status == 200, "\(commit.text)")
            #expect(try await server.available(org) == Credits(17))
            let rawSpend = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: member, json: #"{"credits": "1"}"#,
                                                    headers: [("Idempotency-Key", "raw")])
            #expect(rawSpend.status == 403)
        }
    }
}

/// `POST .../usage/batch`: each item answered exactly as `POST .../usage` with its key would be.
@Suite struct UsageBatchTests {
    @Test func eachItemGetsTheAnswerOfASingleSpendAndNoneUndoesAnother() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let member = try await server.createKey(org: org, role: "member")
            let op = try await server.request(.POST, "/v1/operations", key: server.platformKey, json: #"{"code": "crop", "name": "Crop", "credits": "1.3"}"#)
            #expect(op.status == 201)
            try await server.grant(org, "10")
            let batch = #"""
                {"items": [
                  {"idempotency_key": "a", "operation": "crop", "quantity": 2},
                  {"idempotency_key": "b", "operation": "crop", "quantity": 100},
                  "not an object",
                  {"idempotency_key": "c", "operation": "crop", "quantity": 0},
                  {"operation": "crop"},
                  {"idempotency_key": "d", "operation": "crop", "quantity": 3, "actor": "user_42"},
                  {"idempotency_key": "e", "credits": "1"}
                ]}
                """#
            let response = try await server.request(.POST, "/v1/orgs/\(org)/usage/batch", key: member, json: batch)
            #expect(response.status == 200, "\(response.text)")
            guard case .array(let results)? = try response.json["results"] else { Issue.record("no results: \(response.text)"); return }
            #expect(results.map { $0.text("status") } == ["201", "402", "422", "422", "400", "201", "403"])
            #expect(results[1]["body"]?.text("code") == "insufficient_credits")
            #expect(results[2]["body"]?.text("field") == "items[2]")
            #expect(results[4]["body"]?.text("code") == "idempotency_key_required")
            // 2.6 + 3.9 spent; the refused items wrote nothing.
            #expect(try await server.available(org) == Credits(parsing: "3.5"))

            // The same batch again replays every answer and spends nothing more.
            let again = try await server.request(.POST, "/v1/orgs/\(org)/usage/batch", key: member, json: batch)
            #expect(again.body == response.body)
            #expect(try await server.available(org) == Credits(parsing: "3.5"))
            // A single request with an item's key and body replays that item's answer, and back.
            let single = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: member, json: #"{"operation": "crop", "quantity": 3, "actor": "user_42"}"#,
                                                  headers: [("Idempotency-Key", "d")])
            #expect(single.status == 201)
            #expect(single.header("Idempotent-Replayed") == "true")
            #expect(try JSONValue.object([("x", results[5]["body"] ?? .null)]).serialized() == JSONValue.object([("x", try single.json)]).serialized())
            let first = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: member, json: #"{"operation": "crop", "quantity": 1}"#,
                                                 headers: [("Idempotency-Key", "f")])
            #expect(first.status == 201)
            let replayed = try await server.request(.POST, "/v1/orgs/\(org)/usage/batch", key: member,
                                                    json: #"{"items": [{"idempotency_key": "f", "operation": "crop", "quantity": 1}]}"#)
            guard case .array(let one)? = try replayed.json["results"] else { Issue.record("no results"); return }
            #expect(one.first?["body"] == (try first.json))
            #expect(try await server.available(org) == Credits(parsing: "2.2"))
            #expect(try await server.verify().isEmpty)
        }
    }

    @Test func aBatchOfNoneOrTooManyItemsIs422AndWritesNothing() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "1000")
            let entries = try await server.ledgerCount(org)
            let item = #"{"idempotency_key": "k\#(0)", "credits": "1"}"#
            let tooMany = (0...100).map { #"{"idempotency_key": "k\#($0)", "credits": "1"}"# }.joined(separator: ",")
            for body in [#"{"items": []}"#, #"{"items": [\#(tooMany)]}"#, #"{"items": {}}"#, #"{}"#, #"{"items": [\#(item)], "extra": 1}"#, "[]"] {
                let response = try await server.request(.POST, "/v1/orgs/\(org)/usage/batch", key: server.platformKey, json: body)
                #expect(response.status == 422, "\(body.prefix(40)): \(response.text)")
            }
            #expect(try await server.ledgerCount(org) == entries)
            // A hundred is fine.
            let hundred = (0..<100).map { #"{"idempotency_key": "k\#($0)", "credits": "1"}"# }.joined(separator: ",")
            let full = try await server.request(.POST, "/v1/orgs/\(org)/usage/batch", key: server.platformKey, json: #"{"items": [\#(hundred)]}"#)
            #expect(full.status == 200)
            #expect(try await server.available(org) == Credits(900))
            #expect(try await server.ledgerCount(org) == entries + 100)
        }
    }
}

/// Telling the organisation before credits go: `credits.expiring` and the default `balance.low`.
@Suite struct CreditWarningTests {
    @Test func creditsExpiringFiresOncePerBucketAtItsWarningTime() async throws {
        try await TestServer.run { server in
            let clock = try await server.createClock("2026-03-01T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            let soon = try await server.grant(org, "30", expiresAt: "2026-03-11T00:00:00Z")        // warned on Mar 4 (7 days before)
            try await server.grant(org, "5", expiresAt: "2026-03-04T12:00:00Z")                    // within 7 days already: warned at once
            try await server.grant(org, "9")                                                        // never expires: never warned
            let spent = try await server.grant(org, "1", priority: 0, expiresAt: "2026-03-09T00:00:00Z")
            #expect(try await server.spend(org, "1").status == 201)                                 // empty: nothing to warn of
            let expiring = { try await server.list("/v1/orgs/\(org)/events?limit=100").filter { $0.text("type") == "credits.expiring" } }

            try await server.advance(clock, to: "2026-03-02T00:00:00Z")
            #expect(try await expiring().count == 1)
            try await server.advance(clock, to: "2026-03-05T00:00:00Z")
            let events = try await expiring()
            #expect(events.count == 2)
            let warning = try #require(events.first { $0["data"]?.text("bucket_id") == soon })
            #expect(warning.text("created_at") == "2026-03-04T00:00:00Z")
            #expect(warning["data"]?.text("credits") == "30")
            #expect(warning["data"]?.text("expires_at") == "2026-03-11T00:00:00Z")
            #expect(!events.contains { $0["data"]?.text("bucket_id") == spent })
            // Once per bucket, whatever runs again.
            try await server.advance(clock, to: "2026-03-10T00:00:00Z")
            _ = try await server.stores.expiry.warnExpiring(.testClock(UUID(uuidString: clock)!), at: try Instant(rfc3339: "2026-03-10T00:00:00Z"))
            #expect(try await expiring().count == 2)

            // expiry_warning_days 0 turns it off; out of range is 422.
            #expect(try await server.settings(org, #"{"expiry_warning_days": 366}"#).status == 422)
            let off = try await server.settings(org, #"{"expiry_warning_days": 0}"#)
            #expect(off["expiry_warning_days"] == "0")
            try await server.grant(org, "3", expiresAt: "2026-03-12T00:00:00Z")
            try await server.advance(clock, to: "2026-03-11T00:00:00Z")
            #expect(try await expiring().count == 2)
        }
    }

    @Test func balanceLowIsOnByDefaultAtTenPercentOfTheAllocation() async throws {
        try await TestServer.run { server in
            try await server.createPlan("p", price: "10.00", credits: "100")
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "p")
            let lows = { try await server.list("/v1/orgs/\(org)/events?limit=100").filter { $0.text("type") == "balance.low" } }
            #expect(try await server.spend(org, "85").status == 201)
            #expect(try await lows().isEmpty)                      // 15 left: above 10
            #expect(try await server.spend(org, "6").status == 201)
            let events = try await lows()
            #expect(events.count == 1)
            #expect(events.first?["data"]?.text("threshold") == "10")
            #expect(events.first?["data"]?.text("available") == "9")
            // "0" turns it off; an organisation without a plan has no default.
            _ = try await server.settings(org, #"{"low_balance_credits": "0"}"#)
            #expect(try await server.spend(org, "8").status == 201)
            #expect(try await lows().count == 1)
            let payg = try await server.createOrg(name: "No plan")
            try await server.grant(payg, "10")
            #expect(try await server.spend(payg, "9.5").status == 201)
            #expect(try await server.list("/v1/orgs/\(payg)/events?limit=100").filter { $0.text("type") == "balance.low" }.isEmpty)
        }
    }
}

/// Auto top-up that saves the spend needing it, and the cron's top-up of balances that fell.
@Suite struct AutoTopUpRescueTests {
    @Test func aSpendTheCreditsDoNotCoverBuysThePackFirstOncePerHour() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            _ = try await server.settings(org, #"{"auto_topup": {"enabled": true, "threshold_credits": "5", "pack": "basic"}}"#)
            let saved = try await server.spend(org, "50")
            #expect(saved.status == 201, "the pack is bought first, then the spend goes through: \(saved.text)")
            #expect(saved["available_after"] == "60")
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=purchase").count == 1)
            // Within the hour no second pack: a spend beyond the credits is refused as before.
            let refused = try await server.spend(org, "500")
            #expect(refused.status == 402)
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=purchase").count == 1)
            #expect(try await server.available(org) == Credits(60))
            #expect(try await server.verify().isEmpty)
        }
    }

    @Test func theCronTopsUpBalancesThatFellWithoutASpendAndRecordsFailuresOnce() async throws {
        let clock = ManualClock("2026-03-01T00:00:00Z")
        try await TestServer.run(clock: clock) { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.grant(org, "30", expiresAt: "2026-03-01T01:00:00Z")
            try await server.grant(org, "20")
            _ = try await server.settings(org, #"{"auto_topup": {"enabled": true, "threshold_credits": "40", "pack": "basic"}}"#)
            let jobs = JobRunner(stores: server.stores, logger: testLogger)
            #expect(try await jobs.runOnce(at: clock.now()).topUps == 0)          // 50 available: above 40
            clock.advance(seconds: 7200)                                         // 30 expire: 20 left
            #expect(try await jobs.runOnce(at: clock.now()).topUps == 1)
            #expect(try await server.available(org) == Credits(120))
            #expect(try await jobs.runOnce(at: clock.now()).topUps == 0)

            // A pack that is gone: one failed attempt and its event per hour, never a loop.
            let other = try await server.createOrg(name: "Other")
            _ = try await server.settings(other, #"{"auto_topup": {"enabled": true, "threshold_credits": "40", "pack": "basic"}}"#)
            try await server.pool.query("ALTER TABLE orgs DROP CONSTRAINT orgs_auto_topup_pack_fkey", logger: testLogger)
            try await server.pool.query("UPDATE orgs SET auto_topup_pack = 'gone' WHERE org_id = \(UUID(uuidString: other)!)", logger: testLogger)
            #expect(try await jobs.runOnce(at: clock.now()).topUps == 0)
            #expect(try await jobs.runOnce(at: clock.now()).topUps == 0)
            let failures = try await server.list("/v1/orgs/\(other)/events?limit=100").filter { $0.text("type") == "auto_topup.failed" }
            #expect(failures.count == 1)
            #expect(try await server.verify().isEmpty)
        }
    }
}

/// Who did it: each ledger entry, plan change and settings change records the key (id and
/// prefix, never the secret) that made it.
@Suite struct KeyStampTests {
    @Test func entriesPlanChangesAndSettingsRecordTheirKey() async throws {
        try await TestServer.run { server in
            try await server.createPlan("basic", price: "10.00", credits: "100")
            try await server.createPlan("pro", price: "50.00", credits: "1000")
            let org = try await server.createOrg()
            let made = { (role: String) in
                try await server.request(.POST, "/v1/orgs/\(org)/api-keys", key: server.platformKey, json: #"{"name": "\#(role)", "role": "\#(role)"}"#)
            }
            let member = try await made("member")
            let admin = try await made("admin")
            let memberKey = try #require(member["key"]), adminKey = try #require(admin["key"])
            let subscribed = try await server.request(.POST, "/v1/orgs/\(org)/subscription", key: adminKey, json: #"{"plan": "basic"}"#)
            #expect(subscribed.status == 201)
            let spend = try await server.request(.POST, "/v1/orgs/\(org)/reservations", key: memberKey, json: #"{"credits": "2"}"#,
                                                 headers: [("Idempotency-Key", "hold")])
            #expect(spend.status == 201)
            let batch = try await server.request(.POST, "/v1/orgs/\(org)/usage/batch", key: memberKey,
                                                 json: #"{"items": [{"idempotency_key": "b1", "credits": "1"}]}"#)
            #expect(batch.status == 200)   // raw credits from a member: 403 inside, and nothing written
            try await server.grant(org, "5", source: "promotional")
            server.clock.advance(seconds: 60)
            let changed = try await server.request(.POST, "/v1/orgs/\(org)/subscription/change", key: adminKey, json: #"{"plan": "pro"}"#)
            #expect(changed.status == 200, "\(changed.text)")
            let settings = try await server.request(.PATCH, "/v1/orgs/\(org)/settings", key: adminKey, json: #"{"expiry_warning_days": 3}"#)
            #expect(settings["changed_by_api_key_id"] == admin["id"])
            #expect(settings["changed_by_api_key_prefix"] == admin["prefix"])
            #expect(settings["changed_at"] != nil)

            let ledger = try await server.list("/v1/orgs/\(org)/ledger?limit=100")
            func keys(_ type: String) -> [String] {
                ledger.filter { $0.text("type") == type }.map { "\($0.text("api_key_id") ?? "-") \($0.text("api_key_prefix") ?? "-")" }
            }
            #expect(keys("hold") == ["\(member["id"]!) \(member["prefix"]!)"])
            #expect(keys("promotional") == ["- platform"])
            #expect(keys("plan_allocation") == ["\(admin["id"]!) \(admin["prefix"]!)", "\(admin["id"]!) \(admin["prefix"]!)"])
            // Never the secret: neither key's secret appears anywhere in the ledger, the events or the settings.
            let ledgerText = try await server.request(.GET, "/v1/orgs/\(org)/ledger?limit=100", key: server.platformKey).text
            let eventsText = try await server.request(.GET, "/v1/orgs/\(org)/events?limit=100", key: server.platformKey).text
            for secret in [memberKey, adminKey] {
                #expect(![ledgerText, eventsText, settings.text].contains { $0.contains(secret) })
            }
            let events = try await server.list("/v1/orgs/\(org)/events?limit=100").filter { $0.text("type") == "subscription.changed" }
            #expect(events.allSatisfy { $0["data"]?.text("api_key_id") == admin["id"] })
            let row = try await server.pool.query("SELECT changed_by_key_id::text, changed_by_key_prefix FROM subscriptions", logger: testLogger).collect()
            #expect(try row[0].decode((String, String).self) == (admin["id"]!, admin["prefix"]!))
        }
    }

    @Test func spendsKeepTheirOwnKeyInASharedBatch() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "1000")
            let op = try await server.request(.POST, "/v1/operations", key: server.platformKey, json: #"{"code": "crop", "name": "Crop", "credits": "1"}"#)
            #expect(op.status == 201)
            var prefixes: [String: String] = [:]
            var secrets: [String] = []
            for index in 0..<4 {
                let key = try await server.request(.POST, "/v1/orgs/\(org)/api-keys", key: server.platformKey, json: #"{"name": "k\#(index)", "role": "member"}"#)
                secrets.append(key["key"]!)
                prefixes[key["key"]!] = key["prefix"]!
            }
            // Concurrent spends of one organisation are written together, whichever request leads.
            let entries = try await withThrowingTaskGroup(of: (String, String).self) { group in
                for (index, secret) in secrets.enumerated() {
                    for round in 0..<10 {
                        group.addTask {
                            let spend = try await server.request(.POST, "/v1/orgs/\(org)/usage", key: secret, json: #"{"operation": "crop"}"#,
                                                                 headers: [("Idempotency-Key", "\(index)-\(round)")])
                            return (secret, spend["entry_id"] ?? "")
                        }
                    }
                }
                var all: [(String, String)] = []
                for try await pair in group { all.append(pair) }
                return all
            }
            let ledger = try await server.list("/v1/orgs/\(org)/ledger?type=usage&limit=100")
            let byEntry = Dictionary(uniqueKeysWithValues: ledger.map { ($0.text("id") ?? "", $0.text("api_key_prefix") ?? "-") })
            #expect(entries.count == 40)
            #expect(entries.allSatisfy { byEntry[$0.1] == prefixes[$0.0] })
        }
    }
}
