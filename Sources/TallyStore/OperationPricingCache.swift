import Synchronization
import TallyCore

/// Operations as pricing reads them (an operation and its components), kept while the
/// catalog's version stays (sql/0016). A request brings the version its context was read with;
/// an entry is used only for that same version, and a request with another version empties
/// the cache, so no request prices with operations older than those its context saw. A read
/// that began under an older version is not kept.
final class OperationPricingCache: Sendable {
    typealias Pricing = (operation: OperationDefinition, components: [String: OperationDefinition])
    /// Operations are few; beyond this many codes the cache starts again rather than grows.
    static let entriesMaximum = 10_000

    private struct State {
        var version: Int64 = 0
        var entries: [String: Pricing] = [:]
    }

    private let state = Mutex(State())

    /// The pricing of `code` at `version`, if kept. A newer version empties the cache.
    func pricing(_ code: String, version: Int64) -> Pricing? {
        state.withLock { state in
            if version > state.version {
                state.version = version
                state.entries = [:]
            }
            return version == state.version ? state.entries[code] : nil
        }
    }

    /// Keeps what was read for `version`, unless the catalog has moved on meanwhile.
    func keep(_ pricing: Pricing, for code: String, version: Int64) {
        state.withLock { state in
            guard version == state.version else { return }
            if state.entries.count >= Self.entriesMaximum { state.entries = [:] }
            state.entries[code] = pricing
        }
    }
}
