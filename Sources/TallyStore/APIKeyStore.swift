import Crypto
import Foundation
import Logging
import PostgresNIO
import TallyCore

/// The secret part of keys: how they are made and how they are recognised.
public enum KeyMaterial {
    /// Keys look like `tly_` followed by 43 base-62 characters (256 bits of randomness).
    public static let scheme = "tly_"
    static let randomLength = 43
    /// The visible part stored beside the hash: the scheme and the first 8 random characters.
    static let prefixLength = 12

    public static func generate() -> (secret: String, prefix: String) {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        var generator = SystemRandomNumberGenerator()
        let random = String((0..<randomLength).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
        let secret = scheme + random
        return (secret, String(secret.prefix(prefixLength)))
    }

    /// SHA-256 of the key. Keys carry 256 random bits, so an unsalted hash cannot be brute-forced.
    public static func hash(_ secret: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(secret.utf8)))
    }

    /// Compares two hashes in time independent of where they differ.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}

/// Who a presented key belongs to.
public struct AuthenticatedKey: Sendable, Equatable {
    public let keyID: UUID?
    public let orgID: UUID?
    public let role: KeyRole
    /// The key's public prefix ("platform" for the operator's key).
    public let prefix: String

    public init(keyID: UUID?, orgID: UUID?, role: KeyRole, prefix: String) {
        self.keyID = keyID
        self.orgID = orgID
        self.role = role
        self.prefix = prefix
    }

    /// What the ledger records of this key.
    public var stamp: KeyStamp { KeyStamp(id: keyID, prefix: prefix) }
}

public struct APIKeyStore: Sendable {
    let database: Database
    /// Keys recognised lately, kept while revocations are followed (see `APIKeyCache`).
    public let cache = APIKeyCache()

    public init(database: Database) {
        self.database = database
    }

    /// Creates a key and returns it with its secret, which is not stored and cannot be shown again.
    public func create(orgID: UUID?, name: String, role: KeyRole, at now: Instant) async throws -> (key: APIKey, secret: String) {
        precondition((role == .platform) == (orgID == nil), "platform keys have no organisation; others have one")
        let (secret, prefix) = KeyMaterial.generate()
        let key = APIKey(id: .v7(at: now), orgID: orgID, name: name, role: role, prefix: prefix, createdAt: now, revokedAt: nil)
        let hash = ByteBuffer(bytes: KeyMaterial.hash(secret))
        try await database.pool.query("""
            INSERT INTO api_keys (key_id, org_id, name, role, prefix, key_hash, created_at)
            VALUES (\(key.id), \(orgID), \(name), \(role.rawValue), \(prefix), \(hash), \(now))
            """, logger: database.logger)
        return (key, secret)
    }

    /// The organisation's live keys, oldest first.
    public func list(orgID: UUID, limit: Int, after cursor: UUID?) async throws -> Page<APIKey> {
        let rows = try await database.pool.query("""
            SELECT key_id, name, role, prefix, created_at FROM api_keys
            WHERE org_id = \(orgID) AND revoked_at IS NULL AND (\(cursor)::uuid IS NULL OR key_id > \(cursor))
            ORDER BY key_id LIMIT \(limit + 1)
            """, logger: database.logger)
        var keys: [APIKey] = []
        for try await (id, name, role, prefix, createdAt) in rows.decode((UUID, String, String, String, Instant).self) {
            keys.append(APIKey(id: id, orgID: orgID, name: name, role: try StoredValue.decode(KeyRole.self, role, column: "api_keys.role"),
                               prefix: prefix, createdAt: createdAt, revokedAt: nil))
        }
        let hasMore = keys.count > limit
        if hasMore { keys.removeLast() }
        return Page(items: keys, nextCursor: hasMore ? keys.last?.id.idString : nil)
    }

    /// Revokes at once: the key fails on its next request. False when there is no such live key.
    public func revoke(orgID: UUID, keyID: UUID, at now: Instant) async throws -> Bool {
        let rows = try await database.pool.query("""
            UPDATE api_keys SET revoked_at = \(now)
            WHERE org_id = \(orgID) AND key_id = \(keyID) AND revoked_at IS NULL
            RETURNING key_hash
            """, logger: database.logger)
        for try await hash in rows.decode(ByteBuffer.self) {
            // This replica forgets the key before it answers; the others on the announcement.
            cache.forget(Array(hash.readableBytesView))
            return true
        }
        return false
    }

    /// The live key with this secret, if any.
    /// `hash` is the secret's, when the caller has it already.
    public func authenticate(secret: String, hash: [UInt8]? = nil) async throws -> AuthenticatedKey? {
        guard secret.hasPrefix(KeyMaterial.scheme), secret.utf8.count <= 128 else { return nil }
        let digest = hash ?? KeyMaterial.hash(secret)
        if let known = cache.lookup(digest) { return known }
        let generation = cache.generation()
        let rows = try await database.pool.query("""
            SELECT key_id, org_id, role, prefix FROM api_keys WHERE key_hash = \(ByteBuffer(bytes: digest)) AND revoked_at IS NULL
            """, logger: database.logger)
        for try await (keyID, orgID, role, prefix) in rows.decode((UUID, UUID?, String, String).self) {
            guard let role = KeyRole(rawValue: role) else { return nil }
            let key = AuthenticatedKey(keyID: keyID, orgID: orgID, role: role, prefix: prefix)
            if let generation { cache.store(key, hash: digest, generation: generation) }
            return key
        }
        return nil
    }
}
