import Foundation
import Testing
import TallyCore
import TallyJSON
import TallyStore
import TallyTestSupport

extension TestServer {
    func settings(_ org: String, _ json: String) async throws -> TestResponse {
        try await request(.PATCH, "/v1/orgs/\(org)/settings", key: platformKey, json: json)
    }

    func purchase(_ org: String, _ json: String, key: String = UUID().uuidString) async throws -> TestResponse {
        try await request(.POST, "/v1/orgs/\(org)/purchases", key: platformKey, json: json, headers: [("Idempotency-Key", key)])
    }

    /// The organisation's draft overage invoice total, if any.
    func overageDraftTotal(_ org: String) async throws -> String? {
        try await invoices(org).first { $0.text("kind") == "overage" && $0.text("status") == "draft" }?["total"]?.text("amount")
    }
}

@Suite struct OverageTests {
    /// Seed 001: $0.10 per overage credit; with no credits left and protection off a 4.1-credit
    /// operation succeeds and the period's overage invoice totals $0.41; with 2 credits left the
    /// overage is 2.1 credits, $0.21.
    @Test(arguments: [("0", "4.1", "0.41"), ("2", "2.1", "0.21")])
    func theSeedOverage(left: String, overage: String, total: String) async throws {
        try await TestServer.run { server in
            try await server.createPlan("studio", price: "250.00", credits: "100", overage: #"{"allowed": true, "rate_per_credit": "0.10"}"#)
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "studio")
            _ = try await server.spend(org, (try Credits(parsing: "100") - (try Credits(parsing: left))).description)
            #expect(try await server.available(org) == (try Credits(parsing: left)))
            #expect(try await server.settings(org, #"{"overage_protection": false}"#).status == 200)
            let member = try await server.createKey(org: org, role: "member")
            let spend = try await server.usage(org, key: member, #"{"operation": "lifestyle_crop"}"#)
            #expect(spend.status == 201)
            #expect(spend["credits"] == "4.1")
            #expect(spend["overage_credits"] == overage)
            #expect(spend["available_after"] == "0")
            #expect(try await server.overageDraftTotal(org) == total)
            let balance = try await server.request(.GET, "/v1/orgs/\(org)/balance", key: member)
            #expect(try balance.json["period"]?.text("overage_credits") == overage)
            let used = Credits(100) - (try Credits(parsing: left)) + (try Credits(parsing: "4.1"))
            #expect(try balance.json["period"]?.text("used") == used.description)
            #expect(try balance.json["period"]?.text("used_percent") == used.description)
            #expect(try balance.json["cost_per_credit"]?.text("amount") == "2.50")
            #expect(try await server.verify() == [])
        }
    }

    @Test func overageAccumulatesIsFinalizedAtRenewalAndShrinksWithAReversal() async throws {
        try await TestServer.run { server in
            try await server.createPlan("studio", price: "250.00", credits: "10", overage: #"{"allowed": true, "rate_per_credit": "0.10"}"#)
            let clock = try await server.createClock("2026-05-06T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            try await server.subscribe(org, plan: "studio")
            _ = try await server.settings(org, #"{"overage_protection": false}"#)
            #expect(try await server.spend(org, "14.1").status == 201)    // 4.1 overage
            let second = try await server.spend(org, "2.1")               // 2.1 more
            #expect(second["overage_credits"] == "2.1")
            #expect(try await server.overageDraftTotal(org) == "0.62")
            let entry = try #require(second["entry_id"])
            let reversal = try await server.request(.POST, "/v1/orgs/\(org)/usage/\(entry)/reverse", key: server.platformKey, json: "{}")
            #expect(reversal["overage_credits"] == "2.1")
            #expect(try await server.overageDraftTotal(org) == "0.41")
            try await server.advance(clock, to: "2026-06-06T00:00:00Z")
            let invoices = try await server.invoices(org).sorted { Int($0.text("number") ?? "0")! < Int($1.text("number") ?? "0")! }
            #expect(invoices.map { "\($0.text("number") ?? "-") \($0.text("kind") ?? "") \($0.text("status") ?? "") \($0["total"]?.text("amount") ?? "")" } == [
                "1 subscription open 250.00", "2 overage open 0.41", "3 subscription open 250.00",
            ])
            let overageInvoice = try #require(invoices.first { $0.text("kind") == "overage" })
            guard case .array(let lines)? = overageInvoice["lines"] else { Issue.record("no lines"); return }
            #expect(lines.map { $0.text("quantity") } == ["4.1"])
            #expect(lines.map { $0["unit_price"]?.text("amount") } == ["0.10"])
            #expect(try await server.verify() == [])
        }
    }

    /// A spend priced on terms read just before its period was renewed must not put overage on
    /// a new draft for the finalised period (nothing would ever bill it): it writes nothing, and
    /// over HTTP it is priced again on the new period.
    @Test func aSpendWhosePeriodWasRenewedMeanwhileWritesNothingAndIsPricedAgain() async throws {
        try await TestServer.run { server in
            try await server.createPlan("studio", price: "250.00", credits: "10", overage: #"{"allowed": true, "rate_per_credit": "0.10"}"#)
            let clock = try await server.createClock("2026-05-06T00:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            let orgID = try #require(UUID(uuidString: org))
            try await server.subscribe(org, plan: "studio")
            _ = try await server.settings(org, #"{"overage_protection": false}"#)
            #expect(try await server.spend(org, "12").status == 201)     // 2 overage in May
            let stale = try #require(try await server.stores.orgs.context(orgID))
            #expect(stale.period?.start == (try Instant(rfc3339: "2026-05-06T00:00:00Z")))
            try await server.advance(clock, to: "2026-06-06T00:00:00Z")   // renewal finalises May's overage
            let invoicesBefore = try await server.invoices(org).count
            let entriesBefore = try await server.ledgerCount(org)

            await #expect(throws: SpendTermsChanged.self) {
                _ = try await server.stores.consumption.consume(
                    orgID: orgID, at: try Instant(rfc3339: "2026-06-05T23:59:59Z"), SpendRequest(credits: Credits(15), usage: UsageDetails()),
                    terms: stale.spendTerms, claim: nil, render: { _ in (201, []) })
            }
            let overage = try await server.invoices(org).filter { $0.text("kind") == "overage" }
            #expect(overage.map { "\($0.text("status") ?? "") \($0["total"]?.text("amount") ?? "")" } == ["open 0.20"])
            #expect(try await server.invoices(org).count == invoicesBefore)
            #expect(try await server.ledgerCount(org) == entriesBefore)

            let fresh = try await server.spend(org, "15")                 // June: 10 allocated, 5 overage
            #expect(fresh.status == 201)
            #expect(fresh["overage_credits"] == "5")
            #expect(try await server.overageDraftTotal(org) == "0.50")
            #expect(try await server.verify() == [])
        }
    }

    @Test func protectionOnRefusesAndRecordsNothingAndTheCapRefusesBeyondIt() async throws {
        try await TestServer.run { server in
            try await server.createPlan("p", price: "10.00", credits: "5", overage: #"{"allowed": true, "rate_per_credit": "0.10"}"#)
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "p")
            let before = try await server.ledgerCount(org)
            let refused = try await server.spend(org, "6")
            #expect(refused.status == 402)
            #expect(refused["code"] == "insufficient_credits")
            #expect(try await server.ledgerCount(org) == before)
            #expect(try await server.overageDraftTotal(org) == nil)

            _ = try await server.settings(org, #"{"overage_protection": false, "overage_cap_credits": "3"}"#)
            #expect(try await server.spend(org, "7").status == 201)       // 2 overage
            let capped = try await server.spend(org, "1.0001")            // 2 + 1.0001 > 3
            #expect(capped.status == 402)
            #expect(capped["code"] == "overage_cap_reached")
            #expect(capped["overage_used"] == "2")
            #expect(try await server.spend(org, "1").status == 201)       // exactly the cap
            #expect(try await server.overageDraftTotal(org) == "0.30")
            // A plan without overage stays a hard limit whatever the setting.
            try await server.createPlan("hard", price: "10.00", credits: "5")
            let other = try await server.createOrg(name: "Other")
            try await server.subscribe(other, plan: "hard")
            _ = try await server.settings(other, #"{"overage_protection": false}"#)
            #expect(try await server.spend(other, "6").status == 402)
        }
    }
}

@Suite struct PurchaseTests {
    /// Seed 002: 100/$9.90, 200/$14.90, 500/$39.90, 1,000/$69.90, each expiring 30 days after
    /// purchase. Buying the 200 pack adds 200 credits and a $14.90 invoice; 31 days later what
    /// is left of it expires.
    @Test func theSeedPacks() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let clock = try await server.createClock("2026-08-01T10:00:00Z")
            let org = try await server.createOrg(extra: #", "test_clock_id": "\#(clock)""#)
            let admin = try await server.createKey(org: org, role: "admin")
            let bought = try await server.request(.POST, "/v1/orgs/\(org)/purchases", key: admin, json: #"{"pack": "standard"}"#,
                                                  headers: [("Idempotency-Key", "buy-1")])
            #expect(bought.status == 201)
            #expect(bought["credits"] == "200")
            #expect(bought["expires_at"] == "2026-08-31T10:00:00Z")
            #expect(try bought.json["invoice"]?["total"]?.text("amount") == "14.90")
            #expect(try bought.json["invoice"]?.text("kind") == "purchase")
            #expect(try await server.available(org) == Credits(200))
            let replay = try await server.request(.POST, "/v1/orgs/\(org)/purchases", key: admin, json: #"{"pack": "standard"}"#,
                                                  headers: [("Idempotency-Key", "buy-1")])
            #expect(replay.body == bought.body)
            #expect(try await server.available(org) == Credits(200))
            let member = try await server.createKey(org: org, role: "member")
            _ = try await server.usage(org, key: member, #"{"operation": "smart_crop", "quantity": 10}"#)
            try await server.advance(clock, to: "2026-09-01T10:00:00Z")
            #expect(try await server.available(org) == .zero)
            let expiry = try await server.list("/v1/orgs/\(org)/ledger?type=expiry")
            #expect(expiry.map { $0.text("credits") } == ["-187"])
            #expect(expiry.map { $0.text("created_at") } == ["2026-08-31T10:00:00Z"])
            for (pack, price) in [("basic", "9.90"), ("premium", "39.90"), ("enterprise", "69.90")] {
                let response = try await server.purchase(org, #"{"pack": "\#(pack)"}"#)
                #expect(try response.json["invoice"]?["total"]?.text("amount") == price)
            }
            #expect(try await server.verify() == [])
        }
    }

    @Test func payAsYouGoSellsCreditsAboveTheMinimumThatNeverExpire() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            let none = try await server.purchase(org, #"{"credits": "1500"}"#)
            #expect(none.status == 422)
            #expect(none["code"] == "purchase_unavailable")
            try await server.subscribe(org, plan: "pay_as_you_go")
            let below = try await server.purchase(org, #"{"credits": "999"}"#)
            #expect(below.status == 422)
            #expect(below["code"] == "below_minimum_purchase")
            #expect(below["field"] == "credits")
            let bought = try await server.purchase(org, #"{"credits": "1500"}"#)
            #expect(bought.status == 201)
            #expect(try bought.json["expires_at"] == .null)
            #expect(try bought.json["invoice"]?["total"]?.text("amount") == "75.00")
            #expect(try await server.available(org) == Credits(1500))
            #expect(try await server.purchase(org, #"{"pack": "nope"}"#).status == 422)
            #expect(try await server.purchase(org, #"{"pack": "basic", "credits": "1"}"#).status == 422)
            let member = try await server.createKey(org: org, role: "member")
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/purchases", key: member, json: #"{"pack": "basic"}"#,
                                             headers: [("Idempotency-Key", "m")]).status == 403)
            #expect(try await server.invoices(org).count == 1)
        }
    }

    @Test func concurrentInvoicingNumbersWithoutGaps() async throws {
        try await TestServer.run(databaseConnections: 16) { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<30 {
                    group.addTask {
                        // Some purchases refer to a pack that does not exist: they fail and must not use a number.
                        try await server.purchase(org, index % 5 == 0 ? #"{"pack": "missing"}"# : #"{"pack": "basic"}"#).status
                    }
                }
                for try await _ in group {}
            }
            let numbers = try await server.invoices(org).compactMap { $0.text("number").flatMap(Int.init) }.sorted()
            #expect(numbers == Array(1...24))
        }
    }

    @Test func invoicesArePaidOnceVoidedUnlessPaidAndNeverEdited() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            let first = try #require(try await server.purchase(org, #"{"pack": "basic"}"#).json["invoice"]?.text("id"))
            let second = try #require(try await server.purchase(org, #"{"pack": "basic"}"#).json["invoice"]?.text("id"))
            let path = "/v1/orgs/\(org)/invoices/\(first)"
            let paid = try await server.request(.POST, path + "/pay", key: server.platformKey, json: #"{"reference": "ch_123"}"#)
            #expect(paid["status"] == "paid")
            #expect(paid["payment_reference"] == "ch_123")
            #expect(try await server.request(.POST, path + "/pay", key: server.platformKey, json: #"{"reference": "ch_123"}"#).status == 200)
            #expect(try await server.request(.POST, path + "/pay", key: server.platformKey, json: #"{"reference": "ch_999"}"#).status == 409)
            #expect(try await server.request(.POST, path + "/void", key: server.platformKey).status == 409)
            let voided = try await server.request(.POST, "/v1/orgs/\(org)/invoices/\(second)/void", key: server.platformKey)
            #expect(voided["status"] == "void")
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/invoices/\(second)/pay", key: server.platformKey, json: #"{"reference": "x"}"#).status == 409)
            let admin = try await server.createKey(org: org, role: "admin")
            #expect(try await server.request(.POST, path + "/void", key: admin).status == 403)
            // The database itself refuses to edit an issued invoice.
            await #expect(throws: (any Error).self) {
                try await server.pool.query("UPDATE invoices SET total = 1 WHERE status <> 'draft'", logger: testLogger)
            }
            await #expect(throws: (any Error).self) {
                try await server.pool.query("UPDATE invoice_lines SET amount = 1", logger: testLogger)
            }
            #expect(try await server.verify() == [])
        }
    }

    @Test func verifyRecomputesInvoiceTotals() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            _ = try await server.purchase(org, #"{"pack": "basic"}"#)
            try await server.pool.query("ALTER TABLE invoices DISABLE TRIGGER invoices_immutable_when_open", logger: testLogger)
            try await server.pool.query("UPDATE invoices SET total = total + 0.01", logger: testLogger)
            let findings = try await server.verify()
            #expect(findings.count == 1)
            #expect(findings.first?.contains("lines sum to 9.9") == true, "\(findings)")
        }
    }
}

@Suite struct AutoTopUpTests {
    @Test func twentyConcurrentSpendsCrossingTheThresholdBuyOnePack() async throws {
        try await TestServer.run(databaseConnections: 24) { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.grant(org, "130")
            let set = try await server.settings(org, #"{"auto_topup": {"enabled": true, "threshold_credits": "100", "pack": "basic"}}"#)
            #expect(set.status == 200)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await server.spend(org, "3").status }
                }
                var all: [Int] = []
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses.allSatisfy { $0 == 201 })
            let purchases = try await server.list("/v1/orgs/\(org)/ledger?type=purchase")
            #expect(purchases.count == 1)
            #expect(try await server.invoices(org).map { $0["total"]?.text("amount") } == ["9.90"])
            #expect(try await server.available(org) == Credits(130 - 60 + 100))
            // Within the hour nothing more is bought, however low the balance goes.
            _ = try await server.spend(org, "100")
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=purchase").count == 1)
            let settings = try await server.request(.GET, "/v1/orgs/\(org)/settings", key: server.platformKey)
            #expect(try settings.json["auto_topup"]?.text("last_status") == "succeeded")
            #expect(try await server.verify() == [])
        }
    }

    @Test func aFailedTopUpIsRecordedAndNotRetriedWithinTheHour() async throws {
        let clock = ManualClock("2026-03-01T00:00:00Z")
        try await TestServer.run(clock: clock) { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.grant(org, "50")
            _ = try await server.settings(org, #"{"auto_topup": {"enabled": true, "threshold_credits": "40", "pack": "basic"}}"#)
            // The pack disappears from under the setting: the top-up fails, the spend does not.
            try await server.pool.query("ALTER TABLE orgs DROP CONSTRAINT orgs_auto_topup_pack_fkey", logger: testLogger)
            try await server.pool.query("UPDATE orgs SET auto_topup_pack = 'gone'", logger: testLogger)
            #expect(try await server.spend(org, "20").status == 201)
            #expect(try await server.spend(org, "1").status == 201)
            let attempts = try await server.pool.query("SELECT status, error FROM auto_topups", logger: testLogger).collect()
            #expect(attempts.count == 1)
            #expect(try attempts[0].decode((String, String?).self).0 == "failed")
            let settings = try await server.request(.GET, "/v1/orgs/\(org)/settings", key: server.platformKey)
            #expect(try settings.json["auto_topup"]?.text("last_status") == "failed")
            clock.advance(seconds: 3601)
            #expect(try await server.spend(org, "1").status == 201)
            #expect(try await server.pool.query("SELECT 1 FROM auto_topups", logger: testLogger).collect().count == 2)
        }
    }

    @Test func settingsAreValidated() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            #expect(try await server.settings(org, #"{"auto_topup": {"enabled": true}}"#).status == 422)
            #expect(try await server.settings(org, #"{"auto_topup": {"enabled": true, "threshold_credits": "5", "pack": "nope"}}"#)["field"] == "auto_topup.pack")
            #expect(try await server.settings(org, #"{"overage_cap_credits": "-1"}"#).status == 422)
            #expect(try await server.settings(org, #"{"alert_thresholds_percent": [80, 80]}"#).status == 422)
            let capped = try await server.settings(org, #"{"overage_cap_credits": "500", "alert_thresholds_percent": [100, 50]}"#)
            #expect(capped["overage_cap_credits"] == "500")
            #expect(try capped.json["alert_thresholds_percent"] == .array([.number("50"), .number("100")]))
            let cleared = try await server.settings(org, #"{"overage_cap_credits": null}"#)
            #expect(try cleared.json["overage_cap_credits"] == .null)
            #expect(cleared["overage_protection"] == "true")
            let member = try await server.createKey(org: org, role: "member")
            #expect(try await server.request(.PATCH, "/v1/orgs/\(org)/settings", key: member, json: "{}").status == 403)
        }
    }
}
