import TallyJSON
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle
import TallyCore
import TallyHTTP
import TallyStore

/// A real Tally server on 127.0.0.1 and a free port, over a fresh database, and a real HTTP
/// client to call it: what the HTTP tests run against.
public struct TestServer: Sendable {
    public static let platformKey = "platform-test-key-0123456789"

    public let port: Int
    public let pool: DatabasePool
    public let stores: Stores
    public let clock: ManualClock
    public let http: HTTPClient

    /// Starts a server over a fresh database, runs `body`, then shuts both down.
    public static func run<T: Sendable>(
        clock: ManualClock = ManualClock(),
        databaseConnections: Int = 8,
        rateLimits: RateLimits = .off,
        headTimeoutSeconds: Int64 = 10,
        _ body: @Sendable (TestServer) async throws -> T
    ) async throws -> T {
        try await TestDatabases.shared.withDatabase(maximumConnections: databaseConnections) { pool, _ in
            let stores = Stores(database: Database(pool: pool, logger: testLogger))
            let services = AppServices(
                stores: stores, clock: clock, platformKey: PlatformKey(platformKey), migrations: try loadMigrations(),
                openAPIDocument: try Array(Data(contentsOf: repositoryRoot.appendingPathComponent("openapi.json"))),
                rateLimits: rateLimits
            )
            let portBox = PortBox()
            let application = TallyApplication.application(
                services: services, host: "127.0.0.1", port: 0, backgroundServices: [], logger: testLogger,
                onServerRunning: { port in await portBox.set(port) },
                headTimeoutSeconds: headTimeoutSeconds
            )
            let group = ServiceGroup(configuration: .init(services: [application], logger: testLogger))
            return try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let port = try await portBox.wait()
                var configuration = HTTPClient.Configuration()
                // Below the server's 10 s wait for a next request on a kept-alive connection.
                configuration.connectionPool = .init(idleTimeout: .seconds(5), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
                // Requests queue for one of the 64 connections; on a busy 2-core machine a burst
                // of a thousand may wait longer than the default 10 s for one.
                configuration.timeout = .init(connect: .seconds(120), read: .seconds(120))
                // The portal's redirects are what its tests look at (a browser's next step is theirs to take).
                configuration.redirectConfiguration = .disallow
                let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
                let server = TestServer(port: port, pool: pool, stores: stores, clock: clock, http: http)
                let result: Result<T, any Error>
                do {
                    result = .success(try await body(server))
                } catch {
                    result = .failure(error)
                }
                try await http.shutdown()
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return try result.get()
            }
        }
    }
}

actor PortBox {
    private var port: Int?
    private var waiters: [CheckedContinuation<Int, Never>] = []

    func set(_ port: Int) {
        self.port = port
        for waiter in waiters { waiter.resume(returning: port) }
        waiters = []
    }

    func wait() async throws -> Int {
        if let port { return port }
        return await withCheckedContinuation { waiters.append($0) }
    }
}

/// A response as the tests read it.
public struct TestResponse: Sendable {
    public let status: Int
    public let headers: [(String, String)]
    public let body: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed as JSON (fails the test with the body when it is not JSON).
    public var json: JSONValue {
        get throws {
            do {
                return try JSONParser.parse(body)
            } catch {
                throw TestSetupError("not JSON (status \(status)): \(text)")
            }
        }
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// A string member of a JSON object body, or nil.
    public subscript(_ key: String) -> String? {
        guard let value = try? json[key] else { return nil }
        switch value {
        case .string(let text): return text
        case .number(let literal): return literal
        case .bool(let flag): return String(flag)
        default: return nil
        }
    }
}

extension TestServer {
    /// One HTTP request over a real connection.
    public func request(
        _ method: HTTPMethod, _ path: String, key: String? = nil, json: String? = nil,
        headers extra: [(String, String)] = [], rawBody: [UInt8]? = nil
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        } else if let rawBody {
            request.body = .bytes(ByteBuffer(bytes: rawBody))
        }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        let response = try await http.execute(request, timeout: .seconds(60))
        var body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return TestResponse(
            status: Int(response.status.code),
            headers: response.headers.map { ($0.name, $0.value) },
            body: body.readBytes(length: body.readableBytes) ?? []
        )
    }

    public var platformKey: String { Self.platformKey }

    /// Creates an organisation with the platform key and returns its id.
    public func createOrg(name: String = "Acme", timezone: String = "UTC", extra: String = "") async throws -> String {
        let response = try await request(.POST, "/v1/orgs", key: platformKey, json: #"{"name": "\#(name)", "timezone": "\#(timezone)"\#(extra)}"#)
        guard response.status == 201, let id = response["id"] else {
            throw TestSetupError("creating an organisation failed: \(response.status) \(response.text)")
        }
        return id
    }

    /// Creates an organisation key and returns its secret.
    public func createKey(org: String, role: String, using key: String? = nil) async throws -> String {
        let response = try await request(.POST, "/v1/orgs/\(org)/api-keys", key: key ?? platformKey, json: #"{"name": "\#(role) key", "role": "\#(role)"}"#)
        guard response.status == 201, let secret = response["key"] else {
            throw TestSetupError("creating a key failed: \(response.status) \(response.text)")
        }
        return secret
    }

    /// Counts rows of a table, to prove that a failed request wrote nothing.
    public func count(_ table: String) async throws -> Int {
        let rows = try await pool.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table)"), logger: testLogger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }
}
