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

    public init(stores: Stores, clock: any WallClock, platformKey: PlatformKey?, migrations: [Migration], openAPIDocument: [UInt8],
                allowPrivateWebhookTargets: Bool = false) {
        self.stores = stores
        self.clock = clock
        self.platformKey = platformKey
        self.migrations = migrations
        self.openAPIDocument = openAPIDocument
        self.allowPrivateWebhookTargets = allowPrivateWebhookTargets
    }
}
