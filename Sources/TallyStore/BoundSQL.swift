import PostgresNIO

/// SQL text owned by the code, with every value bound as a parameter: `bind(x)` appends `x` to
/// the bindings and returns its placeholder (`$7`). Used where a statement's shape depends on
/// how many rows it writes; fixed statements use PostgresQuery's string interpolation.
struct BoundSQL {
    private(set) var bindings = PostgresBindings()

    mutating func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value) -> String {
        bindings.append(value)
        return "$\(bindings.count)"
    }

    mutating func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value?) -> String {
        bindings.append(value)
        return "$\(bindings.count)"
    }

    /// Binds ledger rows and returns the `WITH` parts that write them, numbered after what is
    /// bound so far, and how many existing buckets they must move.
    mutating func bind(_ rows: LedgerRows) throws -> (parts: String, moves: Int) {
        let first = bindings.count + 1
        let moves = try rows.append(to: &bindings)
        return (LedgerRows.sql(first: first), moves)
    }

    func query(_ sql: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: sql, binds: bindings)
    }
}
