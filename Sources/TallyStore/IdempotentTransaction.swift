import Crypto
import Foundation
import Logging
import NIOCore
import PostgresNIO
import TallyCore

/// An `Idempotency-Key` and the hash of the request it came with.
extension TallyError {
    /// The Idempotency-Key was first used with another request (method, path or body).
    public static var idempotencyConflict: TallyError {
        .conflict("idempotency_conflict", "This Idempotency-Key was already used with a different request.")
    }
}

public struct IdempotencyClaim: Sendable {
    public let key: String
    public let requestHash: [UInt8]

    public init(key: String, requestHash: [UInt8]) {
        self.key = key
        self.requestHash = requestHash
    }
}

/// A response as first sent: replays send these exact bytes again.
public struct StoredResponse: Sendable, Equatable {
    public let status: Int
    public let body: [UInt8]
    /// True when this is the replay of an earlier request with the same key.
    public let replayed: Bool

    public init(status: Int, body: [UInt8], replayed: Bool) {
        self.status = status
        self.body = body
        self.replayed = replayed
    }
}

/// Turns a use case's result (or its user-facing failure) into the response bytes to send and
/// keep. Supplied by the HTTP layer, so the store records exactly what the client receives.
public typealias ResponseRenderer<Value> = @Sendable (Result<Value, TallyError>) throws -> (status: Int, body: [UInt8])

extension Database {
    /// Runs one credit-moving use case in one transaction, exactly once per idempotency key.
    ///
    /// The key is claimed first (`INSERT ... ON CONFLICT DO NOTHING`): a concurrent duplicate
    /// waits on the unique index until the first commits, then finds its response and replays
    /// it. `body` reads and locks what it needs and returns its result with the ledger write;
    /// the write and the stored response go to the database in one statement. A `TallyError`
    /// from `body` (such as 402) is a response too: with a key it is recorded and replayed.
    func idempotentTransaction<Value: Sendable>(
        orgID: UUID,
        claim: IdempotencyClaim?,
        at now: Instant,
        render: ResponseRenderer<Value>,
        _ body: (DatabaseConnection) async throws -> (Value, LedgerWrite)
    ) async throws -> StoredResponse {
        try await transaction { connection in
            if let claim, let replay = try await self.claimKey(claim, orgID: orgID, at: now, on: connection) {
                return replay
            }
            let outcome: Result<(Value, LedgerWrite), TallyError>
            do {
                outcome = .success(try await body(connection))
            } catch let error as TallyError {
                // A transient failure (503) stores nothing: the retry does the work.
                guard claim != nil, error.kind != .unavailable else { throw error }
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let (value, write)):
                let (status, bytes) = try render(.success(value))
                var write = write
                if let claim {
                    write.with { sql in Self.recordResponse(claim, orgID: orgID, status: status, bytes: bytes, sql: &sql) }
                }
                try await write.execute(on: connection, logger: logger)
                return StoredResponse(status: status, body: bytes, replayed: false)
            case .failure(let error):
                let (status, bytes) = try render(.failure(error))
                var write = LedgerWrite(orgID: orgID)
                if let claim {
                    write.with { sql in Self.recordResponse(claim, orgID: orgID, status: status, bytes: bytes, sql: &sql) }
                }
                try await write.execute(on: connection, logger: logger)
                return StoredResponse(status: status, body: bytes, replayed: false)
            }
        }
    }

    /// Runs a use case that writes with its own statements (subscribe, change, cancel) in one
    /// transaction, exactly once per idempotency key. A `TallyError` from `body` rolls back to a
    /// savepoint taken after the claim and is recorded as the answer, as in `idempotentTransaction`.
    /// Returns the answer and, when this request did the work, its value.
    func idempotentWork<Value: Sendable>(
        orgID: UUID,
        claim: IdempotencyClaim?,
        at now: Instant,
        render: ResponseRenderer<Value>,
        _ body: (DatabaseConnection) async throws -> Value
    ) async throws -> (StoredResponse, Value?) {
        try await transaction { connection in
            guard let claim else {
                let value = try await body(connection)
                let (status, bytes) = try render(.success(value))
                return (StoredResponse(status: status, body: bytes, replayed: false), value)
            }
            if let replay = try await self.claimKey(claim, orgID: orgID, at: now, on: connection) {
                return (replay, nil)
            }
            try await connection.query("SAVEPOINT work", logger: logger)
            let value: Value
            do {
                value = try await body(connection)
            } catch let error as TallyError where error.kind != .unavailable {
                try await connection.query("ROLLBACK TO SAVEPOINT work", logger: logger)
                let (status, bytes) = try render(.failure(error))
                try await record(claim, orgID: orgID, status: status, bytes: bytes, on: connection)
                return (StoredResponse(status: status, body: bytes, replayed: false), nil)
            }
            let (status, bytes) = try render(.success(value))
            try await record(claim, orgID: orgID, status: status, bytes: bytes, on: connection)
            return (StoredResponse(status: status, body: bytes, replayed: false), value)
        }
    }

    /// Stores (or, for work finished after the transaction, replaces) the answer under a key.
    func record(_ claim: IdempotencyClaim, orgID: UUID, status: Int, bytes: [UInt8], on connection: DatabaseConnection) async throws {
        var sql = BoundSQL()
        let text = Self.recordResponse(claim, orgID: orgID, status: status, bytes: bytes, sql: &sql)
        try await connection.query(sql.query(text), logger: logger)
    }

    /// Claims the key, or returns the stored response of the request that claimed it first.
    private func claimKey(_ claim: IdempotencyClaim, orgID: UUID, at now: Instant, on connection: DatabaseConnection) async throws -> StoredResponse? {
        let hash = ByteBuffer(bytes: claim.requestHash)
        let inserted = try await connection.query("""
            INSERT INTO idempotency_keys (org_id, idempotency_key, request_hash, created_at)
            VALUES (\(orgID), \(claim.key), \(hash), \(now))
            ON CONFLICT DO NOTHING RETURNING 1
            """, logger: logger).collect()
        guard inserted.isEmpty else { return nil }
        let rows = try await connection.query("""
            SELECT request_hash, status_code, response_body FROM idempotency_keys
            WHERE org_id = \(orgID) AND idempotency_key = \(claim.key)
            """, logger: logger).collect()
        guard let row = rows.first else {
            throw TallyError(.unavailable, code: "unavailable", detail: "The idempotency key is being released; retry.")
        }
        let (storedHash, status, body) = try row.decode((ByteBuffer, Int?, ByteBuffer?).self)
        guard Array(storedHash.readableBytesView) == claim.requestHash else {
            throw TallyError.idempotencyConflict
        }
        guard let status, let body else {
            throw TallyError(.unavailable, code: "unavailable", detail: "The first request with this Idempotency-Key is still in progress; retry.")
        }
        return StoredResponse(status: status, body: Array(body.readableBytesView), replayed: true)
    }

    private static func recordResponse(_ claim: IdempotencyClaim, orgID: UUID, status: Int, bytes: [UInt8], sql: inout BoundSQL) -> String {
        """
        UPDATE idempotency_keys SET status_code = \(sql.bind(status)), response_body = \(sql.bind(ByteBuffer(bytes: bytes)))
        WHERE org_id = \(sql.bind(orgID)) AND idempotency_key = \(sql.bind(claim.key))
        """
    }
}

extension IdempotencyClaim {
    /// The claim of a request: its key and the SHA-256 of its method, path and canonical body,
    /// so that the same JSON with members in another order is the same request.
    public static func make(key: String, method: String, path: String, canonicalBody: [UInt8]) -> IdempotencyClaim {
        var hasher = SHA256()
        hasher.update(data: Array("\(method) \(path)\n".utf8))
        hasher.update(data: canonicalBody)
        return IdempotencyClaim(key: key, requestHash: Array(hasher.finalize()))
    }
}
