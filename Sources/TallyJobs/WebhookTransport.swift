import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TallyCore

/// One webhook POST, to an address checked at this attempt.
///
/// Why not AsyncHTTPClient: it follows redirects and resolves the host itself, so the address
/// checked is not the address connected to, and a `302` could point anywhere. Here the host is
/// resolved once, every address is checked against `WebhookAddressPolicy`, the connection goes to
/// the checked address (TLS still verifies the certificate for the host name), nothing is followed,
/// and only the status line is read. Failures are reported as short generic classes, never as
/// response bodies or error text from inside a network.
public struct WebhookTransport: Sendable {
    public struct Outcome: Sendable, Equatable {
        public let statusCode: Int?
        /// nil when delivered (2xx); else a short class: "timeout", "connection refused",
        /// "tls", "dns", "private address", "redirect", "HTTP 503", ...
        public let failure: String?
    }

    let allowPrivateAddresses: Bool
    let timeout: TimeAmount
    private let tls: NIOSSLContext?

    public init(allowPrivateAddresses: Bool, timeout: TimeAmount = .seconds(10)) {
        self.allowPrivateAddresses = allowPrivateAddresses
        self.timeout = timeout
        self.tls = try? NIOSSLContext(configuration: .makeClientConfiguration())
    }

    /// `privateAllowed`: this endpoint may target private addresses (the operator's own endpoints).
    public func post(url text: String, headers: [(String, String)], body: [UInt8], privateAllowed: Bool) async -> Outcome {
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else {
            return Outcome(statusCode: nil, failure: "invalid url")
        }
        let port = url.port ?? (scheme == "https" ? 443 : 80)
        let addresses = await WebhookAddressPolicy.resolve(host)
        guard let first = addresses.first else { return Outcome(statusCode: nil, failure: "dns") }
        if !(privateAllowed || allowPrivateAddresses), addresses.contains(where: WebhookAddressPolicy.isPrivate) {
            return Outcome(statusCode: nil, failure: "private address")
        }
        let target: SocketAddress
        do {
            target = try WebhookAddressPolicy.socketAddress(first, port: port)
        } catch {
            return Outcome(statusCode: nil, failure: "invalid address")
        }
        var path = url.percentEncodedPath.isEmpty ? "/" : url.percentEncodedPath
        if let query = url.percentEncodedQuery { path += "?" + query }
        let hostHeader = url.port.map { "\(host):\($0)" } ?? host
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "Host", value: hostHeader)
        head.headers.add(name: "Content-Length", value: "\(body.count)")
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        let sniHost = WebhookAddressPolicy.isIPLiteral(host) ? nil : host
        if scheme == "https", tls == nil { return Outcome(statusCode: nil, failure: "tls") }
        do {
            let status = try await exchange(target, head: head, body: body, tls: scheme == "https" ? tls : nil, serverHostname: sniHost)
            switch status {
            case 200..<300: return Outcome(statusCode: status, failure: nil)
            case 300..<400: return Outcome(statusCode: status, failure: "redirect (HTTP \(status))")
            default: return Outcome(statusCode: status, failure: "HTTP \(status)")
            }
        } catch {
            return Outcome(statusCode: nil, failure: Self.failureClass(error))
        }
    }

    private func exchange(_ target: SocketAddress, head: HTTPRequestHead, body: [UInt8], tls: NIOSSLContext?,
                          serverHostname: String?) async throws -> Int {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let status = eventLoop.makePromise(of: Int.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverHostname))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(StatusLineHandler(status: status))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(to: target).get()
        } catch {
            status.fail(error)
            throw error
        }
        // One deadline for the whole exchange: a receiver that never answers is a timeout.
        let deadline = eventLoop.scheduleTask(in: timeout) {
            status.fail(ChannelError.connectTimeout(timeout))
            channel.close(promise: nil)
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer {
            deadline.cancel()
            channel.close(promise: nil)
        }
        return try await status.futureResult.get()
    }

    static func failureClass(_ error: any Error) -> String {
        if let error = error as? ChannelError, case .connectTimeout = error { return "timeout" }
        if error is NIOSSLError || error is BoringSSLError { return "tls" }
        if let error = error as? NIOConnectionError {
            let text = "\(error)"
            if text.contains("refused") { return "connection refused" }
            if text.contains("imed out") { return "timeout" }
            return "connection failed"
        }
        if let error = error as? IOError {
            if error.errnoCode == ECONNREFUSED { return "connection refused" }
            if error.errnoCode == ECONNRESET { return "connection reset" }
            return "connection failed"
        }
        if error is HTTPParserError { return "invalid response" }
        return "connection failed"
    }
}

/// Completes `status` with the response's status code as soon as its head arrives; the body is
/// never read. A connection that ends first fails it.
private final class StatusLineHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let status: EventLoopPromise<Int>

    init(status: EventLoopPromise<Int>) { self.status = status }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            status.succeed(Int(head.status.code))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        status.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        status.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}
