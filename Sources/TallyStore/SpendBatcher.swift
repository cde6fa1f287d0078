import Foundation
import Metrics
import NIOCore
import TallyCore

/// Group commit across organisations. Spends queue by organisation; at most
/// `transactionsMaximum` spend transactions run at once, and each takes the queued spends of
/// every organisation that is waiting (up to `spendsPerOrganisationMaximum` of one organisation
/// and `spendsPerTransactionMaximum` in all), in the order the organisations started waiting.
/// Nobody waits for a timer: a spend waits at most for the transactions in flight and its own.
/// An organisation has at most one spend transaction in flight here, so its spends keep their
/// arrival order. Every spend keeps its own result, ledger entry and idempotency record, and no
/// answer is given before its commit.
actor SpendBatcher {
    static let spendsPerOrganisationMaximum = 64
    static let spendsPerTransactionMaximum = 256
    /// Spends one organisation may have queued; beyond it the service is overloaded (503).
    static let queueLengthMaximum = 10_000

    typealias Apply = @Sendable ([OrgSpends]) async throws -> [[Result<StoredResponse, any Error>]]

    private struct Waiter {
        let pending: PendingSpend
        let continuation: CheckedContinuation<StoredResponse, any Error>
    }

    private let apply: Apply
    private let transactionsMaximum: Int
    private var queues: [UUID: CircularBuffer<Waiter>] = [:]
    /// Organisations with queued spends and no transaction in flight, in the order they started waiting.
    private var ready = CircularBuffer<UUID>()
    private var inFlight: Set<UUID> = []
    private var running = 0
    private var batches = 0
    private var spends = 0
    private var widest = 0
    // Made on first use: after the metrics system is set up, not when the stores are.
    private lazy var batchCounter = Counter(label: "tally_consume_transactions")
    private lazy var spendCounter = Counter(label: "tally_consume_spends")

    init(transactionsMaximum: Int, apply: @escaping Apply) {
        self.transactionsMaximum = max(1, transactionsMaximum)
        self.apply = apply
    }

    /// Transactions, spends, and the most organisations one transaction carried.
    var statistics: (batches: Int, spends: Int, organisationsMaximum: Int) { (batches, spends, widest) }

    func submit(orgID: UUID, _ pending: PendingSpend) async throws -> StoredResponse {
        guard (queues[orgID]?.count ?? 0) < Self.queueLengthMaximum else {
            throw TallyError(.unavailable, code: "overloaded", detail: "Too many spends are waiting for this organisation; retry with the same Idempotency-Key.")
        }
        return try await withCheckedThrowingContinuation { continuation in
            let wasWaiting = !(queues[orgID]?.isEmpty ?? true)
            queues[orgID, default: []].append(Waiter(pending: pending, continuation: continuation))
            if !wasWaiting && !inFlight.contains(orgID) { ready.append(orgID) }
            startTransactions()
        }
    }

    private func startTransactions() {
        while running < transactionsMaximum, !ready.isEmpty {
            var groups: [OrgSpends] = []
            var waiters: [[Waiter]] = []
            var total = 0
            while total < Self.spendsPerTransactionMaximum, let orgID = ready.first {
                ready.removeFirst()
                var queue = queues.removeValue(forKey: orgID)!
                let count = min(queue.count, Self.spendsPerOrganisationMaximum, Self.spendsPerTransactionMaximum - total)
                let taken = Array(queue.prefix(count))
                queue.removeFirst(count)
                if !queue.isEmpty { queues[orgID] = queue }
                inFlight.insert(orgID)
                groups.append(OrgSpends(orgID: orgID, spends: taken.map(\.pending)))
                waiters.append(taken)
                total += count
            }
            running += 1
            batches += 1
            spends += total
            widest = max(widest, groups.count)
            batchCounter.increment()
            spendCounter.increment(by: total)
            let apply = self.apply
            let (taken, waiting) = (groups, waiters)
            Task {
                let results = await Self.run(apply, taken)
                for (group, outcomes) in zip(waiting, results) {
                    for (waiter, outcome) in zip(group, outcomes) { waiter.continuation.resume(with: outcome) }
                }
                self.finished(taken.map(\.orgID))
            }
        }
    }

    private func finished(_ orgIDs: [UUID]) {
        running -= 1
        for orgID in orgIDs {
            inFlight.remove(orgID)
            if queues[orgID] != nil { ready.append(orgID) }
        }
        startTransactions()
    }

    /// The spends in one transaction. If that fails for a reason other than a spend's own answer
    /// (a deadlock, a period that moved on, a broken invariant), each organisation is tried
    /// alone, and an organisation's spends each alone, so that one spend's failure never fails
    /// its neighbours. When the database itself is away, everything fails at once (503): trying
    /// again piece by piece would only hold the queue longer.
    private static func run(_ apply: Apply, _ groups: [OrgSpends]) async -> [[Result<StoredResponse, any Error>]] {
        do {
            return try await apply(groups)
        } catch {
            let count = groups.reduce(0) { $0 + $1.spends.count }
            guard count > 1, !DatabaseUnavailable.isConnectionLoss(error) else {
                return groups.map { $0.spends.map { _ in .failure(error) } }
            }
            if groups.count > 1 {
                var results: [[Result<StoredResponse, any Error>]] = []
                for group in groups { results += await run(apply, [group]) }
                return results
            }
            var results: [Result<StoredResponse, any Error>] = []
            for pending in groups[0].spends {
                do {
                    results.append(try await apply([OrgSpends(orgID: groups[0].orgID, spends: [pending])])[0][0])
                } catch {
                    results.append(.failure(error))
                }
            }
            return [results]
        }
    }
}
