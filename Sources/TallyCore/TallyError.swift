/// A failure the caller can act on, with a stable machine-readable `code`.
///
/// The core throws these for situations a user can cause (not enough credits, an unknown plan);
/// programmer errors are preconditions instead. The HTTP layer turns `kind` into a status code
/// and the whole error into an RFC 9457 problem document.
public struct TallyError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case malformedRequest      // 400
        case unauthenticated       // 401
        case paymentRequired       // 402
        case forbidden             // 403
        case notFound              // 404
        case conflict              // 409
        case payloadTooLarge       // 413
        case unsupportedMediaType  // 415
        case unprocessable         // 422
        case unavailable           // 503
    }

    public let kind: Kind
    public let code: String
    public let detail: String
    /// The offending request field, as a JSON path ("credits", "lines[0].amount").
    public var field: String?
    /// Extra members of the problem document, such as `required`, `available`, `shortfall`.
    public var extras: [String: String]

    public init(_ kind: Kind, code: String, detail: String, field: String? = nil, extras: [String: String] = [:]) {
        self.kind = kind
        self.code = code
        self.detail = detail
        self.field = field
        self.extras = extras
    }

    public var description: String { "\(code): \(detail)" }
}

extension TallyError {
    public static func validation(_ detail: String, field: String? = nil) -> TallyError {
        TallyError(.unprocessable, code: "validation_failed", detail: detail, field: field)
    }

    public static func notFound(_ what: String) -> TallyError {
        TallyError(.notFound, code: "not_found", detail: "\(what) was not found")
    }

    public static func conflict(_ code: String, _ detail: String) -> TallyError {
        TallyError(.conflict, code: code, detail: detail)
    }

    public static func insufficientCredits(required: Credits, available: Credits) -> TallyError {
        let shortfall = required - available
        return TallyError(
            .paymentRequired, code: "insufficient_credits",
            detail: "This needs \(required) credits but only \(available) are available.",
            extras: ["required": required.description, "available": available.description, "shortfall": shortfall.description]
        )
    }

    public static func currencyMismatch(_ a: Currency, _ b: Currency) -> TallyError {
        TallyError(.unprocessable, code: "currency_mismatch", detail: "Amounts in \(a) and \(b) cannot be combined.")
    }
}
