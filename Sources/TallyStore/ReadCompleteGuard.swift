import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// Holds back a read cycle that PostgresNIO did not ask for.
///
/// PostgresNIO (1.33, and its main branch as of this writing) traps on a precondition when a
/// `channelReadComplete` reaches it while a result's rows wait for their reader and it has asked
/// for no read: "How can we receive a body part, after a channelReadComplete, but no read has
/// been forwarded yet". NIO does exactly that when the server closes the socket: it drains the
/// socket and reports the cycle whether or not a read was requested. A primary's crash under
/// load once killed `tally serve` this way (a connection's reader was one event-loop turn behind).
/// AsyncHTTPClient fixed the same precondition in its own state machine (its pull request 450).
///
/// Sitting between the socket and PostgresNIO, this forwards every byte at once (PostgresNIO
/// accepts rows it did not ask for) and a `channelReadComplete` only after a `read` has passed
/// on its way to the socket; one that came unasked waits for the next `read`. On a closing
/// connection that read never comes: `channelInactive` follows and fails the statement, which
/// the caller sees as a lost connection (503) instead of the process dying.
final class ReadCompleteGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A read has gone to the socket since the last read cycle was reported.
    private var readRequested = false
    /// A read cycle came with no read requested; reported at the next read.
    private var heldReadComplete = false

    func channelReadComplete(context: ChannelHandlerContext) {
        if readRequested {
            readRequested = false
            context.fireChannelReadComplete()
        } else {
            heldReadComplete = true
        }
    }

    func read(context: ChannelHandlerContext) {
        if heldReadComplete {
            // The bytes came before this read: they are its cycle.
            heldReadComplete = false
            context.fireChannelReadComplete()
        }
        readRequested = true
        context.read()
    }
}

extension PostgresConnection {
    /// `PostgresConnection.connect`, over a TCP connection this opens itself so that it carries
    /// `ReadCompleteGuard` (PostgresNIO offers no other way into a connection's pipeline).
    static func connectGuarded(
        on eventLoop: any EventLoop, configuration: Configuration, id: Int, logger: Logger
    ) async throws -> PostgresConnection {
        guard let host = configuration.host, let port = configuration.port else {
            return try await connect(on: eventLoop, configuration: configuration, id: id, logger: logger)
        }
        // One deadline for both steps, as PostgresNIO's own connect has.
        let deadline = NIODeadline.now() + configuration.options.connectTimeout
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(configuration.options.connectTimeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ReadCompleteGuard()) }
                }
                .connect(host: host, port: port).get()
        } catch {
            throw DatabaseConnectFailure(underlying: error)
        }
        var established = Configuration(establishedChannel: channel, tls: configuration.tls, username: configuration.username,
                                        password: configuration.password, database: configuration.database)
        established.options = configuration.options
        established.options.connectTimeout = deadline - .now()
        guard established.options.connectTimeout > .zero else {
            try? await channel.close()
            throw DatabaseConnectFailure(underlying: ChannelError.connectTimeout(configuration.options.connectTimeout))
        }
        // As PostgresNIO does for a host it connects to itself: the name for TLS, unless an address.
        if established.options.tlsServerName == nil, (try? SocketAddress(ipAddress: host, port: 0)) == nil {
            established.options.tlsServerName = host
        }
        do {
            return try await connect(on: eventLoop, configuration: established, id: id, logger: logger)
        } catch {
            try? await channel.close()
            throw error
        }
    }
}

/// The TCP connection to the database could not be opened (refused, timed out, no such host).
struct DatabaseConnectFailure: Error, CustomStringConvertible {
    let underlying: any Error

    var description: String {
        let text = "\(underlying)"
        if text.contains("Connection refused") || text.contains("connection refused") { return "connection refused" }
        if text.contains("connectTimeout") || text.contains("timed out") { return "connection timed out" }
        return text
    }
}
