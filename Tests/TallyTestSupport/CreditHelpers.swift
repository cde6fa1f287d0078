import TallyJSON
import Foundation
import NIOHTTP1
import TallyCore
import TallyHTTP

extension TestServer {
    /// Grants credits with the platform key and returns the new bucket's id.
    @discardableResult
    public func grant(_ org: String, _ credits: String, source: String = "free_credits", priority: Int? = nil,
                      expiresAt: String? = nil, key: String = UUID().uuidString) async throws -> String {
        var json = #"{"credits": "\#(credits)", "source": "\#(source)""#
        if let priority { json += #", "priority": \#(priority)"# }
        if let expiresAt { json += #", "expires_at": "\#(expiresAt)""# }
        json += "}"
        let response = try await request(.POST, "/v1/orgs/\(org)/grants", key: platformKey, json: json, headers: [("Idempotency-Key", key)])
        guard response.status == 201, let bucket = response["bucket_id"] else {
            throw TestSetupError("grant failed: \(response.status) \(response.text)")
        }
        return bucket
    }

    /// Spends raw credits with the platform key.
    public func spend(_ org: String, _ credits: String, key: String = UUID().uuidString, extra: String = "") async throws -> TestResponse {
        try await request(.POST, "/v1/orgs/\(org)/usage", key: platformKey, json: #"{"credits": "\#(credits)"\#(extra)}"#,
                          headers: [("Idempotency-Key", key)])
    }

    /// The organisation's available credits.
    public func available(_ org: String) async throws -> Credits {
        let response = try await request(.GET, "/v1/orgs/\(org)/balance", key: platformKey)
        guard response.status == 200, let text = response["available"] else {
            throw TestSetupError("balance failed: \(response.status) \(response.text)")
        }
        return try Credits(parsing: text)
    }

    /// How many ledger entries the organisation has (all types).
    public func ledgerCount(_ org: String) async throws -> Int {
        let rows = try await pool.query("SELECT count(*) FROM ledger_entries WHERE org_id = \(UUID(uuidString: org)!)", logger: testLogger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }

    /// `tally verify`'s findings; empty when the ledger explains every balance.
    public func verify() async throws -> [String] {
        try await stores.verifier.verify().map(\.description)
    }

    /// The array under `data` of a list response.
    public func list(_ path: String, key: String? = nil) async throws -> [JSONValue] {
        let response = try await request(.GET, path, key: key ?? platformKey)
        guard response.status == 200, case .array(let items)? = try response.json["data"] else {
            throw TestSetupError("list failed: \(response.status) \(response.text)")
        }
        return items
    }
}

extension JSONValue {
    /// A member as text (strings and numbers), for terse assertions.
    public func text(_ key: String) -> String? {
        switch self[key] {
        case .string(let text)?: text
        case .number(let literal)?: literal
        default: nil
        }
    }
}
