import Foundation
import Logging
import NIOCore
import PostgresNIO
import TallyCore
import TallyJSON

/// A priced spend, ready for the ledger.
public struct SpendRequest: Sendable {
    public var credits: Credits
    public var usage: UsageDetails

    public init(credits: Credits, usage: UsageDetails) {
        self.credits = credits
        self.usage = usage
    }
}

/// The organisation's period moved on (renewed, changed or cancelled) between reading the
/// spend's terms and spending: nothing was written, and the request is to be priced again with
/// fresh terms. Never an answer of its own, so never stored under an idempotency key.
public struct SpendTermsChanged: Error {}

/// What a spend did.
public struct SpendOutcome: Sendable, Equatable {
    public let entryID: UUID
    public let credits: Credits
    public let overageCredits: Credits
    public let availableAfter: Credits
    public let drawn: [BurnDownPlan.Draw]
    public let createdAt: Instant
}

/// One spend waiting to be applied, with everything needed to answer it.
public struct PendingSpend: Sendable {
    public let spend: SpendRequest
    public let terms: SpendTerms
    public let claim: IdempotencyClaim?
    public let render: ResponseRenderer<SpendOutcome>
    public let now: Instant
    /// The fingerprint of the context the spend was priced with: the spend is applied only if its
    /// transaction finds it current (else `SpendTermsChanged`). Nil: not checked.
    public let fingerprint: String?

    public init(spend: SpendRequest, terms: SpendTerms, claim: IdempotencyClaim?, render: @escaping ResponseRenderer<SpendOutcome>, now: Instant,
                fingerprint: String? = nil) {
        // Stamped here, in the request's own task: the batch that writes it may run in another's.
        var spend = spend
        if spend.usage.key == nil { spend.usage.key = KeyStamp.current }
        self.spend = spend
        self.terms = terms
        self.claim = claim
        self.render = render
        self.now = now
        self.fingerprint = fingerprint
    }
}

/// One organisation's queued spends, in arrival order.
struct OrgSpends: Sendable {
    let orgID: UUID
    let spends: [PendingSpend]

    /// The organisation's time for the batch: its latest spend's (a test clock's, or the real one).
    var now: Instant { spends.map(\.now).max()! }
}

/// Consumption: spends credits atomically, exactly once, never below zero. Concurrent spends,
/// of one organisation or of many, are applied together (see `SpendBatcher`), each with its own
/// result.
public struct ConsumptionStore: Sendable {
    let database: Database
    let reservations: ReservationStore
    let batcher: SpendBatcher

    init(database: Database, reservations: ReservationStore, transactionsMaximum: Int) {
        self.database = database
        self.reservations = reservations
        let apply = ApplySpends(database: database, reservations: reservations)
        self.batcher = SpendBatcher(transactionsMaximum: transactionsMaximum, apply: { groups in try await apply.run(groups) })
    }

    /// Spends `spend.credits` now. `terms` say what the organisation allows beyond its credits
    /// (overage at the plan's rate, up to a cap) and whether a low balance buys a pack.
    public func consume(
        orgID: UUID, at now: Instant, _ spend: SpendRequest, terms: SpendTerms = .strict, claim: IdempotencyClaim?,
        render: @escaping ResponseRenderer<SpendOutcome>, pricedWith fingerprint: String? = nil
    ) async throws -> StoredResponse {
        try await batcher.submit(orgID: orgID, PendingSpend(spend: spend, terms: terms, claim: claim, render: render, now: now,
                                                            fingerprint: fingerprint))
    }

    /// How many transactions spends have taken, how many spends, and the most organisations one
    /// transaction carried: batching at work.
    public var batchStatistics: (batches: Int, spends: Int, organisationsMaximum: Int) {
        get async { await batcher.statistics }
    }
}

/// Applies the queued spends of several organisations in one transaction: each organisation's
/// in arrival order, the organisations in lock order.
struct ApplySpends: Sendable {
    let database: Database
    let reservations: ReservationStore

    /// Thrown inside the transaction when a spend is short of credits but expired holds still
    /// keep some: it rolls back, the organisation's holds are freed in their own transaction, and
    /// the spends are applied once more.
    struct ExpiredHoldsPending: Error {
        let orgID: UUID
        let now: Instant
    }

    func run(_ groups: [OrgSpends]) async throws -> [[Result<StoredResponse, any Error>]] {
        var freed: Set<UUID> = []
        while true {
            do {
                return try await apply(groups, freed: freed)
            } catch let pending as ExpiredHoldsPending where !freed.contains(pending.orgID) {
                // Each organisation's holds are freed at most once: the loop ends.
                try await reservations.releaseExpired(.org(pending.orgID), at: pending.now)
                freed.insert(pending.orgID)
            }
        }
    }

    private func apply(_ groups: [OrgSpends], freed: Set<UUID>) async throws -> [[Result<StoredResponse, any Error>]] {
        let logger = database.logger
        // Every transaction locks organisation after organisation in PostgreSQL's order of their
        // ids (the order renewals use too), each organisation's buckets in burn-down order.
        let order = groups.indices.sorted { groups[$0].orgID.databaseOrder < groups[$1].orgID.databaseOrder }
        return try await database.transaction { connection in
            // 1. Claim the keys (the first spend with a key owns it) and lock the buckets, in one statement.
            var slots = groups.map { SpendSlots(count: $0.spends.count) }
            var claimAndLock = ClaimAndLockStatement()
            for g in order {
                let group = groups[g]
                slots[g].assignOwners(group.spends)
                for key in slots[g].owners.keys.sorted() {
                    let claim = group.spends[slots[g].owners[key]!].claim!
                    claimAndLock.claims.append(.init(orgID: group.orgID, key: key, hash: claim.requestHash, at: group.now))
                }
                claimAndLock.orgs.append((group.orgID, group.now))
            }
            let (claimed, buckets, fingerprints) = try await Self.claimAndLock(claimAndLock, on: connection, logger: logger)
            var replays: [(group: Int, key: String)] = []
            for g in order {
                for key in slots[g].owners.keys where !claimed.contains(OrgKey(orgID: groups[g].orgID, key: key)) { replays.append((g, key)) }
            }
            if !replays.isEmpty {
                let stored = try await Self.storedResponses(replays.map { OrgKey(orgID: groups[$0.group].orgID, key: $0.key) },
                                                            on: connection, logger: logger)
                for (g, key) in replays {
                    let index = slots[g].owners[key]!
                    guard let (hash, response) = stored[OrgKey(orgID: groups[g].orgID, key: key)] else {
                        throw TallyError(.unavailable, code: "unavailable", detail: "The idempotency key is being released; retry.")
                    }
                    slots[g].slots[index] = hash == groups[g].spends[index].claim!.requestHash ? .answered(response) : .conflict
                }
            }

            // A spend priced with a context that has changed since is not applied: it is priced
            // again (`SpendTermsChanged`). A key it claimed here goes back (nothing answers it).
            var unclaimed: [OrgKey] = []
            for g in order {
                let current = fingerprints[groups[g].orgID] ?? nil
                for (index, pending) in groups[g].spends.enumerated() {
                    guard let fingerprint = pending.fingerprint, fingerprint != current, slots[g].isUnanswered(index) else { continue }
                    slots[g].slots[index] = .termsChanged
                    if let key = pending.claim?.key, slots[g].owners[key] == index, claimed.contains(OrgKey(orgID: groups[g].orgID, key: key)) {
                        unclaimed.append(OrgKey(orgID: groups[g].orgID, key: key))
                    }
                }
            }
            if !unclaimed.isEmpty { try await Self.release(unclaimed, on: connection, logger: logger) }

            // 2. Plan every organisation's spends, in arrival order, against its running balance.
            var write = SpendWriteStatement()
            var extras: [LedgerWrite] = []
            for g in order {
                var planner = OrgSpendPlanner(orgID: groups[g].orgID, now: groups[g].now, buckets: buckets[groups[g].orgID] ?? [],
                                              mayFreeExpiredHolds: !freed.contains(groups[g].orgID))
                try await planner.plan(groups[g].spends, slots: &slots[g], into: &write, on: connection, logger: logger)
                extras.append(planner.extras)
            }
            // Extras first: a bucket a top-up creates exists before the spends that draw from it move it.
            for extra in extras { try await extra.execute(on: connection, logger: logger) }
            // Nothing to write when every spend was a replay, a conflict or priced again.
            if !write.isEmpty {
                let movedCount = try await connection.execute(write, logger: logger).reduce(0) { $0 + $1 }
                // Each bucket moves once, by the sum of its postings (LedgerRows.moves).
                try LedgerWriteMismatch.check(moved: movedCount, planned: write.rows.moves.count)
            }

            // 3. Answers, in arrival order.
            return slots.map { $0.answers() }
        }
    }

    private static func claimAndLock(_ statement: ClaimAndLockStatement, on connection: DatabaseConnection, logger: Logger) async throws
        -> (claimed: Set<OrgKey>, buckets: [UUID: [CreditBucket]], fingerprints: [UUID: String?]) {
        var claimed: Set<OrgKey> = []
        var buckets: [UUID: [CreditBucket]] = [:]
        var fingerprints: [UUID: String?] = [:]
        var first = true
        for try await row in try await connection.execute(statement, logger: logger) {
            let columns = row.makeRandomAccess()
            if first {
                first = false
                for (orgID, key) in zip(try columns[0].decode([UUID].self), try columns[1].decode([String].self)) {
                    claimed.insert(OrgKey(orgID: orgID, key: key))
                }
            }
            fingerprints[try columns[2].decode(UUID.self)] = try columns[11].decode(String?.self)
            guard try columns[3].decode(UUID?.self) != nil else { continue }
            buckets[try columns[2].decode(UUID.self), default: []].append(CreditBucket(
                id: try columns[3].decode(UUID.self),
                source: try StoredValue.decode(BucketSource.self, try columns[4].decode(String.self), column: "credit_buckets.source"),
                granted: try columns[5].decode(Credits.self), remaining: try columns[6].decode(Credits.self),
                priority: try columns[7].decode(Int.self), effectiveAt: try columns[8].decode(Instant.self),
                expiresAt: try columns[9].decode(Instant?.self), grantedAt: try columns[10].decode(Instant.self)
            ))
        }
        return (claimed, buckets, fingerprints)
    }

    /// Gives back keys claimed in this transaction whose spends are not applied in it.
    private static func release(_ keys: [OrgKey], on connection: DatabaseConnection, logger: Logger) async throws {
        try await connection.query("""
            DELETE FROM idempotency_keys AS i USING unnest(\(keys.map(\.orgID)), \(keys.map(\.key))) AS k (org_id, key)
            WHERE i.org_id = k.org_id AND i.idempotency_key = k.key AND i.status_code IS NULL
            """, logger: logger)
    }

    private static func storedResponses(_ keys: [OrgKey], on connection: DatabaseConnection, logger: Logger) async throws
        -> [OrgKey: (hash: [UInt8], response: StoredResponse)] {
        let rows = try await connection.query("""
            SELECT i.org_id, i.idempotency_key, i.request_hash, i.status_code, i.response_body
            FROM idempotency_keys i JOIN unnest(\(keys.map(\.orgID)), \(keys.map(\.key))) AS k (org_id, key)
              ON i.org_id = k.org_id AND i.idempotency_key = k.key
            """, logger: logger).collect()
        var stored: [OrgKey: (hash: [UInt8], response: StoredResponse)] = [:]
        for row in rows {
            let (orgID, key, hash, status, body) = try row.decode((UUID, String, ByteBuffer, Int?, ByteBuffer?).self)
            guard let status, let body else { continue }
            stored[OrgKey(orgID: orgID, key: key)] = (Array(hash.readableBytesView), StoredResponse(status: status, body: Array(body.readableBytesView), replayed: true))
        }
        return stored
    }
}

/// An idempotency key within its organisation.
struct OrgKey: Hashable {
    let orgID: UUID
    let key: String
}

extension UUID {
    /// PostgreSQL's order of `uuid` values: their bytes, most significant first.
    var databaseOrder: (UInt64, UInt64) {
        withUnsafeBytes(of: uuid) { raw in
            (UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)), UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }
}
