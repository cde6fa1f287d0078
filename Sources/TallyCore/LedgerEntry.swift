import struct Foundation.UUID

/// What a ledger entry records. Grant types share their names with bucket sources.
public enum LedgerEntryType: String, Sendable, CaseIterable, Codable {
    case usage
    case reversal
    case expiry
    case hold
    case holdRelease = "hold_release"
    case planAllocation = "plan_allocation"
    case rollover
    case purchase
    case freeCredits = "free_credits"
    case promotional
    case adminGrant = "admin_grant"
    case refund

    public init(grantOf source: BucketSource) {
        self = LedgerEntryType(rawValue: source.rawValue)!
    }

    /// The "purchase history" of the credits page: every addition of credits.
    public static let additions: [LedgerEntryType] = [.purchase, .freeCredits, .adminGrant, .promotional, .refund, .planAllocation, .rollover]
}

/// A ledger entry as read back.
public struct LedgerEntry: Sendable, Equatable {
    public struct Posting: Sendable, Equatable {
        public let bucketID: UUID
        public let credits: Credits

        public init(bucketID: UUID, credits: Credits) {
            self.bucketID = bucketID
            self.credits = credits
        }
    }

    public let id: UUID
    public let sequence: Int64
    public let type: LedgerEntryType
    /// Net change of the organisation's bucket credits: negative for a spend.
    public let credits: Credits
    public let overageCredits: Credits
    public let operation: String?
    public let quantity: Int?
    public let params: String?
    public let eventID: String?
    public let eventName: String?
    public let actor: String
    public let metadata: String?
    public let reason: String?
    public let relatedEntryID: UUID?
    public let reservationID: UUID?
    public let createdAt: Instant
    public var postings: [Posting]
    /// The key the entry was made with; nil for what jobs did on their own.
    public var key: KeyStamp?

    public init(id: UUID, sequence: Int64, type: LedgerEntryType, credits: Credits, overageCredits: Credits, operation: String?,
                quantity: Int?, params: String?, eventID: String?, eventName: String?, actor: String, metadata: String?,
                reason: String?, relatedEntryID: UUID?, reservationID: UUID?, createdAt: Instant, postings: [Posting], key: KeyStamp? = nil) {
        self.key = key
        self.id = id
        self.sequence = sequence
        self.type = type
        self.credits = credits
        self.overageCredits = overageCredits
        self.operation = operation
        self.quantity = quantity
        self.params = params
        self.eventID = eventID
        self.eventName = eventName
        self.actor = actor
        self.metadata = metadata
        self.reason = reason
        self.relatedEntryID = relatedEntryID
        self.reservationID = reservationID
        self.createdAt = createdAt
        self.postings = postings
    }
}

extension LedgerEntry {
    /// What the entry did in credits, overage included: a usage of 4.1 credits that no bucket
    /// covered shows -4.1 (its `credits` column, the buckets' movement, is 0). What history and
    /// exports show.
    public var costCredits: Credits { credits - overageCredits }
}

/// The key a change was made with, as the ledger records it: its id and prefix, never the
/// secret. The platform key has no id; its prefix is "platform".
public struct KeyStamp: Sendable, Equatable {
    public let id: UUID?
    public let prefix: String

    public init(id: UUID?, prefix: String) {
        self.id = id
        self.prefix = prefix
    }

    public static let platform = KeyStamp(id: nil, prefix: "platform")
}

/// What a usage entry describes, beyond its credits: the operation and who and what it was for.
public struct UsageDetails: Sendable, Equatable {
    public var operation: String?
    public var quantity: Int?
    /// The operation's parameters as JSON text.
    public var params: String?
    public var eventID: String?
    public var eventName: String?
    /// A user id; "system" when none is given.
    public var actor: String
    public var metadata: String?
    /// The key the spend was made with (set by the store from the request's key).
    public var key: KeyStamp?

    public init(operation: String? = nil, quantity: Int? = nil, params: String? = nil, eventID: String? = nil,
                eventName: String? = nil, actor: String = "system", metadata: String? = nil) {
        self.operation = operation
        self.quantity = quantity
        self.params = params
        self.eventID = eventID
        self.eventName = eventName
        self.actor = actor
        self.metadata = metadata
    }
}
