import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// Plans, operations and credit packs (platform-managed reference data).
public struct CatalogStore: Sendable {
    let database: Database
    let pricingCache = OperationPricingCache()

    // MARK: Plans

    public func createPlan(_ plan: Plan, at now: Instant) async throws {
        try plan.validate()
        do {
            try await database.pool.query(PlanRows.insert(plan, at: now), logger: database.logger)
        } catch let error as PSQLError where error.sqlState == SQLState.uniqueViolation {
            throw TallyError.conflict("plan_exists", "A plan with code '\(plan.code)' exists; plans in use are immutable, so a new price is a new code.")
        }
    }

    /// Replaces a plan that no organisation uses yet; a plan in use is immutable (409).
    public func replacePlan(_ plan: Plan, at now: Instant) async throws {
        try plan.validate()
        try await database.transaction { connection in
            let rows = try await connection.query("SELECT code FROM plans WHERE code = \(plan.code) FOR UPDATE", logger: database.logger).collect()
            guard !rows.isEmpty else { throw TallyError.notFound("The plan '\(plan.code)'") }
            if try await PlanRows.isInUse(plan.code, on: connection, logger: database.logger) {
                throw TallyError.conflict("plan_in_use", "Organisations use plan '\(plan.code)', so it cannot change; create a plan with a new code.")
            }
            try await connection.query("DELETE FROM plans WHERE code = \(plan.code)", logger: database.logger)
            try await connection.query(PlanRows.insert(plan, at: now), logger: database.logger)
        }
    }

    public func plan(_ code: String) async throws -> Plan? {
        let rows = try await database.pool.query("SELECT \(unescaped: PlanRows.columns) FROM plans WHERE code = \(code)", logger: database.logger).collect()
        return try rows.first.map(PlanRows.decode)
    }

    public func plans(limit: Int, after cursor: String?) async throws -> Page<Plan> {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: PlanRows.columns) FROM plans WHERE (\(cursor)::text IS NULL OR code > \(cursor))
            ORDER BY code LIMIT \(limit + 1)
            """, logger: database.logger).collect()
        return try Self.page(rows.map(PlanRows.decode), limit: limit, cursor: \.code)
    }

    // MARK: Operations

    public func createOperation(_ operation: OperationDefinition, at now: Instant) async throws {
        try await database.transaction { connection in
            try await validateComponents(of: operation, on: connection)
            let rows = try await connection.query(OperationRows.insert(operation, at: now).appending(" ON CONFLICT (code) DO NOTHING RETURNING code"),
                                                  logger: database.logger).collect()
            guard !rows.isEmpty else { throw TallyError.conflict("operation_exists", "An operation with code '\(operation.code)' exists.") }
        }
    }

    /// Replaces an operation's prices; spends already made keep the credits they were charged.
    public func replaceOperation(_ operation: OperationDefinition, at now: Instant) async throws {
        try await database.transaction { connection in
            let rows = try await connection.query("SELECT code FROM operations WHERE code = \(operation.code) FOR UPDATE", logger: database.logger).collect()
            guard !rows.isEmpty else { throw TallyError.notFound("The operation '\(operation.code)'") }
            try await validateComponents(of: operation, on: connection)
            if operation.isPipeline {
                let users = try await connection.query("SELECT code FROM operations WHERE \(operation.code) = ANY(components) LIMIT 1", logger: database.logger).collect()
                if let user = users.first, let name = try? user.decode(String.self) {
                    throw TallyError.validation("'\(operation.code)' is a component of '\(name)' and so cannot become a pipeline.", field: "components")
                }
            }
            try await connection.query("DELETE FROM operations WHERE code = \(operation.code)", logger: database.logger)
            try await connection.query(OperationRows.insert(operation, at: now), logger: database.logger)
        }
    }

    /// Components must be existing operations that are not pipelines (locked while we look).
    private func validateComponents(of operation: OperationDefinition, on connection: DatabaseConnection) async throws {
        var simple: Set<String> = []
        if operation.isPipeline {
            let rows = try await connection.query("""
                SELECT code FROM operations WHERE code = ANY(\(operation.components)) AND cardinality(components) = 0 FOR SHARE
                """, logger: database.logger).collect()
            simple = Set(try rows.map { try $0.decode(String.self) })
        }
        try operation.validate(componentIsOperation: { simple.contains($0) })
    }

    public func operation(_ code: String) async throws -> OperationDefinition? {
        try await pricing(code)?.operation
    }

    /// An operation with its components as of the catalog's `version` (the request's context
    /// brings it): from the cache while the version stays, else read and kept.
    public func pricing(_ code: String, catalogVersion version: Int64) async throws -> (operation: OperationDefinition, components: [String: OperationDefinition])? {
        if let kept = pricingCache.pricing(code, version: version) { return kept }
        guard let read = try await pricing(code) else { return nil }
        pricingCache.keep(read, for: code, version: version)
        return read
    }

    /// An operation with its components, read in one query: what pricing needs.
    public func pricing(_ code: String) async throws -> (operation: OperationDefinition, components: [String: OperationDefinition])? {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: OperationRows.columns) FROM operations
            WHERE code = \(code) OR code = ANY((SELECT components FROM operations WHERE code = \(code))::text[])
            """, logger: database.logger).collect()
        let all = try rows.map(OperationRows.decode)
        guard let operation = all.first(where: { $0.code == code }) else { return nil }
        return (operation, Dictionary(uniqueKeysWithValues: all.filter { $0.code != code }.map { ($0.code, $0) }))
    }

    public func operations(limit: Int, after cursor: String?) async throws -> Page<OperationDefinition> {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: OperationRows.columns) FROM operations WHERE (\(cursor)::text IS NULL OR code > \(cursor))
            ORDER BY code LIMIT \(limit + 1)
            """, logger: database.logger).collect()
        return try Self.page(rows.map(OperationRows.decode), limit: limit, cursor: \.code)
    }

    // MARK: Credit packs

    public func createPack(_ pack: CreditPack, at now: Instant) async throws {
        try pack.validate()
        let rows = try await database.pool.query("""
            INSERT INTO credit_packs (code, name, credits, price, currency, expires_after_days, created_at)
            VALUES (\(pack.code), \(pack.name), \(pack.credits), \(MoneyMicros(pack.price)), \(pack.price.currency.code), \(pack.expiresAfterDays), \(now))
            ON CONFLICT (code) DO NOTHING RETURNING code
            """, logger: database.logger).collect()
        guard !rows.isEmpty else { throw TallyError.conflict("credit_pack_exists", "A credit pack with code '\(pack.code)' exists.") }
    }

    public func pack(_ code: String) async throws -> CreditPack? {
        let rows = try await database.pool.query("SELECT \(unescaped: PackRows.columns) FROM credit_packs WHERE code = \(code)", logger: database.logger).collect()
        return try rows.first.map(PackRows.decode)
    }

    public func packs(limit: Int, after cursor: String?) async throws -> Page<CreditPack> {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: PackRows.columns) FROM credit_packs WHERE (\(cursor)::text IS NULL OR code > \(cursor))
            ORDER BY code LIMIT \(limit + 1)
            """, logger: database.logger).collect()
        return try Self.page(rows.map(PackRows.decode), limit: limit, cursor: \.code)
    }

    /// True when the catalog has nothing in it (the demo catalog loads only then).
    public func isEmpty() async throws -> Bool {
        let rows = try await database.pool.query("""
            SELECT NOT EXISTS (SELECT 1 FROM plans) AND NOT EXISTS (SELECT 1 FROM operations) AND NOT EXISTS (SELECT 1 FROM credit_packs)
            """, logger: database.logger).collect()
        return try rows[0].decode(Bool.self)
    }

    static func page<Item: Sendable>(_ items: [Item], limit: Int, cursor: KeyPath<Item, String>) -> Page<Item> {
        let hasMore = items.count > limit
        let shown = Array(items.prefix(limit))
        return Page(items: shown, nextCursor: hasMore ? shown.last?[keyPath: cursor] : nil)
    }
}

extension PostgresQuery {
    func appending(_ sql: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: self.sql + sql, binds: self.binds)
    }
}

/// Decoding of exact decimals that the catalog keeps as strings inside JSON.
enum CatalogJSON {
    static func credits(_ value: JSONValue?) throws -> Credits {
        guard case .string(let text)? = value else { throw PostgresDecodingError.Code.failure }
        return try Credits(parsing: text)
    }
}
