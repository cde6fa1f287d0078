import Foundation
import NIOHTTP1
import TallyCore
import TallyJSON

extension TestServer {
    /// Creates a test clock and returns its id.
    public func createClock(_ frozenTime: String) async throws -> String {
        let response = try await request(.POST, "/v1/test-clocks", key: platformKey, json: #"{"frozen_time": "\#(frozenTime)"}"#)
        guard response.status == 201, let id = response["id"] else { throw TestSetupError("clock: \(response.status) \(response.text)") }
        return id
    }

    @discardableResult
    public func advance(_ clock: String, to time: String) async throws -> TestResponse {
        let response = try await request(.POST, "/v1/test-clocks/\(clock)/advance", key: platformKey, json: #"{"to": "\#(time)"}"#)
        guard response.status == 200 else { throw TestSetupError("advance: \(response.status) \(response.text)") }
        return response
    }

    /// Creates a plan from JSON members (code, price, credits...).
    public func createPlan(_ code: String, price: String, credits: String, expiry: String = #"{"policy": "period_end"}"#,
                           rollover: String = #"{"policy": "none"}"#, overage: String = #"{"allowed": false}"#,
                           interval: String = "month", extra: String = "") async throws {
        let json = #"""
            {"code": "\#(code)", "name": "\#(code)", "price": {"amount": "\#(price)", "currency": "USD"}, "interval": "\#(interval)",
             "credits_per_period": "\#(credits)", "credit_expiry": \#(expiry), "rollover": \#(rollover), "overage": \#(overage)\#(extra)}
            """#
        let response = try await request(.POST, "/v1/plans", key: platformKey, json: json)
        guard response.status == 201 else { throw TestSetupError("plan: \(response.status) \(response.text)") }
    }

    @discardableResult
    public func subscribe(_ org: String, plan: String, startAt: String? = nil) async throws -> TestResponse {
        let start = startAt.map { #", "start_at": "\#($0)""# } ?? ""
        let response = try await request(.POST, "/v1/orgs/\(org)/subscription", key: platformKey, json: #"{"plan": "\#(plan)"\#(start)}"#)
        guard response.status == 201 else { throw TestSetupError("subscribe: \(response.status) \(response.text)") }
        return response
    }

    /// The organisation's invoices, oldest first.
    public func invoices(_ org: String) async throws -> [JSONValue] {
        try await list("/v1/orgs/\(org)/invoices?limit=500").reversed()
    }

    /// The organisation's ledger, oldest first, as "type credits created_at" lines: what two
    /// histories are compared by (ids and insertion order aside).
    public func ledgerLines(_ org: String) async throws -> [String] {
        let rows = try await pool.query("""
            SELECT type, credits::text, overage_credits::text, created_at FROM ledger_entries WHERE org_id = \(UUID(uuidString: org)!)
            ORDER BY created_at, type, credits
            """, logger: testLogger).collect()
        return try rows.map { row in
            let (type, credits, overage, createdAt) = try row.decode((String, String, String, Instant).self)
            return "\(createdAt.rfc3339) \(type) \(credits) \(overage)"
        }
    }
}
