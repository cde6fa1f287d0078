import TallyJSON
import Hummingbird
import Logging
import NIOCore
import TallyCore
import TallyStore

/// Per-request state: who is calling (set by `AuthMiddleware`).
public struct TallyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var caller: AuthenticatedKey?
    /// The credits portal session of a portal page (its caller is the session's organisation and role).
    public var portal: PortalSession?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.caller = nil
        self.portal = nil
    }

    /// Request bodies are small JSON documents; anything larger is refused with 413.
    public static let bodySizeLimit = 256 * 1024
    public var maxUploadSize: Int { Self.bodySizeLimit }
}

extension Request {
    /// Reads the whole body (at most `bodySizeLimit` bytes) and parses it as JSON.
    /// 413 when too large, 415 for a non-JSON content type, 400 when it is not JSON.
    mutating func jsonBody(context: TallyRequestContext) async throws -> JSONValue {
        if let contentType = headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            throw TallyError(.unsupportedMediaType, code: "unsupported_media_type", detail: "Send JSON with Content-Type: application/json.")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await collectBody(upTo: TallyRequestContext.bodySizeLimit)
        } catch is NIOTooManyBytesError {
            throw TallyError(.payloadTooLarge, code: "payload_too_large", detail: "The body is larger than \(TallyRequestContext.bodySizeLimit) bytes.")
        }
        let bytes = Array(buffer.readableBytesView)
        guard !bytes.isEmpty else {
            throw TallyError(.malformedRequest, code: "malformed_json", detail: "The request needs a JSON body.")
        }
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw TallyError(.malformedRequest, code: "malformed_json", detail: "The body is not valid JSON: \(error.reason) at byte \(error.offset).")
        }
        // Every body Tally takes is a JSON object; an empty struct's decoder would accept anything.
        guard case .object = document else {
            throw TallyError.validation("The body must be a JSON object.", field: "body")
        }
        // Checked here, once for every body: text the database cannot store is the client's 422.
        if let field = document.firstUnstorableText() {
            throw TallyError.unstorableText(field: field)
        }
        return document
    }

    /// Reads and strictly decodes the body as `T`.
    mutating func decode<T: Decodable>(_ type: T.Type, context: TallyRequestContext) async throws -> T {
        try StrictJSONDecoder.decode(T.self, from: try await jsonBody(context: context))
    }

    /// The JSON body, or `{}` when the request has none (for endpoints whose fields are all optional).
    mutating func decodeOptionalJSON(context: TallyRequestContext) async throws -> JSONValue {
        let buffer = try await collectBody(upTo: TallyRequestContext.bodySizeLimit)
        if buffer.readableBytes == 0 { return .object([]) }
        return try await jsonBody(context: context)
    }
}

extension Response {
    static let jsonContentType = "application/json"

    /// A JSON response from any encodable value.
    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let bytes = try TallyJSONEncoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: jsonContentType],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}

/// Query-string helpers with the same error rules as bodies.
extension Request {
    func queryInt(_ name: String) throws(TallyError) -> Int? {
        guard let text = uri.queryParameters.get(name) else { return nil }
        guard let value = Int(text) else { throw TallyError.validation("\(name) must be a whole number.", field: name) }
        return value
    }

    func queryString(_ name: String) -> String? {
        uri.queryParameters.get(name)
    }

    func queryInstant(_ name: String) throws(TallyError) -> Instant? {
        guard let text = uri.queryParameters.get(name) else { return nil }
        do {
            return try Instant(rfc3339: text)
        } catch {
            throw TallyError.validation("\(name) must be an RFC 3339 timestamp.", field: name)
        }
    }
}
