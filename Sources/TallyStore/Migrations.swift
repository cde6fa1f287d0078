import Crypto
import Foundation
import Logging
import PostgresNIO
import TallyCore

/// One numbered SQL file of `sql/`, e.g. `0002_credit_ledger.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    public var checksum: String {
        Hex.lowercase(SHA256.hash(data: Data(sql.utf8)))
    }

    /// Reads `NNNN_name.sql` files in version order. Two files with one number are refused.
    public static func load(from directory: URL) throws -> [Migration] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
        return try parse(names.map { ($0, try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8)) })
    }

    /// The same rules over (file name, SQL text) pairs: what the binary carries (`TallyResources`).
    public static func parse(_ files: [(name: String, sql: String)]) throws -> [Migration] {
        var migrations: [Migration] = []
        for (name, sql) in files where name.hasSuffix(".sql") {
            let stem = name.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]), version > 0 else {
                throw MigrationError.badFileName(name)
            }
            migrations.append(Migration(version: version, name: String(stem), sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (a, b) in zip(migrations, migrations.dropFirst()) where a.version == b.version {
            throw MigrationError.duplicateVersion(a.version)
        }
        return migrations
    }
}

public enum MigrationError: Error, CustomStringConvertible, Equatable {
    case badFileName(String)
    case duplicateVersion(Int)
    case checksumMismatch(version: Int, name: String)
    case unknownApplied(version: Int, name: String)

    public var description: String {
        switch self {
        case .badFileName(let name):
            "migration file '\(name)' is not named NNNN_description.sql"
        case .duplicateVersion(let version):
            "two migration files have version \(version)"
        case .checksumMismatch(let version, let name):
            "migration \(version) (\(name)) was changed after it was applied; migrations are forward-only: add a new file instead"
        case .unknownApplied(let version, let name):
            "the database has migration \(version) (\(name)) applied, which is not in sql/: this binary is older than the schema"
        }
    }
}

/// Applies pending migrations in order, each once, in its own transaction, under an advisory
/// lock so that replicas starting together take turns instead of racing.
public struct MigrationRunner: Sendable {
    /// The advisory lock key: "tally" in ASCII, an arbitrary constant shared by every replica.
    static let advisoryLockKey: Int64 = 0x74_61_6C_6C_79

    public let pool: DatabasePool
    public let logger: Logger

    public init(pool: DatabasePool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Returns the versions applied by this call.
    @discardableResult
    public func apply(_ migrations: [Migration]) async throws -> [Int] {
        if pool.settings.pooler == .transaction {
            // Through a transaction pooler a session lock would not hold across transactions: one
            // transaction takes a transaction-level lock and applies everything.
            return try await pool.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                do {
                    try await connection.query("SELECT pg_advisory_xact_lock(\(Self.advisoryLockKey))", logger: logger)
                    let applied = try await applyLocked(migrations, on: connection, inTransaction: true)
                    try await connection.query("COMMIT", logger: logger)
                    return applied
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
        return try await pool.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.advisoryLockKey))", logger: logger)
            do {
                let applied = try await applyLocked(migrations, on: connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                throw error
            }
        }
    }

    private func applyLocked(_ migrations: [Migration], on connection: DatabaseConnection, inTransaction: Bool = false) async throws -> [Int] {
        // The bookkeeping table is the one table the runner creates itself, once, under the lock.
        let exists = try await connection.query(
            "SELECT to_regclass('public.schema_migrations') IS NOT NULL", logger: logger
        ).collect().first?.decode(Bool.self) ?? false
        if !exists {
            try await connection.query("""
                CREATE TABLE schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
        }
        var done: [Int: (name: String, checksum: String)] = [:]
        for try await (version, name, checksum) in try await connection.query(
            "SELECT version, name, checksum FROM schema_migrations", logger: logger
        ).decode((Int, String, String).self) {
            done[version] = (name, checksum)
        }
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (version, record) in done where known[version] == nil {
            throw MigrationError.unknownApplied(version: version, name: record.name)
        }
        var applied: [Int] = []
        for migration in migrations {
            if let record = done[migration.version] {
                guard record.checksum == migration.checksum else {
                    throw MigrationError.checksumMismatch(version: migration.version, name: migration.name)
                }
                continue
            }
            if !inTransaction { try await connection.query("BEGIN", logger: logger) }
            do {
                for statement in SQLScript.statements(migration.sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("""
                    INSERT INTO schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """, logger: logger)
                if !inTransaction { try await connection.query("COMMIT", logger: logger) }
            } catch {
                if !inTransaction { _ = try? await connection.query("ROLLBACK", logger: logger) }
                throw error
            }
            logger.info("migration applied", metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }

    /// True when every migration is applied with a matching checksum: what `/readyz` reports.
    public func isCurrent(_ migrations: [Migration]) async throws -> Bool {
        let exists = try await pool.query(
            "SELECT to_regclass('public.schema_migrations') IS NOT NULL", logger: logger
        ).collect().first?.decode(Bool.self) ?? false
        guard exists else { return false }
        let rows = try await pool.query("SELECT version, checksum FROM schema_migrations", logger: logger)
        var done: [Int: String] = [:]
        for row in rows {
            let (version, checksum) = try row.decode((Int, String).self)
            done[version] = checksum
        }
        return migrations.allSatisfy { done[$0.version] == $0.checksum }
    }
}
