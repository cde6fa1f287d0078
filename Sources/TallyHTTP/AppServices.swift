import Foundation
import TallyCore
import TallyStore

/// What the HTTP layer needs from the rest of Tally, built once at start-up.
public struct AppServices: Sendable {
    public let stores: Stores
    public let clock: any WallClock
    public let platformKey: PlatformKey?
    public let migrations: [Migration]
    /// The OpenAPI document served at `/openapi.json`, as read from the repository's file.
    public let openAPIDocument: [UInt8]
    /// Lets organisation admins point webhooks at private or loopback addresses
    /// (`TALLY_WEBHOOKS_ALLOW_PRIVATE=1`; off by default).
    public let allowPrivateWebhookTargets: Bool
    /// Requests per second per key (`TALLY_RATE_LIMIT_PER_KEY`, `TALLY_RATE_LIMIT_PLATFORM`); nil is no limit.
    public let rateLimits: RateLimits
    /// Where people reach Tally (`TALLY_PUBLIC_URL`), for credits portal links; nil: the request's Host.
    public let publicURL: String?
    let rateLimiter = RateLimiter()

    public init(stores: Stores, clock: any WallClock, platformKey: PlatformKey?, migrations: [Migration], openAPIDocument: [UInt8],
                allowPrivateWebhookTargets: Bool = false, rateLimits: RateLimits = .off, publicURL: String? = nil) {
        self.stores = stores
        self.clock = clock
        self.platformKey = platformKey
        self.migrations = migrations
        self.openAPIDocument = openAPIDocument
        self.allowPrivateWebhookTargets = allowPrivateWebhookTargets
        self.rateLimits = rateLimits
        var publicURL = publicURL
        while publicURL?.hasSuffix("/") == true { publicURL?.removeLast() }
        self.publicURL = publicURL
    }
}

/// The per-key limits: organisations' keys share one setting, the platform key has its own.
public struct RateLimits: Sendable {
    public var perKey: RateLimiter.Limit?
    public var platform: RateLimiter.Limit?
    /// How long a 429 waits before it is sent (a tarpit for clients that do not back off).
    public var overLimitDelay: Duration

    public init(perKey: RateLimiter.Limit?, platform: RateLimiter.Limit?, overLimitDelay: Duration = .milliseconds(250)) {
        self.perKey = perKey
        self.platform = platform
        self.overLimitDelay = overLimitDelay
    }

    public static let off = RateLimits(perKey: nil, platform: nil)
    /// Generous defaults: a client that needs more runs several keys or asks the operator.
    public static let defaultPerKey = RateLimiter.Limit(perSecond: 200, burst: 400)
    public static let defaultPlatform = RateLimiter.Limit(perSecond: 2000, burst: 4000)
}
