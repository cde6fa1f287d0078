import ArgumentParser
import Foundation
import TallyCore
import TallyStore

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "API keys.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API key and print its secret (shown only this once).")

        @Flag(help: "A platform key: the operator's key, allowed everything.") var platform = false
        @Option(help: "The organisation id of an organisation key.") var org: String?
        @Option(help: "admin or member.") var role: String = "admin"
        @Option(help: "A name to tell the key apart.") var name: String = "cli"

        func validate() throws {
            guard platform != (org != nil) else {
                throw ValidationError("Pass either --platform or --org <id>.")
            }
            if !platform, KeyRole(rawValue: role) == nil || role == "platform" {
                throw ValidationError("--role must be admin or member.")
            }
            if let org, UUID(idString: org) == nil {
                throw ValidationError("--org must be an organisation id.")
            }
        }

        func run() async throws {
            let environment = TallyEnvironment()
            let logger = environment.bootstrapLogging()
            let session = try await DatabaseSession.open(environment, logger: logger)
            defer { session.close(logger: logger) }
            let migrations = try environment.migrations()
            let orgID = org.flatMap { UUID(idString: $0) }
            let keyRole: KeyRole = platform ? .platform : KeyRole(rawValue: role)!
            let created = try await session.withPool(logger: logger) { pool in
                try await MigrationRunner(pool: pool, logger: logger).apply(migrations)
                let stores = Stores(database: Database(pool: pool, logger: logger))
                if let orgID, try await stores.orgs.find(orgID) == nil {
                    throw ValidationError("There is no organisation \(orgID.idString).")
                }
                return try await stores.keys.create(orgID: orgID, name: name, role: keyRole, at: SystemWallClock().now())
            }
            print(created.secret)
        }
    }
}
