import Foundation
import TallyCatalog
import TallyCore
import TallyHTTP
import TallyJSON
import TallyTestSupport
import Testing

extension TestServer {
    /// Loads catalog/demo.json, as `tally serve --load-catalog` does.
    func loadDemoCatalog() async throws -> CatalogImport.Report {
        let bytes = try Array(Data(contentsOf: repositoryRoot.appendingPathComponent("catalog/demo.json")))
        return try await CatalogImport.load(bytes, into: stores.catalog, at: clock.now())
    }

    func usage(_ org: String, key: String, _ json: String) async throws -> TestResponse {
        try await request(.POST, "/v1/orgs/\(org)/usage", key: key, json: json, headers: [("Idempotency-Key", UUID().uuidString)])
    }
}

@Suite struct CatalogTests {
    @Test func theSeedArithmeticEndToEnd() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.grant(org, "500")
            let member = try await server.createKey(org: org, role: "member")

            let crop = try await server.request(.POST, "/v1/orgs/\(org)/quote", key: member, json: #"{"operation": "smart_crop", "quantity": 100}"#)
            #expect(crop.status == 200)
            #expect(crop["credits"] == "130")
            #expect(crop["available"] == "500")
            #expect(crop["sufficient"] == "true")
            #expect(crop["shortfall"] == "0")
            #expect(crop["max_quantity"] == "384")
            let removal = try await server.request(.POST, "/v1/orgs/\(org)/quote", key: member, json: #"{"operation": "background_removal", "quantity": 1}"#)
            #expect(removal["max_quantity"] == "178")

            let crops = try await server.usage(org, key: member, #"{"operation": "smart_crop", "quantity": 100}"#)
            #expect(crops.status == 201)
            #expect(crops["credits"] == "130")
            #expect(crops["available_after"] == "370")
            let removals = try await server.usage(org, key: member, #"{"operation": "background_removal", "quantity": 83}"#)
            #expect(removals["credits"] == "232.4")
            #expect(removals["available_after"] == "137.6")
            #expect(try await server.available(org) == (try Credits(parsing: "137.6")))

            let entries = try await server.list("/v1/orgs/\(org)/ledger?type=usage")
            #expect(entries.map { $0.text("operation") } == ["background_removal", "smart_crop"])
            #expect(entries.map { $0.text("quantity") } == ["83", "100"])
            let tooMany = try await server.request(.POST, "/v1/orgs/\(org)/quote", key: member, json: #"{"operation": "background_removal", "quantity": 50}"#)
            #expect(tooMany["sufficient"] == "false")
            #expect(tooMany["shortfall"] == "2.4")
            #expect(tooMany["max_quantity"] == "49")
        }
    }

    @Test func quotesWriteNothing() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let before = try await server.ledgerCount(org)
            for _ in 0..<3 {
                _ = try await server.request(.POST, "/v1/orgs/\(org)/quote", key: server.platformKey, json: #"{"operation": "lifestyle_crop", "quantity": 2}"#)
            }
            #expect(try await server.ledgerCount(org) == before)
            #expect(try await server.count("idempotency_keys") == 1)
        }
    }

    /// Operations priced once are kept, but a change to them counts from the next request on,
    /// whoever made it: this server's API, or another replica or `tally catalog load` writing
    /// the table behind its back (the catalog's version, sql/0016).
    @Test func aChangedOperationPricesTheNextRequestWhoeverChangedIt() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.grant(org, "500")
            func quote(_ operation: String) async throws -> String? {
                try await server.request(.POST, "/v1/orgs/\(org)/quote", key: server.platformKey,
                                         json: #"{"operation": "\#(operation)", "quantity": 10}"#)["credits"]
            }
            #expect(try await quote("smart_crop") == "13")
            #expect(try await quote("smart_crop") == "13")
            try await server.pool.query("UPDATE operations SET credits = 2.5 WHERE code = 'smart_crop'", logger: testLogger)
            #expect(try await quote("smart_crop") == "25")
            let replaced = try await server.request(.PUT, "/v1/operations/smart_crop", key: server.platformKey,
                                                    json: #"{"code": "smart_crop", "name": "Smart crop", "credits": "0.7"}"#)
            #expect(replaced.status == 200, "\(replaced.text)")
            #expect(try await quote("smart_crop") == "7")
            try await server.pool.query("DELETE FROM operations WHERE code = 'smart_crop'", logger: testLogger)
            let gone = try await server.request(.POST, "/v1/orgs/\(org)/quote", key: server.platformKey,
                                                json: #"{"operation": "smart_crop", "quantity": 10}"#)
            #expect(gone.status == 404)
        }
    }

    @Test func pricingRulesOverHTTP() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            let key = server.platformKey
            func quote(_ json: String) async throws -> TestResponse {
                try await server.request(.POST, "/v1/orgs/\(org)/quote", key: key, json: json)
            }
            #expect(try await quote(#"{"operation": "image_generation", "params": {"resolution": "1024x1024", "model": "advanced", "transparent_background": true}}"#)["credits"] == "7")
            #expect(try await quote(#"{"operation": "image_generation", "quantity": 4, "params": {"resolution": "2048x2048"}}"#)["credits"] == "40")
            #expect(try await quote(#"{"operation": "full_pipeline", "quantity": 3}"#)["credits"] == "6")
            #expect(try await quote(#"{"operation": "sample_preview", "quantity": 5}"#)["credits"] == "0")
            #expect(try await quote(#"{"operation": "sample_preview", "quantity": 8}"#)["credits"] == "3")

            let unknown = try await quote(#"{"operation": "teleport"}"#)
            #expect(unknown.status == 404)
            #expect(unknown["code"] == "unknown_operation")
            let badValue = try await quote(#"{"operation": "image_generation", "params": {"resolution": "4096x4096"}}"#)
            #expect(badValue.status == 422)
            #expect(badValue["field"] == "params.resolution")
            let badParam = try await quote(#"{"operation": "smart_crop", "params": {"size": "big"}}"#)
            #expect(badParam.status == 422)
            #expect(badParam["field"] == "params.size")
            for quantity in ["0", "-1", "10001", "1.5", #""2""#] {
                let response = try await quote(#"{"operation": "smart_crop", "quantity": \#(quantity)}"#)
                #expect(response.status == 422)
                #expect(response["field"] == "quantity")
            }
        }
    }

    @Test func freePreviewsAreRecordedAndCostNothing() async throws {
        try await TestServer.run { server in
            _ = try await server.loadDemoCatalog()
            let org = try await server.createOrg()
            let member = try await server.createKey(org: org, role: "member")
            let free = try await server.usage(org, key: member, #"{"operation": "sample_preview", "quantity": 5}"#)
            #expect(free.status == 201)
            #expect(free["credits"] == "0")
            let charged = try await server.usage(org, key: member, #"{"operation": "sample_preview", "quantity": 6}"#)
            #expect(charged.status == 402)
            #expect(charged["shortfall"] == "1")
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=usage").count == 1)
            #expect(try await server.verify() == [])
        }
    }

    @Test func plansOperationsAndPacksAreCreatedReadAndGuarded() async throws {
        try await TestServer.run { server in
            let key = server.platformKey
            let plan = #"""
                {"code": "team", "name": "Team", "price": {"amount": "49.00", "currency": "EUR"}, "interval": "year",
                 "credits_per_period": "12000", "credit_expiry": {"policy": "days", "days": 400},
                 "rollover": {"policy": "capped", "max_credits": "1000"}, "overage": {"allowed": true, "rate_per_credit": "0.012345"},
                 "operation_rates": {"smart_crop": 1.1}}
                """#
            let created = try await server.request(.POST, "/v1/plans", key: key, json: plan)
            #expect(created.status == 201)
            let json = try created.json
            #expect(json["price"] == .object([("amount", .string("49.00")), ("currency", .string("EUR"))]))
            #expect(json["rollover"]?.text("max_credits") == "1000")
            #expect(json["overage"]?.text("rate_per_credit") == "0.012345")
            #expect(json["operation_rates"]?.text("smart_crop") == "1.1")
            #expect(json["cost_per_credit"]?.text("amount") == "0.0041")
            #expect(try await server.request(.POST, "/v1/plans", key: key, json: plan).status == 409)
            #expect(try await server.request(.GET, "/v1/plans/team", key: key).status == 200)
            #expect(try await server.request(.GET, "/v1/plans/nope", key: key).status == 404)

            for (body, field) in [
                (#"{"code": "x", "name": "X", "price": {"amount": "1.999", "currency": "USD"}, "interval": "month", "credits_per_period": "1"}"#, "price.amount"),
                (#"{"code": "x", "name": "X", "price": {"amount": "1", "currency": "XXX"}, "interval": "month", "credits_per_period": "1"}"#, "price.currency"),
                (#"{"code": "x", "name": "X", "price": {"amount": "1", "currency": "USD"}, "interval": "week", "credits_per_period": "1"}"#, "interval"),
                (#"{"code": "x", "name": "X", "price": {"amount": "1", "currency": "USD"}, "interval": "month", "credits_per_period": "1", "rollover": {"policy": "capped"}}"#, "rollover.max_credits"),
                (#"{"code": "x", "name": "X", "price": {"amount": "1", "currency": "USD"}, "interval": "month", "credits_per_period": "1", "overage": {"allowed": true}}"#, "overage.rate_per_credit"),
                (#"{"code": "Bad Code", "name": "X", "price": {"amount": "1", "currency": "USD"}, "interval": "month", "credits_per_period": "1"}"#, "code"),
                (#"{"code": "x", "name": "X", "price": {"amount": "-1", "currency": "USD"}, "interval": "month", "credits_per_period": "1"}"#, "price.amount"),
            ] {
                let response = try await server.request(.POST, "/v1/plans", key: key, json: body)
                #expect(response.status == 422, "\(body)")
                #expect(response["field"] == field, "\(body)")
            }
            #expect(try await server.count("plans") == 1)

            let op = try await server.request(.POST, "/v1/operations", key: key, json: #"{"code": "crop", "name": "Crop", "credits": "1.3"}"#)
            #expect(op.status == 201)
            let pipeline = try await server.request(.POST, "/v1/operations", key: key, json: #"{"code": "both", "name": "Both", "components": ["crop", "missing"]}"#)
            #expect(pipeline.status == 422)
            #expect(pipeline["field"] == "components[1]")
            let updated = try await server.request(.PUT, "/v1/operations/crop", key: key, json: #"{"code": "crop", "name": "Crop", "credits": "1.4"}"#)
            #expect(updated["credits"] == "1.4")
            #expect(try await server.request(.GET, "/v1/operations/crop", key: key)["credits"] == "1.4")

            let pack = try await server.request(.POST, "/v1/credit-packs", key: key, json: #"{"code": "standard", "credits": "200", "price": {"amount": "14.90", "currency": "USD"}, "expires_after_days": 30}"#)
            #expect(pack.status == 201)
            #expect(pack["expires_after_days"] == "30")

            let org = try await server.createOrg()
            let admin = try await server.createKey(org: org, role: "admin")
            #expect(try await server.request(.POST, "/v1/operations", key: admin, json: #"{"code": "z", "name": "Z", "credits": "1"}"#).status == 403)
            #expect(try await server.list("/v1/plans", key: admin).count == 1)
            #expect(try await server.list("/v1/credit-packs", key: admin).count == 1)
        }
    }

    @Test func theDemoCatalogLoadsOnAFreshDatabaseOnce() async throws {
        try await TestServer.run { server in
            let first = try await server.loadDemoCatalog()
            #expect(first.skipped.isEmpty)
            #expect(first.created.count == 7 + 12 + 4)
            let second = try await server.loadDemoCatalog()
            #expect(second.created.isEmpty)
            #expect(second.skipped.count == first.created.count)
            let studio = try await server.request(.GET, "/v1/plans/studio_250", key: server.platformKey)
            #expect(try studio.json["cost_per_credit"]?.text("amount") == "0.0547")
            let packs = try await server.list("/v1/credit-packs")
            #expect(packs.map { $0["price"]?.text("amount") } == ["9.90", "69.90", "39.90", "14.90"])
            let payg = try await server.request(.GET, "/v1/plans/pay_as_you_go", key: server.platformKey)
            #expect(payg["min_purchase_credits"] == "1000")
        }
    }
}
