import Foundation
import Hummingbird
import Synchronization
import TallyCore
import TallyJSON
import TallyStore

/// How a portal form runs a use case: exactly as the API does (the same store function, the
/// same stored answer under an idempotency key), so a form sent twice (a double click, a
/// reload) does the work once. The key is a random value the confirmation page put in the form.
enum PortalAction {
    /// The value a use case produced, when it ran now (a replay renders nothing new).
    final class Captured<Value: Sendable>: Sendable {
        private let storage = Mutex<Value?>(nil)
        func set(_ value: Value) { storage.withLock { $0 = value } }
        var value: Value? { storage.withLock { $0 } }
    }

    /// Runs `work` with a renderer that stores what the API would answer and keeps the value.
    static func run<Value: Sendable, Body: Encodable & SendableMetatype>(
        status: Int = 200, _ transform: @escaping @Sendable (Value) -> Body,
        _ work: (@escaping ResponseRenderer<Value>) async throws -> StoredResponse
    ) async throws -> (stored: StoredResponse, value: Value?) {
        let captured = Captured<Value>()
        let render = Idempotency.renderer(status: status, transform)
        let stored = try await work { result in
            if case .success(let value) = result { captured.set(value) }
            return try render(result)
        }
        return (stored, captured.value)
    }

    /// The claim of a portal form: its one-time key, this path, and the fields that matter.
    static func claim(_ request: Request, form: FormFields, fields: [String]) throws(TallyError) -> IdempotencyClaim? {
        guard let key = form["idempotency_key"], UUID(uuidString: key) != nil else {
            throw TallyError.validation("This form is incomplete; open the page again and retry.", field: "idempotency_key")
        }
        let body = JSONValue.object(fields.map { ($0, form[$0].map(JSONValue.string) ?? .null) })
        return try Idempotency.claim(key: "portal-\(key)", method: "POST", path: request.uri.path, body: body, required: true)
    }

    /// The hidden fields of a confirmation form: the CSRF token and a fresh idempotency key.
    static func hiddenFields(_ page: PortalPage, _ values: [(String, String)]) -> HTML {
        let fields = values.map { name, value -> HTML in "<input type=\"hidden\" name=\"\(name)\" value=\"\(value)\">" }
        return "\(page.csrfField)<input type=\"hidden\" name=\"idempotency_key\" value=\"\(UUID().uuidString)\">\(fields)"
    }

    /// The `detail` of a stored problem answer, for the page to show.
    static func problemDetail(_ stored: StoredResponse) -> String {
        if case .object(let members)? = try? JSONParser.parse(stored.body),
           let detail = members.first(where: { $0.key == "detail" })?.value, case .string(let text) = detail {
            return text
        }
        return "The request was refused."
    }
}
