import Foundation
import Logging
import PostgresNIO
import TallyCore

public struct HoldRequest: Sendable {
    public static let ttlSecondsDefault = 900
    public static let ttlSecondsMaximum = 7 * 24 * 3600

    public var credits: Credits
    public var ttlSeconds: Int
    public var usage: UsageDetails

    public init(credits: Credits, ttlSeconds: Int?, usage: UsageDetails) {
        self.credits = credits
        self.ttlSeconds = ttlSeconds ?? Self.ttlSecondsDefault
        self.usage = usage
    }
}

public struct Reservation: Sendable, Equatable {
    public enum Status: String, Sendable { case active, committed, released, expired }
    public let id: UUID
    public let credits: Credits
    public let status: Status
    public let committedCredits: Credits?
    public let createdAt: Instant
    public let expiresAt: Instant
    public let settledAt: Instant?
    /// The usage entry a commit wrote.
    public let usageEntryID: UUID?
}

/// Holds: credits taken out of buckets (a `hold` entry) so that no one else can spend them,
/// until a commit consumes at most the held amount, a release frees it, or it expires. The
/// reservation row, locked first, makes each of those happen exactly once.
public struct ReservationStore: Sendable {
    let database: Database

    public func hold(orgID: UUID, at now: Instant, _ request: HoldRequest, claim: IdempotencyClaim?, render: ResponseRenderer<Reservation>) async throws -> StoredResponse {
        guard (1...HoldRequest.ttlSecondsMaximum).contains(request.ttlSeconds) else {
            throw TallyError.validation("ttl_seconds must be between 1 and \(HoldRequest.ttlSecondsMaximum).", field: "ttl_seconds")
        }
        guard request.credits.isPositive else {
            throw TallyError.validation("A hold must hold credits; this request costs nothing.", field: "credits")
        }
        return try await database.idempotentTransaction(orgID: orgID, claim: claim, at: now, render: render) { connection in
            let buckets = try await BucketQueries.lockSpendable(orgID: orgID, at: now, on: connection, logger: database.logger)
            var balance = SpendableBalance(buckets: buckets, at: now)
            let plan = try balance.spend(request.credits)
            let reservationID = UUID.v7(at: now)
            let entryID = UUID.v7(at: now)
            let expiresAt = now.adding(seconds: Int64(request.ttlSeconds))
            var write = LedgerWrite(orgID: orgID)
            write.add(.init(id: entryID, type: .hold, usage: request.usage, reservationID: reservationID, createdAt: now),
                      postings: plan.draws.map { ($0.bucketID, -$0.credits) })
            write.with { sql in
                """
                INSERT INTO reservations (org_id, reservation_id, credits, status, hold_entry_id, operation, quantity, params, created_at, expires_at)
                VALUES (\(sql.bind(orgID)), \(sql.bind(reservationID)), \(sql.bind(request.credits)), 'active', \(sql.bind(entryID)),
                        \(sql.bind(request.usage.operation)), \(sql.bind(request.usage.quantity)), \(sql.bind(request.usage.params))::jsonb,
                        \(sql.bind(now)), \(sql.bind(expiresAt)))
                """
            }
            let reservation = Reservation(id: reservationID, credits: request.credits, status: .active, committedCredits: nil,
                                          createdAt: now, expiresAt: expiresAt, settledAt: nil, usageEntryID: nil)
            return (reservation, write)
        }
    }

    /// Consumes at most the held amount (all of it when `credits` is nil) and frees the rest.
    public func commit(orgID: UUID, reservationID: UUID, credits: Credits?, actor: String?, at now: Instant, terms: SpendTerms = .strict,
                       claim: IdempotencyClaim?, render: ResponseRenderer<Reservation>) async throws -> StoredResponse {
        try await database.idempotentTransaction(orgID: orgID, claim: claim, at: now, render: render) { connection in
            let held = try await lockActive(orgID: orgID, reservationID: reservationID, on: connection)
            guard held.expiresAt > now else {
                throw TallyError.conflict("reservation_expired", "The reservation expired at \(held.expiresAt); its credits are freed.")
            }
            let capture = credits ?? held.credits
            guard capture <= held.credits else {
                throw TallyError(.unprocessable, code: "commit_exceeds_hold",
                                 detail: "The reservation holds \(held.credits) credits; a commit takes at most that.", field: "credits")
            }
            var usage = held.usage
            if let actor { usage.actor = actor }
            let (reservation, write) = try await settle(held, capture: capture, usage: usage, status: .committed, orgID: orgID, at: now, on: connection)
            if capture.isPositive {
                // Held credits were out of the balance already: committing does not move it.
                try await UsageAccounting.countCapture(capture, at: now, terms: terms, orgID: orgID, on: connection, logger: database.logger)
            }
            return (reservation, write)
        }
    }

    /// Frees everything the reservation holds.
    public func release(orgID: UUID, reservationID: UUID, at now: Instant, claim: IdempotencyClaim?, render: ResponseRenderer<Reservation>) async throws -> StoredResponse {
        try await database.idempotentTransaction(orgID: orgID, claim: claim, at: now, render: render) { connection in
            let held = try await lockActive(orgID: orgID, reservationID: reservationID, on: connection)
            return try await settle(held, capture: .zero, usage: held.usage, status: .released, orgID: orgID, at: now, on: connection)
        }
    }

    /// Frees every hold that expired by `now` (of one organisation, or of all), each exactly
    /// once: a hold locked by a concurrent commit or release is skipped, and one already settled
    /// is no longer active. Returns how many were freed.
    @discardableResult
    public func releaseExpired(_ selection: OrgSelection, at now: Instant, limit: Int = 500) async throws -> Int {
        var sql = BoundSQL()
        let statement = """
            SELECT r.org_id, r.reservation_id FROM reservations r JOIN orgs o ON o.org_id = r.org_id
            WHERE r.status = 'active' AND r.expires_at <= \(sql.bind(now)) AND \(selection.condition(&sql))
            ORDER BY r.expires_at LIMIT \(sql.bind(limit))
            """
        let rows = try await database.pool.query(sql.query(statement), logger: database.logger).collect()
        var freed = 0
        for row in rows {
            let (org, reservationID) = try row.decode((UUID, UUID).self)
            let done: Bool = try await database.transaction { connection in
                let locked = try await connection.query("""
                    SELECT 1 FROM reservations WHERE org_id = \(org) AND reservation_id = \(reservationID)
                      AND status = 'active' AND expires_at <= \(now)
                    FOR UPDATE SKIP LOCKED
                    """, logger: database.logger).collect()
                guard !locked.isEmpty else { return false }
                let held = try await lockActive(orgID: org, reservationID: reservationID, on: connection)
                // The release is dated at the hold's expiry, whenever the job gets to it.
                let (_, write) = try await settle(held, capture: .zero, usage: held.usage, status: .expired, orgID: org, at: held.expiresAt, on: connection)
                try await write.execute(on: connection, logger: database.logger)
                return true
            }
            if done { freed += 1 }
        }
        return freed
    }

    static func hasExpiredHolds(orgID: UUID, at now: Instant, on connection: DatabaseConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("""
            SELECT 1 FROM reservations WHERE org_id = \(orgID) AND status = 'active' AND expires_at <= \(now) LIMIT 1
            """, logger: logger).collect()
        return !rows.isEmpty
    }

    struct HeldReservation {
        let id: UUID
        let credits: Credits
        let holdEntryID: UUID
        let createdAt: Instant
        let expiresAt: Instant
        let usage: UsageDetails
    }

    /// Locks the reservation row (first, before any bucket) and insists that it is active.
    private func lockActive(orgID: UUID, reservationID: UUID, on connection: DatabaseConnection) async throws -> HeldReservation {
        let rows = try await connection.query("""
            SELECT r.credits, r.status, r.hold_entry_id, r.created_at, r.expires_at, r.operation, r.quantity, r.params::text,
                   e.event_id, e.event_name, e.actor, e.metadata::text
            FROM reservations r JOIN ledger_entries e ON e.org_id = r.org_id AND e.entry_id = r.hold_entry_id
            WHERE r.org_id = \(orgID) AND r.reservation_id = \(reservationID)
            FOR UPDATE OF r
            """, logger: database.logger).collect()
        guard let row = rows.first else { throw TallyError.notFound("The reservation") }
        let (credits, status, holdEntryID, createdAt, expiresAt, operation, quantity, params) =
            try row.decode((Credits, String, UUID, Instant, Instant, String?, Int?, String?).self)
        let columns = row.makeRandomAccess()
        let eventID = try columns[8].decode(String?.self)
        let eventName = try columns[9].decode(String?.self)
        let actor = try columns[10].decode(String.self)
        let metadata = try columns[11].decode(String?.self)
        guard status == Reservation.Status.active.rawValue else {
            throw TallyError(.conflict, code: "reservation_not_active", detail: "The reservation is already \(status).", extras: ["reservation_status": status])
        }
        return HeldReservation(id: reservationID, credits: credits, holdEntryID: holdEntryID, createdAt: createdAt, expiresAt: expiresAt,
                               usage: UsageDetails(operation: operation, quantity: quantity, params: params, eventID: eventID,
                                                   eventName: eventName, actor: actor, metadata: metadata))
    }

    /// Gives every held credit back (`hold_release`), spends `capture` of them from the buckets
    /// they were held from (`usage`), and expires what returns to a bucket that expired meanwhile.
    private func settle(
        _ held: HeldReservation, capture: Credits, usage: UsageDetails, status: Reservation.Status,
        orgID: UUID, at now: Instant, on connection: DatabaseConnection
    ) async throws -> (Reservation, LedgerWrite) {
        let logger = database.logger
        let draws = try await BucketQueries.draws(ofEntry: held.holdEntryID, orgID: orgID, on: connection, logger: logger)
        let buckets = try await BucketQueries.lock(orgID: orgID, ids: draws.map(\.bucketID), on: connection, logger: logger)
        let (captured, released) = HoldSettlement.capture(capture, from: draws)

        var write = LedgerWrite(orgID: orgID)
        write.add(.init(id: .v7(at: now), type: .holdRelease, relatedEntryID: held.holdEntryID, reservationID: held.id, createdAt: now),
                  postings: draws.map { ($0.bucketID, $0.credits) })
        var usageEntryID: UUID?
        if capture.isPositive {
            let entryID = UUID.v7(at: now)
            write.add(.init(id: entryID, type: .usage, usage: usage, relatedEntryID: held.holdEntryID, reservationID: held.id, createdAt: now),
                      postings: captured.map { ($0.bucketID, -$0.credits) })
            usageEntryID = entryID
        }
        // Credits freed into a bucket that has expired since the hold would have expired there.
        let expired = Set(buckets.filter { $0.isExpired(at: now) }.map(\.id))
        let lapsed = released.filter { expired.contains($0.bucketID) }
        if !lapsed.isEmpty {
            write.add(.init(id: .v7(at: now), type: .expiry, reason: "held credits freed after their bucket expired",
                            reservationID: held.id, createdAt: now),
                      postings: lapsed.map { ($0.bucketID, -$0.credits) })
        }
        let settleEntryID = usageEntryID
        write.with { sql in
            """
            UPDATE reservations SET status = \(sql.bind(status.rawValue)), settled_at = \(sql.bind(now)),
                committed_credits = \(sql.bind(status == .committed ? capture : nil)), settle_entry_id = \(sql.bind(settleEntryID))
            WHERE org_id = \(sql.bind(orgID)) AND reservation_id = \(sql.bind(held.id))
            """
        }
        let reservation = Reservation(id: held.id, credits: held.credits, status: status, committedCredits: status == .committed ? capture : nil,
                                      createdAt: held.createdAt, expiresAt: held.expiresAt, settledAt: now, usageEntryID: usageEntryID)
        return (reservation, write)
    }
}
