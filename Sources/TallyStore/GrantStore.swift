import Foundation
import Logging
import PostgresNIO
import TallyCore

/// A grant of credits into a new bucket.
public struct GrantRequest: Sendable {
    public var credits: Credits
    public var source: BucketSource
    public var priority: Int?
    public var effectiveAt: Instant?
    public var expiresAt: Instant?
    public var reason: String?

    public init(credits: Credits, source: BucketSource, priority: Int? = nil, effectiveAt: Instant? = nil, expiresAt: Instant? = nil, reason: String? = nil) {
        self.credits = credits
        self.source = source
        self.priority = priority
        self.effectiveAt = effectiveAt
        self.expiresAt = expiresAt
        self.reason = reason
    }

    /// Checks the source (plan, rollover and purchase buckets belong to a subscription or an
    /// invoice, never to a bare grant) and what only the time of the request can tell: a grant
    /// must be spendable at some point.
    public func validate(at now: Instant) throws(TallyError) {
        guard BucketSource.grantable.contains(source) else {
            let names = BucketSource.grantable.map(\.rawValue).joined(separator: ", ")
            throw TallyError.validation("source must be one of \(names).", field: "source")
        }
        if let priority, !(0...1000).contains(priority) {
            throw TallyError.validation("priority must be between 0 and 1000.", field: "priority")
        }
        if let expiresAt {
            guard expiresAt > now else { throw TallyError.validation("expires_at must be in the future.", field: "expires_at") }
            if let effectiveAt, expiresAt <= effectiveAt {
                throw TallyError.validation("expires_at must be after effective_at.", field: "expires_at")
            }
        }
    }
}

public struct GrantOutcome: Sendable, Equatable {
    public let bucketID: UUID
    public let entryID: UUID
    public let credits: Credits
    public let source: BucketSource
    public let priority: Int
    public let effectiveAt: Instant
    public let expiresAt: Instant?
}

public struct GrantStore: Sendable {
    let database: Database

    public func grant(orgID: UUID, at now: Instant, _ request: GrantRequest, claim: IdempotencyClaim?, render: ResponseRenderer<GrantOutcome>) async throws -> StoredResponse {
        try request.validate(at: now)
        return try await database.idempotentTransaction(orgID: orgID, claim: claim, at: now, render: render) { connection in
            try await BucketQueries.checkRoom(for: request.credits, orgID: orgID, on: connection, logger: database.logger)
            var write = LedgerWrite(orgID: orgID)
            let priority = request.priority ?? request.source.defaultPriority
            let effectiveAt = request.effectiveAt ?? now
            let (bucketID, entryID) = write.grant(request.source, credits: request.credits, priority: priority, effectiveAt: effectiveAt,
                                                  expiresAt: request.expiresAt, at: now, reason: request.reason)
            let outcome = GrantOutcome(bucketID: bucketID, entryID: entryID, credits: request.credits, source: request.source,
                                       priority: priority, effectiveAt: effectiveAt, expiresAt: request.expiresAt)
            return (outcome, write)
        }
    }
}
