import TallyJSON
import Foundation
import Testing
import TallyCore
import TallyHTTP
import TallyStore
import TallyTestSupport

@Suite struct OperationsEndpointsTests {
    @Test func healthReadinessAndMetrics() async throws {
        try await TestServer.run { server in
            #expect(try await server.request(.GET, "/healthz").status == 200)
            let ready = try await server.request(.GET, "/readyz")
            #expect(ready.status == 200)
            #expect(ready["status"] == "ready")
            _ = try await server.request(.GET, "/v1/orgs/x", key: server.platformKey)
            let metrics = try await server.request(.GET, "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.text.contains("hb_requests"))
            #expect(metrics.text.contains("http_server_request_duration_bucket"))
        }
    }

    /// `RequestMetricsMiddleware` counts an answer written in one piece when it is ready and a
    /// streamed one (an export) once written: both show up by route.
    @Test func requestMetricsCountOneBufferAndStreamedAnswers() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            #expect(try await server.request(.GET, "/v1/orgs/\(org)", key: server.platformKey).status == 200)
            let export = try await server.request(.GET, "/v1/orgs/\(org)/usage/export?format=csv", key: server.platformKey)
            #expect(export.status == 200)
            let metrics = try await server.request(.GET, "/metrics").text
            // A counter's line exists from its first lookup; what counts is its value.
            func counted(_ route: String) -> Bool {
                metrics.split(separator: "\n").contains { line in
                    line.hasPrefix("hb_requests{") && line.contains("http_route=\"\(route)\"") && line.contains("http_response_status_code=\"200\"")
                        && (Double(line.split(separator: " ").last ?? "") ?? 0) >= 1
                }
            }
            #expect(counted("/v1/orgs/{org}"))
            #expect(counted("/v1/orgs/{org}/usage/export"))
        }
    }

    @Test func readinessFailsWhenAMigrationIsMissing() async throws {
        try await TestServer.run { server in
            try await server.pool.query("DELETE FROM schema_migrations WHERE version = 1", logger: testLogger)
            let ready = try await server.request(.GET, "/readyz")
            #expect(ready.status == 503)
            #expect(ready["code"] == "migrations_pending")
        }
    }

    /// The OpenAPI document must describe exactly the routes that exist: every registered route
    /// is in it, and it names no route that does not exist.
    @Test func openAPIDocumentMatchesTheRouter() throws {
        let services = AppServices(
            stores: Stores(database: Database(pool: DatabasePool(configuration: .init(host: "localhost", port: 1, username: "x", password: nil, database: nil, tls: .disable), settings: .init(maximumConnections: 1), logger: testLogger), logger: testLogger)),
            clock: ManualClock(), platformKey: nil, migrations: [], openAPIDocument: []
        )
        let router = TallyApplication.router(services: services)
        // The credits portal's pages are HTML for people, behind a session cookie, not the API:
        // PortalTests and the browser suite test them. Its API (portal-sessions) is documented.
        let registered = Set(router.routes.filter { !$0.path.description.hasPrefix("/portal/") }
            .map { "\($0.method.rawValue.lowercased()) \($0.path.description)" })

        let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("openapi.json"))
        let document = try JSONParser.parse(Array(data))
        #expect(document["openapi"] == .string("3.1.0"))
        guard case .object(let paths)? = document["paths"] else { Issue.record("no paths"); return }
        var documented = Set<String>()
        for (path, item) in paths {
            guard case .object(let operations) = item else { continue }
            for (method, _) in operations where ["get", "post", "put", "patch", "delete"].contains(method) {
                documented.insert("\(method) \(path)")
            }
        }
        #expect(registered.subtracting(documented).sorted() == [], "routes missing from openapi.json")
        #expect(documented.subtracting(registered).sorted() == [], "openapi.json documents routes that do not exist")
    }
}
