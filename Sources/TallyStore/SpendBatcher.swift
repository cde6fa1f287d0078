import Foundation
import Metrics
import TallyCore

/// Group commit for hot organisations: while one transaction spends an organisation's credits,
/// further spends of that organisation queue; when it commits, the queue (up to
/// `batchSizeMaximum`) goes in the next transaction. Nobody waits for a timer: a spend waits at
/// most for the transaction in flight and its own. Every spend keeps its own result, ledger
/// entry and idempotency record, in arrival order, and no answer is given before its commit.
actor SpendBatcher {
    static let batchSizeMaximum = 64
    /// Spends one organisation may have queued; beyond it the service is overloaded (503).
    static let queueLengthMaximum = 10_000

    typealias Apply = @Sendable (UUID, [PendingSpend]) async throws -> [StoredResponse]

    private struct Waiter {
        let pending: PendingSpend
        let continuation: CheckedContinuation<StoredResponse, any Error>
    }

    private let apply: Apply
    private var queues: [UUID: [Waiter]] = [:]
    private var inFlight: Set<UUID> = []
    private var batches = 0
    private var spends = 0
    // Made on first use: after the metrics system is set up, not when the stores are.
    private lazy var batchCounter = Counter(label: "tally_consume_transactions")
    private lazy var spendCounter = Counter(label: "tally_consume_spends")

    init(apply: @escaping Apply) {
        self.apply = apply
    }

    var statistics: (batches: Int, spends: Int) { (batches, spends) }

    func submit(orgID: UUID, _ pending: PendingSpend) async throws -> StoredResponse {
        guard (queues[orgID]?.count ?? 0) < Self.queueLengthMaximum else {
            throw TallyError(.unavailable, code: "overloaded", detail: "Too many spends are waiting for this organisation; retry with the same Idempotency-Key.")
        }
        return try await withCheckedThrowingContinuation { continuation in
            queues[orgID, default: []].append(Waiter(pending: pending, continuation: continuation))
            if !inFlight.contains(orgID) {
                inFlight.insert(orgID)
                startNextBatch(orgID)
            }
        }
    }

    private func startNextBatch(_ orgID: UUID) {
        guard let queue = queues[orgID], !queue.isEmpty else {
            queues[orgID] = nil
            inFlight.remove(orgID)
            return
        }
        let batch = Array(queue.prefix(Self.batchSizeMaximum))
        queues[orgID] = Array(queue.dropFirst(Self.batchSizeMaximum))
        batches += 1
        spends += batch.count
        batchCounter.increment()
        spendCounter.increment(by: batch.count)
        let apply = self.apply
        Task {
            let results = await Self.run(apply, orgID: orgID, batch.map(\.pending))
            for (waiter, result) in zip(batch, results) { waiter.continuation.resume(with: result) }
            self.startNextBatch(orgID)
        }
    }

    /// The batch in one transaction; if that fails for a reason other than a spend's own answer,
    /// each spend is tried alone, so that one spend's failure never fails its neighbours. When
    /// the database itself is away, the whole batch fails at once (503): retrying each spend
    /// alone would only hold the queue longer. Either way the batch ends, and the next one starts.
    private static func run(_ apply: Apply, orgID: UUID, _ batch: [PendingSpend]) async -> [Result<StoredResponse, any Error>] {
        do {
            return try await apply(orgID, batch).map { .success($0) }
        } catch {
            guard batch.count > 1, !DatabaseUnavailable.isConnectionLoss(error) else {
                return batch.map { _ in .failure(error) }
            }
            var results: [Result<StoredResponse, any Error>] = []
            for pending in batch {
                do {
                    results.append(.success(try await apply(orgID, [pending])[0]))
                } catch {
                    results.append(.failure(error))
                }
            }
            return results
        }
    }
}
