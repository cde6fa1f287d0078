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

    public init(spend: SpendRequest, terms: SpendTerms, claim: IdempotencyClaim?, render: @escaping ResponseRenderer<SpendOutcome>, now: Instant) {
        // Stamped here, in the request's own task: the batch that writes it may run in another's.
        var spend = spend
        if spend.usage.key == nil { spend.usage.key = KeyStamp.current }
        self.spend = spend
        self.terms = terms
        self.claim = claim
        self.render = render
        self.now = now
    }
}

/// Consumption: spends credits atomically, exactly once, never below zero. Concurrent spends of
/// one organisation are applied together (see `SpendBatcher`), each with its own result.
public struct ConsumptionStore: Sendable {
    let database: Database
    let reservations: ReservationStore
    let batcher: SpendBatcher

    init(database: Database, reservations: ReservationStore) {
        self.database = database
        self.reservations = reservations
        let apply = ApplySpends(database: database, reservations: reservations)
        self.batcher = SpendBatcher(apply: { orgID, spends in try await apply.run(orgID: orgID, spends) })
    }

    /// Spends `spend.credits` now. `terms` say what the organisation allows beyond its credits
    /// (overage at the plan's rate, up to a cap) and whether a low balance buys a pack.
    public func consume(
        orgID: UUID, at now: Instant, _ spend: SpendRequest, terms: SpendTerms = .strict, claim: IdempotencyClaim?,
        render: @escaping ResponseRenderer<SpendOutcome>
    ) async throws -> StoredResponse {
        try await batcher.submit(orgID: orgID, PendingSpend(spend: spend, terms: terms, claim: claim, render: render, now: now))
    }

    /// How many transactions spends have taken, and how many spends: batching at work.
    public var batchStatistics: (batches: Int, spends: Int) {
        get async { await batcher.statistics }
    }
}

/// Applies a batch of one organisation's spends in one transaction, in arrival order.
struct ApplySpends: Sendable {
    let database: Database
    let reservations: ReservationStore

    /// Thrown inside the transaction when a spend is short of credits but expired holds still
    /// keep some: it rolls back, the holds are freed in their own transaction, and the batch is
    /// applied once more.
    struct ExpiredHoldsPending: Error {}

    func run(orgID: UUID, _ spends: [PendingSpend]) async throws -> [StoredResponse] {
        do {
            return try await apply(orgID: orgID, spends, mayFreeExpiredHolds: true)
        } catch is ExpiredHoldsPending {
            try await reservations.releaseExpired(.org(orgID), at: spends.map(\.now).max()!)
            return try await apply(orgID: orgID, spends, mayFreeExpiredHolds: false)
        }
    }

    private enum Slot {
        case pending
        case answered(StoredResponse)
        /// Same key as an earlier spend of the batch: its answer, or a conflict.
        case sameAs(Int)
        case conflict
    }

    private func apply(orgID: UUID, _ spends: [PendingSpend], mayFreeExpiredHolds: Bool) async throws -> [StoredResponse] {
        let logger = database.logger
        let now = spends.map(\.now).max()!
        return try await database.transaction { connection in
            // 1. Claim the keys (the first spend with a key owns it) and lock the buckets, in one statement.
            var slots = [Slot](repeating: .pending, count: spends.count)
            var owners: [String: Int] = [:]
            for (index, pending) in spends.enumerated() {
                guard let claim = pending.claim else { continue }
                if let owner = owners[claim.key] {
                    slots[index] = spends[owner].claim!.requestHash == claim.requestHash ? .sameAs(owner) : .conflict
                } else {
                    owners[claim.key] = index
                }
            }
            let (claimed, buckets) = try await claimAndLock(orgID: orgID, claims: owners.keys.sorted().map { spends[owners[$0]!].claim! },
                                                            at: now, on: connection, logger: logger)
            let replays = owners.filter { !claimed.contains($0.key) }
            if !replays.isEmpty {
                let stored = try await storedResponses(orgID: orgID, keys: Array(replays.keys), on: connection, logger: logger)
                for (key, index) in replays {
                    guard let (hash, response) = stored[key] else {
                        throw TallyError(.unavailable, code: "unavailable", detail: "The idempotency key is being released; retry.")
                    }
                    slots[index] = hash == spends[index].claim!.requestHash ? .answered(response) : .conflict
                }
            }

            // 2. Plan every spend, in arrival order, against the running balance.
            var balance = SpendableBalance(buckets: buckets, at: now)
            let availableBefore = balance.available
            var write = SpendWriteStatement(orgID: orgID, now: now, month: CalendarMonth(containing: now, in: spends[0].terms.timezone))
            var extras = LedgerWrite(orgID: orgID, key: nil)    // what only some batches need: top-ups (automatic), events
            var overageInBatch = Credits.zero
            var lastTerms: SpendTerms?
            var toppedUp = false
            for index in spends.indices {
                guard case .pending = slots[index] else { continue }
                let pending = spends[index]
                let result: Result<SpendOutcome, TallyError>
                let entryID = UUID.v7(at: now)
                do {
                    var plan: BurnDownPlan
                    do {
                        plan = pending.spend.credits.isZero ? .nothing : try balance.spend(pending.spend.credits)
                    } catch {
                        if mayFreeExpiredHolds, try await ReservationStore.hasExpiredHolds(orgID: orgID, at: now, on: connection, logger: logger) {
                            throw ExpiredHoldsPending()
                        }
                        if pending.terms.overage == nil, !toppedUp, let autoTopUp = pending.terms.autoTopUp,
                           let bought = try await PurchaseStore.autoTopUp(autoTopUp, cause: .shortfall, orgID: orgID, triggeredBy: entryID,
                                                                         at: now, into: &extras, on: connection, logger: logger) {
                            // Auto top-up saves the spend it would refuse: the pack first (once, under the
                            // hourly claim), then the spend; still short, it is refused as before.
                            toppedUp = true
                            balance.add(Self.bucket(of: bought, at: now), at: now)
                            plan = try balance.spend(pending.spend.credits)
                        } else {
                            guard let overage = pending.terms.overage, let period = pending.terms.period else { throw error }
                            let incurred = try await PeriodBilling.lockOverageIncurred(period, orgID: orgID, on: connection, logger: logger) + overageInBatch
                            try OverageRules.check(needed: pending.spend.credits - balance.available, incurred: incurred, cap: overage.capCredits)
                            plan = try balance.spend(pending.spend.credits, allowOverage: true)
                        }
                    }
                    var invoiceID: UUID?
                    if plan.overage.isPositive, let overage = pending.terms.overage, let period = pending.terms.period {
                        invoiceID = try await PeriodBilling.accumulateOverage(plan.overage, rate: overage.rate, period: period, orgID: orgID,
                                                                             at: now, on: connection, logger: logger)
                        overageInBatch += plan.overage
                    }
                    write.entries.append(.init(id: entryID, credits: -plan.covered, overage: plan.overage, usage: pending.spend.usage, invoiceID: invoiceID))
                    write.postings += plan.draws.map { (entryID, $0.bucketID, -$0.credits) }
                    write.credits += pending.spend.credits
                    write.overage += plan.overage
                    write.transactions += 1
                    lastTerms = pending.terms
                    if !toppedUp, let autoTopUp = pending.terms.autoTopUp,
                       let bought = try await PurchaseStore.autoTopUp(autoTopUp, cause: .balance(balance.available), orgID: orgID, triggeredBy: entryID,
                                                                     at: now, into: &extras, on: connection, logger: logger) {
                        toppedUp = true
                        balance.add(Self.bucket(of: bought, at: now), at: now)
                    }
                    result = .success(SpendOutcome(entryID: entryID, credits: pending.spend.credits, overageCredits: plan.overage,
                                                   availableAfter: balance.available, drawn: plan.draws, createdAt: now))
                } catch let error as TallyError {
                    guard pending.claim != nil else { throw error }
                    result = .failure(error)
                }
                let (status, body) = try pending.render(result)
                slots[index] = .answered(StoredResponse(status: status, body: body, replayed: false))
                if let claim = pending.claim { write.answers.append((claim.key, status, body)) }
            }
            if let terms = lastTerms {
                write.period = terms.period
                write.thresholds = terms.alertThresholdsPercent
                if let low = terms.lowBalanceCredits, availableBefore >= low, balance.available < low {
                    extras.emit(.balanceLow, data: .object([("available", .text(balance.available)), ("threshold", .text(low))]), at: now)
                }
            }
            // Each bucket moves once, by the sum of its postings.
            var deltas: [UUID: Credits] = [:]
            for posting in write.postings { deltas[posting.bucketID, default: .zero] += posting.credits }
            write.moved = deltas.filter { !$0.value.isZero }.map { ($0.key, $0.value) }
            // Extras first: a bucket a top-up creates exists before the spends that draw from it move it.
            try await extras.execute(on: connection, logger: logger)
            let movedCount = try await connection.execute(write, logger: logger).reduce(0) { $0 + $1 }
            try LedgerWriteMismatch.check(moved: movedCount, planned: write.moved.count)

            // 3. Answers, in arrival order.
            return try slots.map { slot -> StoredResponse in
                switch slot {
                case .answered(let response): return response
                case .sameAs(let owner):
                    guard case .answered(let response) = slots[owner] else { preconditionFailure("an owner is answered first") }
                    return StoredResponse(status: response.status, body: response.body, replayed: true)
                case .conflict: throw TallyError.idempotencyConflict
                case .pending: preconditionFailure("every spend is answered")
                }
            }
        }
    }

    /// The bucket a top-up bought, as the running balance of the batch sees it.
    private static func bucket(of bought: PurchaseOutcome, at now: Instant) -> CreditBucket {
        CreditBucket(id: bought.bucketID, source: .purchase, granted: bought.credits, remaining: bought.credits,
                     priority: BucketSource.purchase.defaultPriority, effectiveAt: now, expiresAt: bought.expiresAt, grantedAt: now)
    }

    private func claimAndLock(orgID: UUID, claims: [IdempotencyClaim], at now: Instant, on connection: DatabaseConnection,
                              logger: Logger) async throws -> (claimed: Set<String>, buckets: [CreditBucket]) {
        let statement = ClaimAndLockStatement(orgID: orgID, now: now, keys: claims.map(\.key),
                                              hashes: claims.map { ByteBuffer(bytes: $0.requestHash) })
        var claimed: Set<String> = []
        var buckets: [CreditBucket] = []
        for try await row in try await connection.execute(statement, logger: logger) {
            let columns = row.makeRandomAccess()
            claimed = Set(try columns[0].decode([String].self))
            guard try columns[1].decode(UUID?.self) != nil else { continue }
            buckets.append(CreditBucket(
                id: try columns[1].decode(UUID.self), source: try StoredValue.decode(BucketSource.self, try columns[2].decode(String.self), column: "credit_buckets.source"),
                granted: try columns[3].decode(Credits.self), remaining: try columns[4].decode(Credits.self),
                priority: try columns[5].decode(Int.self), effectiveAt: try columns[6].decode(Instant.self),
                expiresAt: try columns[7].decode(Instant?.self), grantedAt: try columns[8].decode(Instant.self)
            ))
        }
        return (claimed, buckets)
    }

    private func storedResponses(orgID: UUID, keys: [String], on connection: DatabaseConnection, logger: Logger) async throws
        -> [String: (hash: [UInt8], response: StoredResponse)] {
        let rows = try await connection.query("""
            SELECT idempotency_key, request_hash, status_code, response_body FROM idempotency_keys
            WHERE org_id = \(orgID) AND idempotency_key = ANY(\(keys))
            """, logger: logger).collect()
        var stored: [String: (hash: [UInt8], response: StoredResponse)] = [:]
        for row in rows {
            let (key, hash, status, body) = try row.decode((String, ByteBuffer, Int?, ByteBuffer?).self)
            guard let status, let body else { continue }
            stored[key] = (Array(hash.readableBytesView), StoredResponse(status: status, body: Array(body.readableBytesView), replayed: true))
        }
        return stored
    }
}
