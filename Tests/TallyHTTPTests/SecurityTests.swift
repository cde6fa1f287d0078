import Foundation
import Glibc
import Testing
import TallyCore
import TallyHTTP
import TallyJobs
import TallyJSON
import TallyTestSupport

/// What an attacker with a key, or with only a socket, could try.
@Suite struct SecurityTests {
    // MARK: Webhooks

    /// A receiver that redirects into the network: the redirect is not followed, and the attempt
    /// is recorded as a failure with its status and a generic class only.
    @Test func aRedirectIsAFailedAttemptAndIsNeverFollowed() async throws {
        let inside = WebhookReceiver()
        try await inside.run { insideURL in
            let outside = WebhookReceiver(redirectTo: insideURL)
            try await outside.run { url in
                let clock = ManualClock("2026-06-01T00:00:00Z")
                try await TestServer.run(clock: clock) { server in
                    let org = try await server.createOrg()
                    let endpoint = try await server.createEndpoint(url: url, events: #"["credits.expired"]"#, org: org)
                    try await server.expireFiveCredits(org, on: "2026-06-01")
                    #expect(try await server.deliver(clock: clock) == 1)
                    #expect(outside.requests.count == 1)
                    #expect(inside.requests.isEmpty)
                    let deliveries = try await server.list("/v1/webhook-endpoints/\(endpoint.id)/deliveries")
                    #expect(deliveries.first?.text("status") == "pending")
                    guard case .array(let attempts)? = deliveries.first?["attempt_log"] else { Issue.record("no attempts"); return }
                    #expect(attempts.map { $0.text("status_code") } == ["302"])
                    #expect(attempts.map { $0.text("error") } == ["redirect (HTTP 302)"])
                }
            }
        }
    }

    /// An organisation's endpoint saved with a public name that now resolves to 127.0.0.1 (here:
    /// its row is pointed at localhost, as a DNS change would): the delivery is refused at the
    /// attempt, nothing reaches the address, and the log says only "private address".
    @Test func anAddressThatTurnedPrivateIsRefusedAtDeliveryTime() async throws {
        let receiver = WebhookReceiver()
        try await receiver.run { url in
            let clock = ManualClock("2026-06-01T00:00:00Z")
            try await TestServer.run(clock: clock) { server in
                let org = try await server.createOrg()
                let endpoint = try await server.createEndpoint(url: url, events: #"["credits.expired"]"#, org: org)
                let localhost = url.replacingOccurrences(of: "127.0.0.1", with: "localhost")
                try await server.pool.query("UPDATE webhook_endpoints SET url = \(localhost), private_allowed = false", logger: testLogger)
                try await server.expireFiveCredits(org, on: "2026-06-01")
                #expect(try await server.deliver(clock: clock) == 1)
                #expect(receiver.requests.isEmpty)
                let deliveries = try await server.list("/v1/webhook-endpoints/\(endpoint.id)/deliveries")
                guard case .array(let attempts)? = deliveries.first?["attempt_log"] else { Issue.record("no attempts"); return }
                #expect(attempts.map { $0.text("error") } == ["private address"])
                // The operator may allow private targets for everyone: then it is delivered.
                clock.advance(seconds: 60)
                #expect(try await server.deliver(clock: clock, allowPrivateTargets: true) == 1)
                #expect(receiver.requests.count == 1)
            }
        }
    }

    @Test func everyPrivateRangeIsRecognised() {
        for address: [UInt8] in [[10, 1, 2, 3], [127, 0, 0, 1], [0, 0, 0, 0], [172, 16, 0, 1], [192, 168, 1, 1], [169, 254, 1, 1],
                                 [100, 64, 0, 1], [224, 0, 0, 1], [255, 255, 255, 255],
                                 Array(repeating: 0, count: 15) + [1], Array(repeating: 0, count: 16),
                                 [0xFC] + Array(repeating: 0, count: 15), [0xFE, 0x80] + Array(repeating: 0, count: 14),
                                 [0xFF, 0x02] + Array(repeating: 0, count: 14),
                                 Array(repeating: 0, count: 10) + [0xFF, 0xFF, 10, 0, 0, 1]] {
            #expect(WebhookAddressPolicy.isPrivate(address), "\(address)")
        }
        for address: [UInt8] in [[8, 8, 8, 8], [172, 32, 0, 1], [100, 128, 0, 1], [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 12),
                                 Array(repeating: 0, count: 10) + [0xFF, 0xFF, 8, 8, 8, 8]] {
            #expect(!WebhookAddressPolicy.isPrivate(address), "\(address)")
        }
    }

    // MARK: Rate limits

    @Test func aKeyOverItsLimitGets429WithTheHeadersWhileAnotherKeyIsServed() async throws {
        let limits = RateLimits(perKey: .init(perSecond: 1, burst: 3), platform: nil)
        try await TestServer.run(rateLimits: limits) { server in
            let org = try await server.createOrg()
            let flooding = try await server.createKey(org: org, role: "member")
            let other = try await server.createKey(org: org, role: "member")
            for _ in 0..<3 {
                #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: flooding).status == 200)
            }
            let limited = try await server.request(.GET, "/v1/orgs/\(org)/balance", key: flooding)
            #expect(limited.status == 429)
            #expect(limited["code"] == "rate_limited")
            #expect(limited.header("Retry-After") == "1")
            #expect(limited.header("RateLimit-Limit") == "3")
            #expect(limited.header("RateLimit-Remaining") == "0")
            #expect(limited.header("RateLimit-Reset") == "1")
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: other).status == 200)
            // The platform key has its own setting (none here).
            for _ in 0..<10 {
                #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: server.platformKey).status == 200)
            }
            // A second later the key has a token again.
            try await Task.sleep(for: .milliseconds(1100))
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/balance", key: flooding).status == 200)
        }
    }

    @Test func limitsParseFromTheEnvironmentsSpelling() {
        #expect(RateLimiter.Limit.parse(nil, default: RateLimits.defaultPerKey) == RateLimits.defaultPerKey)
        #expect(RateLimiter.Limit.parse("0", default: RateLimits.defaultPerKey) == nil)
        #expect(RateLimiter.Limit.parse("50", default: nil) == .init(perSecond: 50, burst: 100))
        #expect(RateLimiter.Limit.parse("50/60", default: nil) == .init(perSecond: 50, burst: 60))
    }

    // MARK: Connections

    /// A body over the limit: the 413 comes at once and the server closes the connection, while
    /// the client is still sending.
    @Test func anOversizedBodyGets413AndTheConnectionCloses() async throws {
        try await TestServer.run { server in
            let socket = try RawSocket(port: server.port)
            try socket.send("POST /v1/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.platformKey)\r\n"
                            + "Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n")
            // Send far more than the limit, ignoring failures once the server has closed.
            let chunk = String(repeating: "x", count: 64 * 1024)
            for _ in 0..<8 { _ = try? socket.send(chunk) }
            let reply = socket.readUntilClosed(seconds: 10)
            #expect(reply.text.hasPrefix("HTTP/1.1 413"), "\(reply.text.prefix(80))")
            #expect(reply.closed, "the server should close the connection after the 413")
        }
    }

    /// A client that sends its request head slower than the head timeout is dropped.
    @Test func aSlowRequestHeadIsDropped() async throws {
        try await TestServer.run(headTimeoutSeconds: 1) { server in
            let socket = try RawSocket(port: server.port)
            try socket.send("GET /healthz HTTP/1.1\r\n")
            let start = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(1500))
            _ = try? socket.send("Host: x\r\n")
            let reply = socket.readUntilClosed(seconds: 5)
            #expect(reply.closed)
            #expect(!reply.text.contains("200 OK"))
            #expect(ContinuousClock.now - start < .seconds(5))
            // A prompt client on a fresh connection is served.
            #expect(try await server.request(.GET, "/healthz").status == 200)
        }
    }
}

/// A blocking TCP client for tests that need to misbehave below HTTP.
final class RawSocket {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestSetupError("connect failed: \(errno)") }
        var noSignal: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_KEEPALIVE, &noSignal, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(descriptor) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw TestSetupError("send failed: \(errno)") }
            sent += count
        }
    }

    /// Reads until the peer closes (`closed`) or `seconds` pass.
    func readUntilClosed(seconds: Int) -> (text: String, closed: Bool) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 { received += buffer[0..<count]; continue }
            // 0: orderly close; ECONNRESET: closed with unread data (our oversized body).
            let closed = count == 0 || errno == ECONNRESET
            return (String(decoding: received, as: UTF8.self), closed)
        }
    }
}
