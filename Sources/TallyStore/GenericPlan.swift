/// Statements that run on every request keep one plan.
///
/// PostgreSQL plans a prepared statement again on each execution for as long as a plan made
/// for the values looks cheaper than its generic plan. With an array parameter (`$1::uuid[]`)
/// it sees the array's length (three organisations, say) where the generic plan guesses ten,
/// so the values' plan always looked cheaper: the context reads were planned again on 87% of
/// their executions and the spends' claim on 60%, and planning took a third of their time
/// (pg_stat_statements with track_planning, `make bench`). Behind a scalar subquery the length
/// is hidden from both plans, both guess ten, and the generic plan wins after the first five:
/// the same shape (a nested loop of index lookups per element), made once per connection.
enum GenericPlan {
    /// `sql` with every array parameter `$n::type[]` read through `(SELECT $n::type[])`.
    static func arraysHidden(_ sql: String) -> String {
        sql.replacing(/\$(\d+)::([a-z_]+)\[\]/) { match in "(SELECT $\(match.1)::\(match.2)[])" }
    }
}
