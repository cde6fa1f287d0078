import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TallyCore
import TallyStore

/// `Tally-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint's secret>`.
public enum WebhookSignature {
    public static let header = "Tally-Signature"

    public static func sign(body: [UInt8], secret: String, timestamp: Int64) -> String {
        "t=\(timestamp),v1=\(hex(body: body, secret: secret, timestamp: timestamp))"
    }

    static func hex(body: [UInt8], secret: String, timestamp: Int64) -> String {
        var message = Array("\(timestamp).".utf8)
        message.append(contentsOf: body)
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return Hex.lowercase(code)
    }

    /// What a receiver does: recompute the code for the header's timestamp and compare.
    public static func verify(header: String, body: [UInt8], secret: String) -> Bool {
        var timestamp: Int64?
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            switch pair[0] {
            case "t": timestamp = Int64(pair[1])
            case "v1": signatures.append(String(pair[1]))
            default: break
            }
        }
        guard let timestamp else { return false }
        let expected = hex(body: body, secret: secret, timestamp: timestamp)
        return signatures.contains { KeyMaterial.constantTimeEquals(Array($0.utf8), Array(expected.utf8)) }
    }
}

/// Sends due webhook deliveries: claims a batch, posts each signed body, records the attempt,
/// and schedules a retry with back-off for at least three days. At least once: a delivery whose
/// worker dies mid-way is due again when its lease lapses; receivers deduplicate by event id.
public struct WebhookDeliverer: Sendable {
    public static let requestTimeoutSeconds: Int64 = 10
    public static let concurrentSendsMaximum = 8

    let store: WebhookStore
    let transport: WebhookTransport
    let clock: any WallClock
    let logger: Logger

    /// `allowPrivateTargets`: every endpoint may reach private addresses (`TALLY_WEBHOOKS_ALLOW_PRIVATE`);
    /// otherwise only those the platform key saved.
    public init(store: WebhookStore, allowPrivateTargets: Bool, clock: any WallClock, logger: Logger,
                timeout: TimeAmount = .seconds(WebhookDeliverer.requestTimeoutSeconds)) {
        self.store = store
        self.transport = WebhookTransport(allowPrivateAddresses: allowPrivateTargets, timeout: timeout)
        self.clock = clock
        self.logger = logger
    }

    /// Delivers what is due now, in batches, until nothing is; returns the attempts made.
    @discardableResult
    public func deliverDue(batch: Int = 50) async throws -> Int {
        var attempts = 0
        while true {
            let due = try await store.claimDue(at: clock.now(), limit: batch)
            guard !due.isEmpty else { return attempts }
            try await withThrowingTaskGroup(of: Void.self) { group in
                var running = 0
                for delivery in due {
                    if running == Self.concurrentSendsMaximum {
                        try await group.next()
                        running -= 1
                    }
                    group.addTask { try await send(delivery) }
                    running += 1
                }
                try await group.waitForAll()
            }
            attempts += due.count
        }
    }

    private func send(_ delivery: DueDelivery) async throws {
        let start = ContinuousClock.now
        let sentAt = clock.now()
        let headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", "Tally-Webhooks/1"),
            ("Tally-Event-Id", delivery.eventID.idString),
            ("Tally-Delivery-Id", delivery.deliveryID.idString),
            (WebhookSignature.header, WebhookSignature.sign(body: delivery.body, secret: delivery.secret, timestamp: sentAt.secondsSinceEpoch)),
        ]
        // The destination is checked at this attempt and connected to as checked; nothing is
        // followed, and only a status code and a generic failure class are recorded.
        let outcome = await transport.post(url: delivery.url, headers: headers, body: delivery.body, privateAllowed: delivery.privateAllowed)
        let statusCode = outcome.statusCode
        let failure = outcome.failure
        let elapsed = ContinuousClock.now - start
        let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        let now = clock.now()
        let next = failure == nil ? nil : WebhookRetry.nextAttempt(after: delivery.attempt, firstAttemptAt: delivery.firstAttemptAt, now: now)
        try await store.record(delivery, at: now, statusCode: statusCode, error: failure, durationMilliseconds: milliseconds,
                               delivered: failure == nil, nextAttemptAt: next)
        if let failure {
            logger.info("webhook attempt failed", metadata: [
                "delivery.id": "\(delivery.deliveryID.idString)", "attempt": "\(delivery.attempt)", "error": "\(failure)",
                "retry_at": "\(next?.rfc3339 ?? "never")",
            ])
        }
    }
}
