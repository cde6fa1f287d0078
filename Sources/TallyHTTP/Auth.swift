import Foundation
import HTTPTypes
import Hummingbird
import TallyCore
import TallyStore

/// The operator's key from `TALLY_PLATFORM_KEY`, held only as its hash.
public struct PlatformKey: Sendable {
    let hash: [UInt8]

    public init?(_ secret: String?) {
        guard let secret, !secret.isEmpty else { return nil }
        self.hash = KeyMaterial.hash(secret)
    }

    func matches(hash presented: [UInt8]) -> Bool {
        KeyMaterial.constantTimeEquals(hash, presented)
    }
}

/// Identifies the caller from `Authorization: Bearer <key>`: 401 when missing, unknown or revoked.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext
    let platformKey: PlatformKey?
    let keys: APIKeyStore
    let rateLimits: RateLimits
    let rateLimiter: RateLimiter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw TallyError(.unauthenticated, code: "unauthenticated", detail: "Send an API key as 'Authorization: Bearer <key>'.")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw TallyError(.unauthenticated, code: "unauthenticated", detail: "Send an API key as 'Authorization: Bearer <key>'.")
        }
        // Spaces and tabs around the key are ignored (by hand: Foundation's trimming bridges to NSString).
        var presented = parts[1]
        while presented.first == " " || presented.first == "\t" { presented = presented.dropFirst() }
        while presented.last == " " || presented.last == "\t" { presented = presented.dropLast() }
        let secret = String(presented)
        var context = context
        // Hashed once: the platform key's check, the rate limit and the lookup all use it.
        let digest = KeyMaterial.hash(secret)
        let isPlatform = platformKey?.matches(hash: digest) ?? false
        // The limit is taken before the key is looked up: a flood beyond it (even of keys that do
        // not exist) costs a hash and a 429, never a database query.
        if let limit = isPlatform ? rateLimits.platform : rateLimits.perKey,
           case .limited(let retryAfter) = rateLimiter.take(isPlatform ? "platform" : digest.hexPrefix, limit: limit) {
            if request.method == .post, request.uri.path.hasSuffix("/usage") { SpendMetrics.refusedForRate() }
            // The answer waits a little: a key that ignores Retry-After then sends a few requests per
            // second per connection instead of thousands, and leaves the CPU to everyone else.
            try await Task.sleep(for: rateLimits.overLimitDelay)
            return Self.rateLimited(limit: limit, retryAfter: retryAfter)
        }
        if isPlatform {
            context.caller = AuthenticatedKey(keyID: nil, orgID: nil, role: .platform, prefix: KeyStamp.platform.prefix)
        } else if let key = try await keys.authenticate(secret: secret, hash: digest) {
            context.caller = key
            context.logger[metadataKey: "auth.key_id"] = "\(key.keyID?.idString ?? "-")"
        } else {
            throw TallyError(.unauthenticated, code: "invalid_api_key", detail: "The API key is not valid or has been revoked.")
        }
        // Every change made while serving the request records the key (see KeyStamp.current).
        return try await KeyStamp.$current.withValue(context.caller?.stamp) { try await next(request, context) }
    }
}

private extension Array where Element == UInt8 {
    /// The first 16 bytes as hex: enough to tell keys apart in the rate limiter.
    var hexPrefix: String { Hex.lowercase(prefix(16)) }
}

extension AuthMiddleware {
    /// `429 rate_limited` with `Retry-After` and the RateLimit headers (the limit is the burst,
    /// refilled at `perSecond`).
    static func rateLimited(limit: RateLimiter.Limit, retryAfter: Int) -> Response {
        var response = ProblemMiddleware.response(
            status: .tooManyRequests, code: "rate_limited",
            detail: "This key sends more than \(limit.perSecond) requests per second; retry after \(retryAfter) s.")
        response.headers[.retryAfter] = "\(retryAfter)"
        response.headers[HTTPField.Name("RateLimit-Limit")!] = "\(limit.burst)"
        response.headers[HTTPField.Name("RateLimit-Remaining")!] = "0"
        response.headers[HTTPField.Name("RateLimit-Reset")!] = "\(retryAfter)"
        return response
    }
}

extension TallyRequestContext {
    /// The authenticated caller; `AuthMiddleware` guarantees it on every `/v1` route.
    var requiredCaller: AuthenticatedKey {
        get throws {
            guard let caller else {
                throw TallyError(.unauthenticated, code: "unauthenticated", detail: "A valid API key is required.")
            }
            return caller
        }
    }

    /// Only the platform key may do this (catalog, organisations, test clocks).
    func requirePlatform() throws {
        guard try requiredCaller.role == .platform else {
            throw TallyError.forbidden("Only the platform key may do this.")
        }
    }
}

/// The organisation a request acts on, after access checks, and its time.
struct OrgScope: Sendable {
    let context: OrgContext
    let caller: AuthenticatedKey
    /// The organisation's "now": its test clock's time, or the real clock's.
    let now: Instant

    var org: Organisation { context.org }
}

extension AppServices {
    /// The caller and the `{org}` it names: 404 for an id that is not one, or that is another
    /// organisation's (never revealing that it exists).
    private func orgTarget(_ context: TallyRequestContext) throws -> (caller: AuthenticatedKey, orgID: UUID) {
        let caller = try context.requiredCaller
        guard let text = context.parameters.get("org"), let id = UUID(idString: text),
              caller.role == .platform || caller.orgID == id else {
            throw TallyError.notFound("The organisation")
        }
        return (caller, id)
    }

    /// Resolves `{org}` for the caller: a key of another organisation gets 404 (never revealing
    /// that the organisation exists), before a role below `role` gets 403.
    /// `forSpend`: the context last read may do (`OrgContextCache`: the spend's transaction
    /// checks that it is still current).
    func orgScope(_ context: TallyRequestContext, role: KeyRole = .member, idempotencyKey: String? = nil, forSpend: Bool = false) async throws -> OrgScope {
        let (caller, id) = try orgTarget(context)
        let notFound = TallyError.notFound("The organisation")
        let read = forSpend ? try await stores.orgs.spendContext(id, idempotencyKey: idempotencyKey)
                            : try await stores.orgs.context(id, idempotencyKey: idempotencyKey)
        guard var context = read else { throw notFound }
        guard caller.role.permits(role) else {
            throw TallyError.forbidden("This needs a key with the \(role.rawValue) role.")
        }
        let now = context.clockTime ?? clock.now()
        // A period that has ended is renewed before anything else happens, so that a late
        // billing cron never leaves an organisation without its new credits.
        if let dueAt = context.renewalDueAt, dueAt <= now {
            try await stores.subscriptions.catchUp(orgID: id, until: now)
            guard let renewed = try await stores.orgs.context(id, idempotencyKey: idempotencyKey) else { throw notFound }
            context = renewed
        }
        return OrgScope(context: context, caller: caller, now: now)
    }

    /// `orgScope` and the organisation's balance, read together in one query (any role may read
    /// it). A period that has ended is renewed first, and then both are read again.
    func orgBalance(_ context: TallyRequestContext) async throws -> (scope: OrgScope, balance: Balance) {
        let (caller, id) = try orgTarget(context)
        let wallTime = clock.now()
        guard let read = try await stores.ledger.contextAndBalance(orgID: id, wallTime: wallTime) else {
            throw TallyError.notFound("The organisation")
        }
        let now = read.context.clockTime ?? read.wallTime
        if let dueAt = read.context.renewalDueAt, dueAt <= now {
            let scope = try await orgScope(context)
            return (scope, try await stores.ledger.balance(orgID: id, at: scope.now, period: scope.context.period))
        }
        return (OrgScope(context: read.context, caller: caller, now: now), read.balance)
    }
}
