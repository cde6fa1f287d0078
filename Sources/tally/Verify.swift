import ArgumentParser
import TallyStore

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recompute every bucket and invoice from the ledger; print each mismatch and exit 1 if there is any."
    )

    func run() async throws {
        let environment = TallyEnvironment()
        let logger = environment.bootstrapLogging()
        let session = try await DatabaseSession.open(environment, logger: logger)
        defer { session.close(logger: logger) }
        let progress = CLIProgress("verify", logger: logger)
        let mismatches = try await session.withPool(logger: logger, deadlineSeconds: 3600) { pool in
            try await Stores(database: Database(pool: pool, logger: logger)).verifier.verify { part, done, all in
                progress.report(done: done, total: all, unit: "parts checked (last: \(part))", final: true)
            }
        }
        for mismatch in mismatches { print(mismatch) }
        guard mismatches.isEmpty else {
            print("\(mismatches.count) mismatch(es)")
            throw ExitCode(1)
        }
        print("ledger verified: no drift")
    }
}
