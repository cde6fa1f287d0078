import Foundation
import Logging
import PostgresNIO
import Testing
import TallyCore
@testable import TallyStore
import TallyResources
import TallyTestSupport

@Suite struct MigrationTests {
    func withEmptyDatabase(_ body: @Sendable (DatabasePool) async throws -> Void) async throws {
        let location = try await TestDatabases.shared.makeEmptyDatabase()
        let client = try DatabasePool(location: location, maximumConnections: 8, logger: testLogger)
        do {
            try await body(client)
        } catch {
            await client.close()
            await TestDatabases.shared.drop(location)
            throw error
        }
        await client.close()
        await TestDatabases.shared.drop(location)
    }

    func appliedVersions(_ client: DatabasePool) async throws -> [Int] {
        var versions: [Int] = []
        for row in try await client.query("SELECT version FROM schema_migrations ORDER BY version", logger: testLogger) {
            let version = try row.decode(Int.self)
            versions.append(version)
        }
        return versions
    }

    @Test func appliesEveryMigrationOnceAndIsIdempotent() async throws {
        let migrations = try loadMigrations()
        try await withEmptyDatabase { client in
            let runner = MigrationRunner(pool: client, logger: testLogger)
            let first = try await runner.apply(migrations)
            #expect(first == migrations.map(\.version))
            let second = try await runner.apply(migrations)
            #expect(second.isEmpty)
            #expect(try await appliedVersions(client) == migrations.map(\.version))
            #expect(try await runner.isCurrent(migrations))
        }
    }

    @Test func concurrentStartsApplyEachMigrationExactlyOnce() async throws {
        let migrations = try loadMigrations()
        try await withEmptyDatabase { client in
            let results = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<6 {
                    group.addTask { try await MigrationRunner(pool: client, logger: testLogger).apply(migrations) }
                }
                var all: [[Int]] = []
                for try await result in group { all.append(result) }
                return all
            }
            // Exactly one runner applied everything; the others found nothing to do.
            #expect(results.filter { !$0.isEmpty } == [migrations.map(\.version)])
            #expect(try await appliedVersions(client) == migrations.map(\.version))
        }
    }

    @Test func aChangedAppliedMigrationIsRefused() async throws {
        let original = [Migration(version: 1, name: "0001_t", sql: "CREATE TABLE t (org_id uuid)")]
        let changed = [Migration(version: 1, name: "0001_t", sql: "CREATE TABLE t (org_id uuid, x int)")]
        try await withEmptyDatabase { client in
            let runner = MigrationRunner(pool: client, logger: testLogger)
            try await runner.apply(original)
            await #expect(throws: MigrationError.checksumMismatch(version: 1, name: "0001_t")) {
                try await runner.apply(changed)
            }
            #expect(try await runner.isCurrent(changed) == false)
        }
    }

    @Test func aFailingMigrationLeavesNothingBehind() async throws {
        let migrations = [
            Migration(version: 1, name: "0001_ok", sql: "CREATE TABLE a (org_id uuid)"),
            Migration(version: 2, name: "0002_bad", sql: "CREATE TABLE b (org_id uuid); SELECT no_such_function()"),
        ]
        try await withEmptyDatabase { client in
            let runner = MigrationRunner(pool: client, logger: testLogger)
            await #expect(throws: (any Error).self) { try await runner.apply(migrations) }
            #expect(try await appliedVersions(client) == [1])
            let table = try await client.query("SELECT to_regclass('public.b') IS NULL", logger: testLogger).collect()
            #expect(try table[0].decode(Bool.self))
        }
    }

    @Test func loadsNumberedFilesInOrderAndRefusesBadNames() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tally-migrations-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "SELECT 2".write(to: directory.appendingPathComponent("0010_b.sql"), atomically: true, encoding: .utf8)
        try "SELECT 1".write(to: directory.appendingPathComponent("0002_a.sql"), atomically: true, encoding: .utf8)
        #expect(try Migration.load(from: directory).map(\.version) == [2, 10])
        try "SELECT 3".write(to: directory.appendingPathComponent("0002_c.sql"), atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.duplicateVersion(2)) { try Migration.load(from: directory) }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("0002_c.sql"))
        try "SELECT 3".write(to: directory.appendingPathComponent("init.sql"), atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.badFileName("init.sql")) { try Migration.load(from: directory) }
    }

    @Test func everyTableCarriesOrgID() async throws {
        try await TestDatabases.shared.withDatabase { client, _ in
            let rows = try await client.query("""
                SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'schema_migrations'
                  AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
                """, logger: testLogger).collect()
            let names = try rows.map { try $0.decode(String.self) }
            // The catalog (plans, operations and their version, packs) and test clocks are reference data shared by
            // every organisation; they are listed here on purpose.
            #expect(Set(names).isSubset(of: Set(referenceTables)), "tables without org_id: \(names)")
        }
    }

    /// A foreign-key check finds its row with a plan made without the values: any full index of
    /// the referenced table that starts with the same column (org_id) competes with the key, and
    /// one busy organisation then pays a scan of all its rows per check (see sql/0007).
    @Test func foreignKeyChecksCanOnlyTakeTheReferencedKey() async throws {
        try await TestDatabases.shared.withDatabase { client, _ in
            let rows = try await client.query("""
                SELECT f.conname, i.indexrelid::regclass::text
                FROM pg_constraint f
                JOIN pg_index i ON i.indrelid = f.confrelid AND i.indexrelid <> f.conindid
                WHERE f.contype = 'f' AND i.indpred IS NULL AND i.indkey[0] = f.confkey[1]
                """, logger: testLogger).collect()
            let competing = try rows.map { row in try row.decode((String, String).self) }.map { "\($0.0) vs \($0.1)" }
            #expect(competing.isEmpty, "indexes competing with foreign-key lookups: \(competing)")
        }
    }
}

/// Tables that hold reference data for all organisations rather than one organisation's data.
let referenceTables = ["plans", "operations", "catalog_version", "credit_packs", "test_clocks"]

@Suite struct SQLScriptTests {
    @Test func splitsAtTopLevelSemicolonsOnly() {
        let script = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b');
            /* block; comment */ CREATE TABLE "b;c" (y int);
            CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
            CREATE FUNCTION g() RETURNS text AS $$ SELECT 'x;y' $$ LANGUAGE sql;
            SELECT 'it''s; fine';
            -- trailing comment
            """
        let statements = SQLScript.statements(script)
        #expect(statements.count == 5)
        #expect(statements[0].hasSuffix("DEFAULT 'a;b')"))
        #expect(statements[1].contains(#""b;c""#))
        #expect(statements[2].contains("$body$ SELECT 1; $body$"))
        #expect(statements[3].contains("'x;y'"))
        #expect(statements[4] == "SELECT 'it''s; fine'")
    }
}

@Suite struct PostgresCodecTests {
    @Test func creditsMoneyAndInstantsRoundTripExactly() async throws {
        try await TestDatabases.shared.withDatabase { client, _ in
            let amounts = [Credits(units: 0), Credits(units: 1), Credits(units: 13_000), Credits(units: -41_000),
                           Credits(units: 1_376_000), Credits(units: 9_000_000_000_000_000), Credits(units: 123_456_789_012)]
            for amount in amounts {
                let rows = try await client.query("SELECT \(amount)::numeric(20,4), (\(amount)::numeric(20,4))::text", logger: testLogger).collect()
                let (back, text) = try rows[0].decode((Credits, String).self)
                #expect(back == amount)
                #expect(try Credits(parsing: text) == amount)
            }
            // Values PostgreSQL computes come back exactly too.
            let sum = try await client.query("SELECT 1.3::numeric(20,4) * 100 - 232.4::numeric(20,4)", logger: testLogger).collect()
            #expect(try sum[0].decode(Credits.self) == Credits(units: -1_024_000))
            let money = try await client.query("SELECT \(MoneyMicros(54_704))::numeric(20,6), 0.000001::numeric(20,6)", logger: testLogger).collect()
            let (a, b) = try money[0].decode((MoneyMicros, MoneyMicros).self)
            #expect(a.micros == 54_704)
            #expect(b.micros == 1)
            let instant = try Instant(rfc3339: "2026-05-06T10:11:12.345678Z")
            let rows = try await client.query("SELECT \(instant), \(instant) + interval '1 microsecond', to_char(\(instant) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')", logger: testLogger).collect()
            let (same, later, text) = try rows[0].decode((Instant, Instant, String).self)
            #expect(same == instant)
            #expect(later.microseconds(since: instant) == 1)
            #expect(text == "2026-05-06 10:11:12.345678")
        }
    }

    @Test func refusesNumericsWithMorePlacesThanTheType() async throws {
        try await TestDatabases.shared.withDatabase { client, _ in
            let rows = try await client.query("SELECT 1.23456::numeric", logger: testLogger).collect()
            #expect(throws: (any Error).self) { try rows[0].decode(Credits.self) }
        }
    }
}

/// The binary carries what the repository holds: the build plugin embeds every migration and the
/// OpenAPI document as they are on disk.
@Suite struct EmbeddedResourcesTests {
    @Test func theBinaryCarriesExactlyTheRepositorysMigrationsAndDocument() throws {
        #expect(try Migration.parse(TallyResources.migrationFiles) == loadMigrations())
        let document = try Array(Data(contentsOf: repositoryRoot.appendingPathComponent("openapi.json")))
        #expect(TallyResources.openAPIDocument == document)
    }
}
