import TallyJSON
import Foundation
import TallyCore
import TallyStore

// Wire shapes of the credits endpoints. Decoding is strict (see StrictJSONDecoder); encoding
// writes every field.

struct DrawDTO: Encodable {
    let bucketID: UUID
    let credits: Credits

    init(_ draw: BurnDownPlan.Draw) {
        bucketID = draw.bucketID
        credits = draw.credits
    }
}

struct UsageBody: Decodable {
    let credits: Credits?
    let operation: String?
    let quantity: Int?
    let params: JSONValue?
    let actor: String?
    let metadata: JSONValue?
    let eventID: String?
    let eventName: String?

    /// The usage details every spend records, checked for size.
    func details() throws(TallyError) -> UsageDetails {
        if let eventID { try Validate.text(eventID, field: "event_id") }
        if let eventName { try Validate.text(eventName, field: "event_name") }
        if let actor { try Validate.text(actor, field: "actor") }
        return UsageDetails(operation: operation, quantity: quantity, params: try Validate.jsonObject(params, field: "params"),
                            eventID: eventID, eventName: eventName, actor: actor ?? "system",
                            metadata: try Validate.jsonObject(metadata, field: "metadata"))
    }
}

struct SpendResponse: Encodable {
    let entryID: UUID
    let credits: Credits
    let overageCredits: Credits
    let availableAfter: Credits
    let drawn: [DrawDTO]
    let createdAt: Instant
}

extension SpendResponse {
    init(_ outcome: SpendOutcome) {
        entryID = outcome.entryID
        credits = outcome.credits
        overageCredits = outcome.overageCredits
        availableAfter = outcome.availableAfter
        drawn = outcome.drawn.map(DrawDTO.init)
        createdAt = outcome.createdAt
    }
}

/// Every spend renders this answer: built by hand it skips the `Encoder` machinery (containers,
/// boxes, a node tree), which took about 4% of Tally's CPU per spend. The same JSON as the
/// `Encodable` conformance writes (a test compares the two).
extension SpendResponse: DirectJSONEncodable {
    var json: JSONValue {
        .object([
            ("entry_id", .string(entryID.idString)),
            ("credits", .string(credits.description)),
            ("overage_credits", .string(overageCredits.description)),
            ("available_after", .string(availableAfter.description)),
            ("drawn", .array(drawn.map { .object([("bucket_id", .string($0.bucketID.idString)), ("credits", .string($0.credits.description))]) })),
            ("created_at", .string(createdAt.rfc3339)),
        ])
    }
}

struct GrantBody: Decodable {
    let credits: Credits
    let source: BucketSource
    let priority: Int?
    let reason: String?
    let expiresAt: Instant?
    let effectiveAt: Instant?
}

struct GrantResponse: Encodable {
    let bucketID: UUID
    let entryID: UUID
    let credits: Credits
    let source: BucketSource
    let priority: Int
    let effectiveAt: Instant
    let expiresAt: Instant?

    init(_ outcome: GrantOutcome) {
        bucketID = outcome.bucketID
        entryID = outcome.entryID
        credits = outcome.credits
        source = outcome.source
        priority = outcome.priority
        effectiveAt = outcome.effectiveAt
        expiresAt = outcome.expiresAt
    }
}

struct BucketDTO: Encodable {
    let id: UUID
    let source: BucketSource
    let granted: Credits
    let remaining: Credits
    let priority: Int
    let effectiveAt: Instant
    let expiresAt: Instant?

    init(_ bucket: CreditBucket) {
        id = bucket.id
        source = bucket.source
        granted = bucket.granted
        remaining = bucket.remaining
        priority = bucket.priority
        effectiveAt = bucket.effectiveAt
        expiresAt = bucket.expiresAt
    }
}

struct ReverseBody: Decodable {
    let credits: Credits?
    let reason: String?
    let actor: String?
}

struct ReversalResponse: Encodable {
    let entryID: UUID
    let reversedEntryID: UUID
    let credits: Credits
    let returned: [DrawDTO]
    let refundBucketID: UUID?
    let refundCredits: Credits
    let overageCredits: Credits
    let createdAt: Instant

    init(_ outcome: ReversalOutcome) {
        entryID = outcome.entryID
        reversedEntryID = outcome.reversedEntryID
        credits = outcome.credits
        returned = outcome.returned.map(DrawDTO.init)
        refundBucketID = outcome.refundBucketID
        refundCredits = outcome.refundCredits
        overageCredits = outcome.overageCredits
        createdAt = outcome.createdAt
    }
}

/// A usage body, and how long the hold lasts.
struct ReservationBody: Decodable {
    let usage: UsageBody
    let ttlSeconds: Int?

    enum CodingKeys: CodingKey { case ttlSeconds }

    init(from decoder: any Decoder) throws {
        usage = try UsageBody(from: decoder)
        ttlSeconds = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Int.self, forKey: .ttlSeconds)
    }
}

struct CommitBody: Decodable {
    let credits: Credits?
    let actor: String?
}

struct ReservationResponse: Encodable {
    let id: UUID
    let credits: Credits
    let status: String
    let committedCredits: Credits?
    let usageEntryID: UUID?
    let createdAt: Instant
    let expiresAt: Instant
    let settledAt: Instant?

    init(_ reservation: Reservation) {
        id = reservation.id
        credits = reservation.credits
        status = reservation.status.rawValue
        committedCredits = reservation.committedCredits
        usageEntryID = reservation.usageEntryID
        createdAt = reservation.createdAt
        expiresAt = reservation.expiresAt
        settledAt = reservation.settledAt
    }
}

struct LedgerEntryDTO: Encodable {
    let id: UUID
    let type: LedgerEntryType
    let credits: Credits
    let overageCredits: Credits
    let operation: String?
    let quantity: Int?
    let params: JSONValue?
    let eventID: String?
    let eventName: String?
    let actor: String
    let metadata: JSONValue?
    let reason: String?
    let relatedEntryID: UUID?
    let reservationID: UUID?
    /// The one bucket an entry touched, when it touched exactly one (a grant, most spends).
    let bucketID: UUID?
    let postings: [DrawDTO]
    let createdAt: Instant
    /// The key the entry was made with (id and prefix, never the secret); nil for jobs.
    let apiKeyID: UUID?
    let apiKeyPrefix: String?

    /// `reversalsAsRefunds`: in purchase history a reversal is a credit return, listed as `refund` (seed 003).
    init(_ entry: LedgerEntry, reversalsAsRefunds: Bool = false) {
        id = entry.id
        type = reversalsAsRefunds && entry.type == .reversal ? .refund : entry.type
        credits = entry.costCredits
        overageCredits = entry.overageCredits
        operation = entry.operation
        quantity = entry.quantity
        params = entry.params.flatMap { try? JSONParser.parse(Array($0.utf8)) }
        eventID = entry.eventID
        eventName = entry.eventName
        actor = entry.actor
        metadata = entry.metadata.flatMap { try? JSONParser.parse(Array($0.utf8)) }
        reason = entry.reason
        relatedEntryID = entry.relatedEntryID
        reservationID = entry.reservationID
        bucketID = entry.postings.count == 1 ? entry.postings[0].bucketID : nil
        postings = entry.postings.map { DrawDTO(BurnDownPlan.Draw(bucketID: $0.bucketID, credits: $0.credits)) }
        createdAt = entry.createdAt
        apiKeyID = entry.key?.id
        apiKeyPrefix = entry.key?.prefix
    }
}

extension Validate {
    static let jsonBytesMaximum = 8 * 1024

    /// Free-form JSON objects (params, metadata) as stored text, bounded in size.
    static func jsonObject(_ value: JSONValue?, field: String) throws(TallyError) -> String? {
        guard let value else { return nil }
        guard case .object = value else { throw TallyError.validation("\(field) must be an object.", field: field) }
        let bytes = value.serialized()
        guard bytes.count <= jsonBytesMaximum else {
            throw TallyError.validation("\(field) must be at most \(jsonBytesMaximum) bytes of JSON.", field: field)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A spend, hold or grant amount: positive and at most a trillion credits.
    static func positive(_ credits: Credits, field: String = "credits") throws(TallyError) {
        guard credits.isPositive else { throw TallyError.validation("\(field) must be positive.", field: field) }
        guard credits <= Credits.inputMaximum else {
            throw TallyError.validation("\(field) must be at most \(Credits.inputMaximum).", field: field)
        }
    }
}
