/// Thrown when work does not finish within its deadline.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let what: String
    public let seconds: Int
    public var description: String { "\(what) did not finish within \(seconds) s" }
}

/// Runs `body`, cancelling it after `seconds`. Start-up uses it so that an unreachable database
/// ends the process with a clear error instead of a connection pool retrying forever.
public func withDeadline<T: Sendable>(seconds: Int, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw DeadlineExceeded(what: what, seconds: seconds)
        }
        return value
    }
}
