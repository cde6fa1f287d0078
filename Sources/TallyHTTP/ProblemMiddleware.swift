import TallyJSON
import Hummingbird
import Logging
import NIOCore
import TallyCore
import TallyStore

/// Turns every error into an RFC 9457 problem document with a stable `code`. Unexpected errors
/// are logged here (with the request id) and answered with a generic 500: no internals leak.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let (status, problem) = Self.problem(for: error, context: context)
            return Self.response(status: status, code: problem.code, detail: problem.detail, field: problem.field, extras: problem.extras)
        }
    }

    /// What any error is answered with (also each item of a usage batch). Unexpected errors are
    /// logged with the request id and answered with a generic 500: no internals leak.
    static func problem(for error: any Error, context: Context) -> (HTTPResponse.Status, TallyError) {
        func mapped(_ error: TallyError) -> (HTTPResponse.Status, TallyError) { (status(for: error.kind), error) }
        switch error {
        case let error as TallyError:
            return mapped(error)
        case let error as HTTPError:
            return mapped(translate(error))
        case let error as DatabaseUnavailable:
            return mapped(unavailable(error, context: context))
        case is NIOTooManyBytesError:
            return mapped(TallyError(.payloadTooLarge, code: "payload_too_large", detail: "The body is too large."))
        default:
            if DatabaseUnavailable.isConnectionLoss(error) {
                return mapped(unavailable(DatabaseUnavailable(.connectionLost, underlying: error), context: context))
            }
            if let refused = DatabaseRefusal.refusedValue(error) { return mapped(refused) }
            if DatabaseRefusal.isOverload(error) {
                context.logger.warning("database unavailable", metadata: ["error": "\(String(reflecting: error))"])
                return mapped(TallyError(.unavailable, code: "unavailable", detail: "The service is briefly unavailable; retry with the same Idempotency-Key."))
            }
            context.logger.error("unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            return (.internalServerError, TallyError(.unavailable, code: "internal_error",
                                                     detail: "Something went wrong on our side. The request id is \(context.id)."))
        }
    }

    /// 503 with `Retry-After`: nothing was stored under the request's Idempotency-Key unless the
    /// transaction committed, so the same request may simply be sent again.
    static func unavailable(_ error: DatabaseUnavailable, context: Context) -> TallyError {
        context.logger.debug("database unavailable", metadata: ["error": "\(error)"])
        switch error.reason {
        case .busy:
            return TallyError(.unavailable, code: "overloaded", detail: "Every database connection is busy; retry with the same Idempotency-Key.")
        case .shuttingDown:
            return TallyError(.unavailable, code: "shutting_down", detail: "This instance is shutting down; retry with the same Idempotency-Key.")
        case .unreachable, .connectionLost:
            return TallyError(.unavailable, code: "database_unavailable", detail: "The database is unavailable; retry with the same Idempotency-Key.")
        }
    }

    static func translate(_ error: HTTPError) -> TallyError {
        switch error.status {
        case .notFound: TallyError(.notFound, code: "not_found", detail: "There is no such resource.")
        case .contentTooLarge: TallyError(.payloadTooLarge, code: "payload_too_large", detail: "The body is too large.")
        case .unauthorized: TallyError(.unauthenticated, code: "unauthenticated", detail: error.body ?? "A valid API key is required.")
        default: TallyError(.malformedRequest, code: "bad_request", detail: error.body ?? "The request is not valid.")
        }
    }

    static func status(for kind: TallyError.Kind) -> HTTPResponse.Status {
        switch kind {
        case .malformedRequest: .badRequest
        case .unauthenticated: .unauthorized
        case .paymentRequired: .init(code: 402, reasonPhrase: "Payment Required")
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .payloadTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .unprocessable: .unprocessableContent
        case .unavailable: .serviceUnavailable
        }
    }

    static func response(for error: TallyError) -> Response {
        response(status: status(for: error.kind), code: error.code, detail: error.detail, field: error.field, extras: error.extras)
    }

    /// The problem document bytes, also stored as the replay of an idempotent request.
    static func body(status: HTTPResponse.Status, code: String, detail: String, field: String? = nil, extras: [String: String] = [:]) -> [UInt8] {
        var members: [(key: String, value: JSONValue)] = [
            ("type", .string("urn:tally:problem:\(code)")),
            ("title", .string(status.reasonPhrase)),
            ("status", .number(String(status.code))),
            ("code", .string(code)),
            ("detail", .string(detail)),
        ]
        if let field { members.append(("field", .string(field))) }
        for key in extras.keys.sorted() { members.append((key, .string(extras[key]!))) }
        return JSONValue.object(members).serialized()
    }

    static func response(status: HTTPResponse.Status, code: String, detail: String, field: String? = nil, extras: [String: String] = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        if status == .serviceUnavailable { headers[.retryAfter] = "1" }
        // The rest of an oversized body is not read: the connection closes after this answer.
        if status == .contentTooLarge { headers[.connection] = "close" }
        return Response(status: status, headers: headers,
                        body: .init(byteBuffer: ByteBuffer(bytes: body(status: status, code: code, detail: detail, field: field, extras: extras))))
    }
}

extension TallyError {
    static func forbidden(_ detail: String) -> TallyError {
        TallyError(.forbidden, code: "forbidden", detail: detail)
    }
}
