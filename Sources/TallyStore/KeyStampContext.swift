import TallyCore

extension KeyStamp {
    /// The key of the request being served, set once by the HTTP layer's authentication for the
    /// whole request: every ledger write, plan change and settings change made while serving it
    /// records this key. A task-local rather than a parameter of every use case: it is audit
    /// context, like the request id in the logs, and no use case decides anything by it. Spends,
    /// which a batch of another request's task may write, capture it when they are queued.
    @TaskLocal public static var current: KeyStamp?
}
