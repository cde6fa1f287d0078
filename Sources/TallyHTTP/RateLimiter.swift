import Foundation
import Synchronization

/// Requests per second per API key, with a burst: a token bucket per key.
///
/// Counting is per process (several replicas each allow the full rate). Keys are spread over
/// 64 shards, each with its own lock, so that requests of different keys almost never wait for
/// one another: there is no lock shared by every request.
public final class RateLimiter: Sendable {
    public struct Limit: Sendable, Equatable {
        public let perSecond: Int
        public let burst: Int

        public init(perSecond: Int, burst: Int) {
            self.perSecond = max(0, perSecond)
            self.burst = max(1, burst)
        }

        /// nil turns limiting off.
        public static func parse(_ text: String?, default fallback: Limit?) -> Limit? {
            guard let text, !text.isEmpty else { return fallback }
            // "200" or "200/400" (rate/burst); 0 is off.
            let parts = text.split(separator: "/").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard let rate = parts.first ?? nil, rate >= 0 else { return fallback }
            guard rate > 0 else { return nil }
            let burst = parts.count > 1 ? (parts[1] ?? rate * 2) : rate * 2
            return Limit(perSecond: rate, burst: max(burst, 1))
        }
    }

    public enum Decision: Sendable, Equatable {
        case allowed(remaining: Int)
        /// Refused; a token comes back after `retryAfterSeconds` (rounded up, at least 1).
        case limited(retryAfterSeconds: Int)
    }

    private struct Bucket {
        var tokens: Double
        var updatedNanos: UInt64
    }

    private final class Shard: Sendable {
        let buckets = Mutex<[String: Bucket]>([:])
    }

    private static let shardCount = 64
    private static let keysPerShardMaximum = 4_096
    private let shards: [Shard]
    private let now: @Sendable () -> UInt64

    public init(now: @escaping @Sendable () -> UInt64 = RateLimiter.monotonicNanos) {
        self.shards = (0..<Self.shardCount).map { _ in Shard() }
        self.now = now
    }

    public static func monotonicNanos() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// Takes one token from `key`'s bucket under `limit`.
    public func take(_ key: String, limit: Limit) -> Decision {
        let shard = shards[Int(UInt(bitPattern: key.hashValue) % UInt(Self.shardCount))]
        let now = self.now()
        return shard.buckets.withLock { buckets in
            if buckets[key] == nil, buckets.count >= Self.keysPerShardMaximum {
                // Bounded memory whatever keys are presented: a bucket that has refilled is the
                // same as none, so those go first.
                let full = UInt64(Double(limit.burst) / Double(max(1, limit.perSecond)) * 1e9)
                buckets = buckets.filter { now &- $0.value.updatedNanos < full }
                guard buckets.count < Self.keysPerShardMaximum else { return .allowed(remaining: limit.burst - 1) }
            }
            var bucket = buckets[key] ?? Bucket(tokens: Double(limit.burst), updatedNanos: now)
            let elapsed = Double(now &- bucket.updatedNanos) / 1e9
            bucket.tokens = min(Double(limit.burst), bucket.tokens + elapsed * Double(limit.perSecond))
            bucket.updatedNanos = now
            defer { buckets[key] = bucket }
            guard bucket.tokens >= 1 else {
                let wait = limit.perSecond > 0 ? (1 - bucket.tokens) / Double(limit.perSecond) : 1
                return .limited(retryAfterSeconds: max(1, Int(wait.rounded(.up))))
            }
            bucket.tokens -= 1
            return .allowed(remaining: Int(bucket.tokens))
        }
    }
}
