import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import TallyCore

/// Organisation keys recently recognised, so that a request need not look its key up again.
///
/// Safe only while revocations reach it at once, so it caches only while it follows them: every
/// change to `api_keys` is announced on the `tally_api_keys` channel (a trigger, migration 0012)
/// with the key's hash, and `followRevocations` listens on a connection of its own and evicts the
/// key when the change commits, on every replica. While that connection is down nothing is cached
/// and what was is dropped. An announcement also voids every lookup in flight (the generation):
/// a lookup that read a key just before its revocation cannot put it back after the eviction.
/// Entries live at most `lifetime` all the same, should an announcement ever be missed.
public final class APIKeyCache: Sendable {
    public static let channel = "tally_api_keys"
    static let entriesMaximum = 100_000
    static let lifetime: Duration = .seconds(30)
    /// How often the listening connection is checked; a check that takes longer than
    /// `heartbeatDeadline` closes it (a peer gone without a word must not keep the cache on).
    static let heartbeat: Duration = .seconds(5)
    static let heartbeatDeadline: Duration = .seconds(2)

    private struct Entry {
        let key: AuthenticatedKey
        let cachedAt: ContinuousClock.Instant
    }

    private struct State {
        var entries: [[UInt8]: Entry] = [:]
        var generation: UInt64 = 0
        var following = false
    }

    private let state = Mutex(State())

    public init() {}

    /// True while revocations are followed (and keys therefore cached).
    public var isFollowing: Bool { state.withLock { $0.following } }

    func lookup(_ hash: [UInt8]) -> AuthenticatedKey? {
        state.withLock { state in
            guard state.following, let entry = state.entries[hash] else { return nil }
            guard ContinuousClock.now - entry.cachedAt < Self.lifetime else {
                state.entries[hash] = nil
                return nil
            }
            return entry.key
        }
    }

    /// The generation to pass to `store` after a lookup; nil when nothing may be cached.
    func generation() -> UInt64? {
        state.withLock { $0.following ? $0.generation : nil }
    }

    func store(_ key: AuthenticatedKey, hash: [UInt8], generation: UInt64) {
        state.withLock { state in
            guard state.following, state.generation == generation else { return }
            if state.entries.count >= Self.entriesMaximum { state.entries.removeAll(keepingCapacity: true) }
            state.entries[hash] = Entry(key: key, cachedAt: .now)
        }
    }

    /// A key changed (its hash in hex, as announced): forget it, and void the lookups in flight.
    func evict(announced payload: String) {
        if let hash = Hex.bytes(payload) { return forget(hash) }
        state.withLock { state in
            state.generation &+= 1
            state.entries.removeAll()
        }
    }

    /// Forgets a key this process changed, before it answers: its announcement comes a moment later.
    func forget(_ hash: [UInt8]) {
        state.withLock { state in
            state.generation &+= 1
            state.entries[hash] = nil
        }
    }

    private func setFollowing(_ following: Bool) {
        state.withLock { state in
            state.following = following
            state.generation &+= 1
            state.entries.removeAll()
        }
    }

    /// Listens for key changes until the task is cancelled, reconnecting after a failure (every
    /// second at first, at most every 5 s). Keys are cached only while it listens.
    public func followRevocations(on pool: DatabasePool, logger: Logger) async {
        var pause: Duration = .seconds(1)
        var warned = false
        while !Task.isCancelled {
            do {
                let connection = try await pool.openDedicatedConnection(logger: logger)
                // LISTEN has a deadline too: not following within 5 s, the connection is closed
                // and the loop starts again (nothing is cached meanwhile).
                let deadline = connection.eventLoop.scheduleTask(in: .seconds(5)) { [self] in
                    if !isFollowing { connection.close().whenComplete { _ in } }
                }
                defer { deadline.cancel() }
                var failure: (any Error)?
                do {
                    try await withTaskCancellationHandler {
                        try await follow(connection, logger: logger)
                    } onCancel: {
                        connection.close().whenComplete { _ in }
                    }
                } catch {
                    failure = error
                }
                // Closed for sure before it goes, however following ended: PostgresNIO insists.
                try? await connection.close()
                if let failure { throw failure }
            } catch {
                // Once per outage: when following stops, or when it never started.
                let wasFollowing = isFollowing
                if wasFollowing { pause = .seconds(1) }
                if !Task.isCancelled, wasFollowing || !warned {
                    warned = true
                    logger.warning("not following API key revocations; every request looks its key up until this connection is back",
                                   metadata: ["error": "\(DatabaseUnavailable.describe(error))"])
                }
            }
            setFollowing(false)
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(5))
        }
        setFollowing(false)
    }

    private func follow(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.listen(on: Self.channel) { announcements in
            // Caching starts only once LISTEN is in place: no revocation can be missed from here on.
            setFollowing(true)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await announcement in announcements { self.evict(announced: announcement.payload) }
                    throw DatabaseUnavailable(.connectionLost)
                }
                group.addTask {
                    while true {
                        try await Task.sleep(for: Self.heartbeat)
                        _ = try await withDeadline(seconds: Int(Self.heartbeatDeadline.components.seconds), "the API key listener's check") {
                            for try await _ in try await connection.query("SELECT 1", logger: logger) {}
                            return true
                        }
                    }
                }
                // Whichever ends first (an error, a failed check) ends both: closing the
                // connection ends the listening too.
                defer {
                    connection.close().whenComplete { _ in }
                    group.cancelAll()
                }
                try await group.next()
            }
        }
    }
}
