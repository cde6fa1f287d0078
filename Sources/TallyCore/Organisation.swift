import struct Foundation.TimeZone
import struct Foundation.UUID

/// A tenant: everything Tally holds belongs to one organisation.
public struct Organisation: Sendable, Equatable {
    public let id: UUID
    public let name: String
    public let externalID: String?
    /// IANA time zone of the organisation's calendar: monthly summaries and period boundaries.
    public let timezone: String
    /// The test clock the organisation lives on, if any; otherwise the real clock.
    public let testClockID: UUID?
    public let createdAt: Instant

    public init(id: UUID, name: String, externalID: String?, timezone: String, testClockID: UUID?, createdAt: Instant) {
        self.id = id
        self.name = name
        self.externalID = externalID
        self.timezone = timezone
        self.testClockID = testClockID
        self.createdAt = createdAt
    }

    public static func validateTimezone(_ identifier: String) throws(TallyError) {
        guard TimeZone(identifier: identifier) != nil else {
            throw TallyError.validation("'\(identifier)' is not an IANA time zone such as Europe/Berlin.", field: "timezone")
        }
    }
}

/// What a key may do. Platform keys belong to the operator of Tally, the others to one organisation.
public enum KeyRole: String, Sendable, Codable, CaseIterable {
    case platform
    case admin
    case member

    /// Whether a key of this role may do what `required` allows.
    public func permits(_ required: KeyRole) -> Bool {
        switch (self, required) {
        case (.platform, _): true
        case (.admin, .admin), (.admin, .member), (.member, .member): true
        default: false
        }
    }
}

/// An API key as listed: never its secret.
public struct APIKey: Sendable, Equatable {
    public let id: UUID
    public let orgID: UUID?
    public let name: String
    public let role: KeyRole
    public let prefix: String
    public let createdAt: Instant
    public let revokedAt: Instant?

    public init(id: UUID, orgID: UUID?, name: String, role: KeyRole, prefix: String, createdAt: Instant, revokedAt: Instant?) {
        self.id = id
        self.orgID = orgID
        self.name = name
        self.role = role
        self.prefix = prefix
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// One page of a cursor-paginated list.
public struct Page<Item: Sendable>: Sendable {
    public let items: [Item]
    public let nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

/// List limits: `?limit=` defaults to 50 and never exceeds 500.
public enum PageSize {
    public static let `default` = 50
    public static let maximum = 500

    public static func resolve(_ requested: Int?) throws(TallyError) -> Int {
        guard let requested else { return `default` }
        guard (1...maximum).contains(requested) else {
            throw TallyError.validation("limit must be between 1 and \(maximum).", field: "limit")
        }
        return requested
    }
}
