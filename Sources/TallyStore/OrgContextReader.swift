import Foundation
import NIOCore
import PostgresNIO
import TallyCore

/// Serves many requests' reads with one statement. Every request on an organisation starts
/// with its context (a balance read with its balance too); under load, one statement per
/// request was the largest per-request cost left once spends shared their transactions. At
/// most `readsMaximum` reads run at once; requests that arrive meanwhile queue, and the next
/// read carries all of them (up to `requestsPerRead`). No timer: alone, a request is read at
/// once. A queued request is never answered by a read that started before it arrived, so a
/// request sees every write that committed before it asked.
actor BatchedReader<Request: Sendable, Answer: Sendable> {
    static var readsMaximum: Int { 4 }
    static var requestsPerRead: Int { 256 }

    typealias Read = @Sendable ([Request]) async throws -> [Answer]

    private struct Waiter {
        let request: Request
        let continuation: CheckedContinuation<Answer, any Error>
    }

    private let readAll: Read
    private var queue = CircularBuffer<Waiter>()
    private var running = 0

    init(read: @escaping Read) {
        self.readAll = read
    }

    func read(_ request: Request) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            queue.append(Waiter(request: request, continuation: continuation))
            startReads()
        }
    }

    private func startReads() {
        while running < Self.readsMaximum, !queue.isEmpty {
            let count = min(queue.count, Self.requestsPerRead)
            let waiters = Array(queue.prefix(count))
            queue.removeFirst(count)
            running += 1
            let readAll = self.readAll
            Task {
                do {
                    let answers = try await readAll(waiters.map(\.request))
                    // Every waiter is answered, whatever a read returns: none may wait forever.
                    guard answers.count == waiters.count else { throw BatchedReadMismatch() }
                    for (waiter, answer) in zip(waiters, answers) { waiter.continuation.resume(returning: answer) }
                } catch {
                    for waiter in waiters { waiter.continuation.resume(throwing: error) }
                }
                self.finished()
            }
        }
    }

    private func finished() {
        running -= 1
        startReads()
    }
}

/// A batched read that answered a different number of requests than it was given: a bug.
struct BatchedReadMismatch: Error {}

/// Organisations' contexts, many requests per statement.
typealias OrgContextReader = BatchedReader<OrgContextsStatement.Request, OrgContext?>

/// `OrgContextStatement` for many (organisation, key) requests at once: one row per request that
/// names an existing organisation, with its position.
struct OrgContextsStatement: PostgresPreparedStatement {
    struct Request: Sendable {
        let orgID: UUID
        let idempotencyKey: String?
    }

    static let name = "tally.OrgContextsStatement"
    /// The single statement's columns over the requests. Every lookup is a LATERAL subquery with a
    /// LIMIT, so that each runs per request on its index: joined plainly, a generic plan matched
    /// the key in a join filter after reading all of the organisation's stored answers, and read
    /// every active subscription.
    static let sql: String = {
        let single = OrgContextStatement.sql
        let columns = single[..<(single.range(of: "FROM orgs o")?.lowerBound ?? single.endIndex)]
        return GenericPlan.arraysHidden(columns.replacingOccurrences(of: "SELECT o.org_id,", with: "SELECT r.n, o.org_id,") + """
            FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS r (org_id, key, n)
            JOIN orgs o ON o.org_id = r.org_id
            \(OrgContextFingerprint.sources(org: "o"))
            LEFT JOIN LATERAL (
                SELECT request_hash, status_code, response_body FROM idempotency_keys
                WHERE org_id = o.org_id AND idempotency_key = r.key AND status_code IS NOT NULL LIMIT 1
            ) AS k ON true
            """)
    }()
    typealias Row = (position: Int, context: OrgContext)

    let requests: [Request]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(requests.map(\.orgID))
        bindings.append(NullableArray(requests.map(\.idempotencyKey)))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let position = try row.makeRandomAccess()[0].decode(Int.self)
        return (position, try OrgContextStatement.decode(row, offset: 1))
    }

    /// Each request's context (nil for an organisation that does not exist), in request order.
    static func contexts(_ requests: [Request], on pool: DatabasePool, logger: Logger) async throws -> [OrgContext?] {
        var contexts = [OrgContext?](repeating: nil, count: requests.count)
        for row in try await pool.execute(OrgContextsStatement(requests: requests), logger: logger) {
            guard (1...requests.count).contains(row.position) else { continue }
            contexts[row.position - 1] = row.context
        }
        return contexts
    }
}
