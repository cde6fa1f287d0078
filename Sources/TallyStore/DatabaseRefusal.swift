import PostgresNIO
import TallyCore

/// What PostgreSQL's refusals mean to a client, decided here where the SQL is: the HTTP layer
/// maps the result, it never compares SQLSTATE codes itself.
public enum DatabaseRefusal {
    /// A value PostgreSQL refuses to store: beyond a column's range or a limit constraint (22003,
    /// `*_limit` checks), or text it cannot hold (22021, 22P05). The decoders refuse such input
    /// first, naming the field; this is the net under them, so that it is never a 500.
    public static func refusedValue(_ error: any Error) -> TallyError? {
        guard let error = error as? PSQLError, let state = error.sqlState else { return nil }
        switch state {
        case "22003":
            return TallyError(.unprocessable, code: "out_of_range", detail: "An amount is beyond what can be stored.")
        case SQLState.checkViolation where error.serverInfo?[.constraintName]?.hasSuffix("_limit") == true:
            return TallyError(.unprocessable, code: "out_of_range", detail: "An amount is beyond what an organisation may hold.")
        case "22021", "22P05":
            return TallyError(.unprocessable, code: "invalid_text", detail: "The request holds text that cannot be stored (such as a NUL character).")
        default:
            return nil
        }
    }

    /// Lock or statement timeouts (55P03, 57014): the client may retry.
    public static func isOverload(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, let state = error.sqlState else { return false }
        return state == "55P03" || state == "57014"
    }
}
