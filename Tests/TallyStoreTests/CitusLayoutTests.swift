import Foundation
import PostgresNIO
import Testing
import TallyStore
import TallyTestSupport

/// The live schema against `deploy/citus/distribute.sql`: what Citus needs of a schema
/// distributed by organisation, checked on every migration (Citus itself is not installed here).
@Suite struct CitusLayoutTests {
    struct Layout {
        var distributed: Set<String> = []
        var reference: Set<String> = []
    }

    static func layout() throws -> Layout {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("deploy/citus/distribute.sql"), encoding: .utf8)
        var layout = Layout()
        for line in script.split(separator: "\n") where !line.hasPrefix("--") {
            guard let open = line.firstIndex(of: "'"), let close = line[line.index(after: open)...].firstIndex(of: "'") else { continue }
            let table = String(line[line.index(after: open)..<close])
            if line.contains("create_distributed_table(") { layout.distributed.insert(table) }
            if line.contains("create_reference_table(") { layout.reference.insert(table) }
        }
        return layout
    }

    @Test func everyTableIsDistributedByOrganisationOrReferenceData() async throws {
        let layout = try Self.layout()
        #expect(layout.distributed.count > 10 && layout.reference.count > 3)
        try await TestDatabases.shared.withDatabase { pool, _ in
            var problems: [String] = []
            var tables: Set<String> = []
            for row in try await pool.query("""
                SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                """, logger: testLogger) {
                tables.insert(try row.decode(String.self))
            }
            for table in tables.sorted() {
                let lists = (layout.distributed.contains(table) ? 1 : 0) + (layout.reference.contains(table) ? 1 : 0)
                if lists != 1 { problems.append("\(table) is in \(lists) lists of deploy/citus/distribute.sql") }
            }
            for table in layout.distributed.union(layout.reference).subtracting(tables).sorted() {
                problems.append("\(table) is listed but is no table")
            }
            // A distributed table's rows each belong to one organisation.
            for row in try await pool.query("""
                SELECT c.relname::text, coalesce(a.attnotnull, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                """, logger: testLogger) {
                let (table, notNull) = try row.decode((String, Bool).self)
                if layout.distributed.contains(table), !notNull { problems.append("\(table): org_id missing or nullable") }
            }
            // Citus enforces a unique key only within a shard: it must include org_id.
            for row in try await pool.query("""
                SELECT t.relname::text, i.relname::text,
                       array(SELECT a.attname::text FROM unnest(x.indkey) AS k (attnum) JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum)
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE n.nspname = 'public' AND x.indisunique
                """, logger: testLogger) {
                let (table, index, columns) = try row.decode((String, String, [String]).self)
                if layout.distributed.contains(table), !columns.contains("org_id") {
                    problems.append("\(table): unique index \(index) (\(columns.joined(separator: ", "))) lacks org_id")
                }
            }
            // Between distributed tables a foreign key joins on org_id (co-located shards); a
            // reference table never refers to a distributed one.
            for row in try await pool.query("""
                SELECT c.conname::text, c.conrelid::regclass::text, c.confrelid::regclass::text,
                       array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k (attnum, n)
                             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n),
                       array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k (attnum, n)
                             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.n)
                FROM pg_constraint c WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
                """, logger: testLogger) {
                let (name, from, to, columns, referenced) = try row.decode((String, String, String, [String], [String]).self)
                if layout.distributed.contains(from), layout.distributed.contains(to),
                   columns.firstIndex(of: "org_id") == nil || columns.firstIndex(of: "org_id") != referenced.firstIndex(of: "org_id") {
                    problems.append("\(from): foreign key \(name) to \(to) does not join on org_id")
                }
                if layout.reference.contains(from), layout.distributed.contains(to) {
                    problems.append("\(from): reference table refers to distributed \(to) (\(name))")
                }
            }
            #expect(problems == [])
        }
    }
}
