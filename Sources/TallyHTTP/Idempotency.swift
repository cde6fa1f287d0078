import TallyJSON
import HTTPTypes
import Hummingbird
import NIOCore
import TallyCore
import TallyStore

/// A response that writes its JSON value itself, in the shape `TallyJSONEncoder` gives its
/// `Encodable` form.
protocol DirectJSONEncodable: Encodable, SendableMetatype {
    var json: JSONValue { get }
}

/// `Idempotency-Key` handling shared by every credit-moving POST.
enum Idempotency {
    static let header = HTTPField.Name("Idempotency-Key")!
    static let replayedHeader = HTTPField.Name("Idempotent-Replayed")!
    static let keyLengthMaximum = 255

    /// The claim for this request, or nil when no key was sent and none is required.
    static func claim(_ request: Request, body: JSONValue, required: Bool) throws(TallyError) -> IdempotencyClaim? {
        try claim(key: request.headers[header], method: request.method.rawValue, path: request.uri.path, body: body, required: required)
    }

    /// The claim of a key sent with a request of this method, path and body (an item of a usage
    /// batch is claimed as the `POST .../usage` it stands for, so either replays the other).
    static func claim(key: String?, method: String, path: String, body: JSONValue, required: Bool) throws(TallyError) -> IdempotencyClaim? {
        guard let key else {
            guard !required else {
                throw TallyError(.malformedRequest, code: "idempotency_key_required",
                                 detail: "This request moves credits or money: send an Idempotency-Key header.")
            }
            return nil
        }
        guard !key.isEmpty, key.utf8.count <= keyLengthMaximum, key.unicodeScalars.allSatisfy({ $0.value >= 0x21 && $0.value <= 0x7E }) else {
            throw TallyError(.malformedRequest, code: "invalid_idempotency_key",
                             detail: "Idempotency-Key must be 1 to \(keyLengthMaximum) visible ASCII characters.")
        }
        return IdempotencyClaim.make(key: key, method: method, path: path, canonicalBody: body.serialized(sortedKeys: true))
    }

    /// Renders a use case's result as the response that is sent and kept for replays.
    static func renderer<Value: Sendable, Body: Encodable & SendableMetatype>(status: Int = 201, _ transform: @escaping @Sendable (Value) -> Body) -> ResponseRenderer<Value> {
        { result in
            switch result {
            case .success(let value): (status, try TallyJSONEncoder.encode(transform(value)))
            case .failure(let error): problem(error)
            }
        }
    }

    /// As above, for an answer that builds its JSON by hand (the hot path's).
    static func renderer<Value: Sendable, Body: DirectJSONEncodable>(status: Int = 201, _ transform: @escaping @Sendable (Value) -> Body) -> ResponseRenderer<Value> {
        { result in
            switch result {
            case .success(let value): (status, transform(value).json.serialized())
            case .failure(let error): problem(error)
            }
        }
    }

    /// A refused use case's stored answer: its problem+json.
    private static func problem(_ error: TallyError) -> (Int, [UInt8]) {
        let status = ProblemMiddleware.status(for: error.kind)
        return (Int(status.code), ProblemMiddleware.body(status: status, code: error.code, detail: error.detail, field: error.field, extras: error.extras))
    }

    /// The HTTP response for a stored (or replayed) response.
    static func response(_ stored: StoredResponse) -> Response {
        var headers: HTTPFields = [.contentType: (200..<300).contains(stored.status) ? "application/json" : "application/problem+json"]
        if stored.replayed { headers[replayedHeader] = "true" }
        return Response(status: .init(code: stored.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: stored.body)))
    }
}
