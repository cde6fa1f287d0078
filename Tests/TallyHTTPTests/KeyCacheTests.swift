import Foundation
import PostgresNIO
import Testing
import TallyCore
import TallyStore
import TallyTestSupport

/// Organisation keys are cached while revocations are followed: the cache saves the lookup, and
/// a revocation made anywhere (another replica, `tally keys revoke`, SQL) takes effect at once.
@Suite struct KeyCacheTests {
    private func waitUntilFollowing(_ server: TestServer) async throws {
        for _ in 0..<100 where !server.stores.keys.cache.isFollowing { try await Task.sleep(for: .milliseconds(50)) }
        #expect(server.stores.keys.cache.isFollowing)
    }

    private func setAnnouncements(_ server: TestServer, on: Bool) async throws {
        try await server.pool.query(PostgresQuery(unsafeSQL: """
            ALTER TABLE api_keys \(on ? "ENABLE" : "DISABLE") TRIGGER api_keys_announce_change
            """), logger: testLogger)
    }

    /// A member key, used once (so cached), then revoked behind the service's back with the
    /// announcement switched off: it still answers, so the cache is what answers.
    private func cachedKeyRevokedUnannounced(_ server: TestServer) async throws -> (org: String, key: String) {
        let org = try await server.createOrg()
        let member = try await server.createKey(org: org, role: "member")
        try await waitUntilFollowing(server)
        #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: member).status == 200)
        try await setAnnouncements(server, on: false)
        try await server.pool.query("UPDATE api_keys SET revoked_at = now() WHERE org_id = \(UUID(idString: org)!)", logger: testLogger)
        #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: member).status == 200)
        return (org, member)
    }

    /// The key's row revoked behind the service's back with the announcement switched off: the
    /// cached key still answers (so the cache is what answered). Any announced change to the
    /// key (another replica revoking it) then ends it within moments.
    @Test func anAnnouncedRevocationEndsACachedKeyAtOnce() async throws {
        try await TestServer.run { server in
            let (org, member) = try await cachedKeyRevokedUnannounced(server)

            try await setAnnouncements(server, on: true)
            try await server.pool.query("UPDATE api_keys SET name = name WHERE org_id = \(UUID(idString: org)!)", logger: testLogger)
            var status = 200
            for _ in 0..<50 where status == 200 {
                status = try await server.request(.GET, "/v1/orgs/\(org)/balance", key: member).status
                if status == 200 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(status == 401)
        }
    }

    /// A revocation through the API is effective on the very next request, cached or not.
    @Test func aKeyRevokedThroughTheAPIFailsOnItsNextRequest() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let admin = try await server.createKey(org: org, role: "admin")
            let member = try await server.createKey(org: org, role: "member")
            try await waitUntilFollowing(server)
            for _ in 0..<3 { #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: member).status == 200) }
            let keys = try await server.list("/v1/orgs/\(org)/api-keys", key: admin)
            let memberID = try #require(keys.first { $0.text("role") == "member" }?.text("id"))
            #expect(try await server.request(.DELETE, "/v1/orgs/\(org)/api-keys/\(memberID)", key: admin).status == 204)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: member).status == 401)
        }
    }

    /// While the listening connection is lost nothing is cached, and what was is dropped: a key
    /// revoked unannounced meanwhile is refused once the listener is back.
    @Test func losingTheListenerDropsTheCache() async throws {
        try await TestServer.run { server in
            let (org, member) = try await cachedKeyRevokedUnannounced(server)

            try await server.pool.query("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                """, logger: testLogger)
            for _ in 0..<100 where server.stores.keys.cache.isFollowing { try await Task.sleep(for: .milliseconds(20)) }
            try await waitUntilFollowing(server)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: member).status == 401)
            try await setAnnouncements(server, on: true)
        }
    }
}
