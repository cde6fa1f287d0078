import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import Testing
import TallyCore
@testable import TallyStore
import TallyTestSupport

/// PostgresNIO 1.33 traps (a precondition in its row stream: "How can we receive a body part,
/// after a channelReadComplete, but no read has been forwarded yet") when a connection closes,
/// with no message from the server, while a result's rows wait for their reader: NIO drains the
/// socket and reports a read cycle nobody asked for. A primary's crash under load did it to
/// `tally serve` once (the failover check). Every connection the pool opens carries
/// `ReadCompleteGuard`, which holds that cycle back: the reader gets an error, the process lives.
@Suite struct ConnectionLossWhileReadingTests {
    @Test func aConnectionCutWhileRowsWaitForTheirReaderFailsTheReadNotTheProcess() async throws {
        try await TestDatabases.shared.withDatabase(maximumConnections: 1) { _, location in
            let proxy = try await CuttableProxy(to: location)
            var through = location
            through.port = proxy.port
            let pool = DatabasePool(configuration: try through.connectionConfiguration(),
                                    settings: DatabasePool.Settings(maximumConnections: 2), logger: testLogger)
            try await pool.withConnection { connection in
                // Two thousand rows, then the statement sleeps; the reader takes one row. The
                // stream holds the rest and stops asking for more, the statement still running.
                let rows = try await connection.base.query("""
                    SELECT g, repeat('x', 100), CASE WHEN g = 2000 THEN pg_sleep(5) END FROM generate_series(1, 3000) AS g
                    """, logger: testLogger)
                var iterator = rows.makeAsyncIterator()
                #expect(try await iterator.next() != nil)
                try await Task.sleep(for: .milliseconds(300))
                // The connection ends as a crashed server's does: closed, no message.
                try await proxy.cutAll()
                try await Task.sleep(for: .milliseconds(300))
                await #expect(throws: (any Error).self) {
                    while try await iterator.next() != nil {}
                }
            }
            // The next lease opens a new connection.
            #expect(try await pool.query("SELECT 1", logger: testLogger).collect().count == 1)
            await pool.close()
            try await proxy.close()
        }
    }

    @Test func aReadCycleNobodyAskedForWaitsForTheNextRead() throws {
        let channel = EmbeddedChannel()
        let seen = ReadCompletes()
        try channel.pipeline.syncOperations.addHandlers([ReadCompleteGuard(), seen])
        channel.pipeline.fireChannelReadComplete()          // unasked: held
        #expect(seen.count == 0)
        channel.read()                                       // asked: the held cycle, then the read goes out
        #expect(seen.count == 1)
        channel.pipeline.fireChannelReadComplete()           // the read's own cycle
        #expect(seen.count == 2)
        channel.pipeline.fireChannelReadComplete()           // unasked again
        #expect(seen.count == 2)
        _ = try channel.finish()
    }
}

/// Counts the read cycles that pass.
private final class ReadCompletes: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var count = 0
    func channelReadComplete(context: ChannelHandlerContext) { count += 1 }
}

/// A TCP proxy to the test server whose client connections can be cut as a crashed server's are.
private final class CuttableProxy: Sendable {
    let port: Int
    private let server: any Channel
    private let clients = ChannelList()

    init(to target: DatabaseLocation) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let clients = self.clients
        server = try await ServerBootstrap(group: group)
            .childChannelInitializer { client in
                // Each client connection gets its own connection to the server, bytes copied both ways.
                client.setOption(.autoRead, value: false).flatMap {
                    ClientBootstrap(group: client.eventLoop).channelInitializer { upstream in
                        upstream.pipeline.addHandler(Relay(to: client))
                    }.connect(host: target.host, port: target.port)
                }.flatMap { upstream in
                    clients.channels.withLock { $0.append(client) }
                    return client.pipeline.addHandler(Relay(to: upstream)).flatMap { client.setOption(.autoRead, value: true) }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = server.localAddress!.port!
    }

    func cutAll() async throws {
        for client in clients.channels.withLock({ $0 }) { try? await client.close() }
    }

    func close() async throws {
        try await cutAll()
        try await server.close()
    }
}

private final class ChannelList: Sendable {
    let channels = Mutex<[any Channel]>([])
}

/// Writes what one side reads to the other, and closes the other when this side closes.
private final class Relay: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let peer: any Channel

    init(to peer: any Channel) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }
}
