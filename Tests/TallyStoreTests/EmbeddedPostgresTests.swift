import Foundation
import PostgresNIO
import TallyEmbeddedPostgres
@testable import TallyStore
import TallyTestSupport
import Testing

@Suite struct EmbeddedPostgresTests {
    /// The embedded server starts (as root, as the unprivileged postgres user), serves, stops,
    /// and a second start finds the data of the first.
    @Test func startsStopsAndKeepsItsDataAcrossRestarts() async throws {
        let state = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tally-embedded-\(UUID())")
        defer { try? FileManager.default.removeItem(at: state) }
        let embedded = EmbeddedPostgres(stateDirectory: state, logger: testLogger)

        let first = try await embedded.start()
        #expect(first.ownedByThisProcess)
        #expect(first.location.host == "127.0.0.1")
        try await withClient(first.location) { client in
            try await client.query("CREATE TABLE kept (org_id uuid, note text)", logger: testLogger)
            try await client.query("INSERT INTO kept VALUES (gen_random_uuid(), 'still here')", logger: testLogger)
        }
        try embedded.stop(first)

        let second = try await embedded.start()
        let note = try await withClient(second.location) { client in
            try await client.query("SELECT note FROM kept", logger: testLogger).collect()[0].decode(String.self)
        }
        #expect(note == "still here")
        try embedded.stop(second)
        #expect(!FileManager.default.fileExists(atPath: state.appendingPathComponent("postgres/data/postmaster.pid").path))
    }

    func withClient<T: Sendable>(_ location: DatabaseLocation, _ body: @Sendable (DatabasePool) async throws -> T) async throws -> T {
        let client = try DatabasePool(location: location, maximumConnections: 2, logger: testLogger)
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }
}
