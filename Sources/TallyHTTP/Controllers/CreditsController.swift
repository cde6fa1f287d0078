import Foundation
import Hummingbird
import TallyCatalog
import TallyCore
import TallyJSON
import TallyStore

/// Balance, grants, usage, reversals, holds and the ledger of one organisation.
struct CreditsController {
    let services: AppServices

    func register(on v1: RouterGroup<TallyRequestContext>) {
        v1.get("/orgs/{org}/balance") { _, context in
            let (scope, balance) = try await services.orgBalance(context)
            return try Response.json(BalanceResponse(balance, costPerCredit: scope.context.period?.costPerCredit))
        }
        v1.post("/orgs/{org}/grants") { request, context in
            try await grant(request, context)
        }
        v1.post("/orgs/{org}/usage") { request, context in
            try await consume(request, context)
        }
        v1.post("/orgs/{org}/usage/batch") { request, context in
            try await consumeBatch(request, context)
        }
        v1.post("/orgs/{org}/usage/{entry}/reverse") { request, context in
            try await reverse(request, context)
        }
        v1.post("/orgs/{org}/reservations") { request, context in
            try await hold(request, context)
        }
        v1.post("/orgs/{org}/reservations/{reservation}/commit") { request, context in
            try await commit(request, context)
        }
        v1.post("/orgs/{org}/reservations/{reservation}/release") { request, context in
            try await release(request, context)
        }
        v1.get("/orgs/{org}/ledger") { request, context in
            try await ledger(request, context)
        }
    }

    /// Only the platform key grants credits: an organisation never mints its own.
    func grant(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        try context.requirePlatform()
        let scope = try await services.orgScope(context)
        var request = request
        let json = try await request.jsonBody(context: context)
        let body = try StrictJSONDecoder.decode(GrantBody.self, from: json)
        try Validate.positive(body.credits)
        if let reason = body.reason { try Validate.text(reason, field: "reason") }
        let claim = try Idempotency.claim(request, body: json, required: true)
        let stored = try await services.stores.grants.grant(
            orgID: scope.org.id, at: scope.now,
            GrantRequest(credits: body.credits, source: body.source, priority: body.priority, effectiveAt: body.effectiveAt,
                         expiresAt: body.expiresAt, reason: body.reason),
            claim: claim, render: Idempotency.renderer(GrantResponse.init)
        )
        return Idempotency.response(stored)
    }

    func consume(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        // The context last read of the organisation prices the spend (its transaction checks that
        // it is still current). Read afresh, it also brings a finished answer under the key: a
        // replay then costs one query and no transaction; else the spend's claim finds it.
        let key = request.headers[Idempotency.header]
        let scope = try await services.orgScope(context, idempotencyKey: key, forSpend: true)
        var request = request
        let json = try await request.jsonBody(context: context)
        return Idempotency.response(try await spend(json, key: key, path: request.uri.path, scope: scope, context: context))
    }

    /// One spend, from its body and key: a `POST .../usage`, or one item of a usage batch.
    func spend(_ json: JSONValue, key: String?, path: String, scope: OrgScope, context: TallyRequestContext) async throws -> StoredResponse {
        var scope = scope
        let body = try StrictJSONDecoder.decode(UsageBody.self, from: json)
        let claim = try Idempotency.claim(key: key, method: "POST", path: path, body: json, required: true)
        if let answer = scope.context.storedAnswer, let claim {
            guard answer.requestHash == claim.requestHash else { throw TallyError.idempotencyConflict }
            return answer.response
        }
        // A period that moves on while the spend is in flight (a renewal at the boundary) leaves
        // nothing written: the spend is priced again on the organisation's new terms.
        for _ in 1...3 {
            let spend = try await services.price(body, scope: scope)
            do {
                let stored = try await services.stores.consumption.consume(
                    orgID: scope.org.id, at: scope.now, spend, terms: scope.context.spendTerms, claim: claim,
                    render: Idempotency.renderer(SpendResponse.init), pricedWith: scope.context.fingerprint
                )
                SpendMetrics.answered(stored, credits: spend.credits)
                return stored
            } catch is SpendTermsChanged {
                scope = try await services.orgScope(context)
            } catch let error where DatabaseUnavailable.isConnectionLoss(error) {
                SpendMetrics.refusedForDatabase()
                throw error
            }
        }
        throw TallyError(.unavailable, code: "unavailable", detail: "The organisation's billing period is changing; retry.")
    }

    func reverse(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let scope = try await services.orgScope(context, role: .admin)
        guard let text = context.parameters.get("entry"), let entryID = UUID(idString: text) else {
            throw TallyError.notFound("The usage entry")
        }
        var request = request
        let json = try await request.decodeOptionalJSON(context: context)
        let body = try StrictJSONDecoder.decode(ReverseBody.self, from: json)
        if let credits = body.credits { try Validate.positive(credits) }
        if let reason = body.reason { try Validate.text(reason, field: "reason") }
        if let actor = body.actor { try Validate.text(actor, field: "actor") }
        let claim = try Idempotency.claim(request, body: json, required: false)
        let stored = try await services.stores.reversals.reverse(
            orgID: scope.org.id, at: scope.now,
            ReversalRequest(usageEntryID: entryID, credits: body.credits, reason: body.reason, actor: body.actor ?? "system"),
            claim: claim, render: Idempotency.renderer(ReversalResponse.init)
        )
        return Idempotency.response(stored)
    }

    func hold(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let scope = try await services.orgScope(context)
        var request = request
        let json = try await request.jsonBody(context: context)
        let body = try StrictJSONDecoder.decode(ReservationBody.self, from: json)
        // The key first, as for a spend: a missing key is the answer whatever the body prices to.
        let claim = try Idempotency.claim(request, body: json, required: true)
        let spend = try await services.price(body.usage, scope: scope, isHold: true)
        let stored = try await services.stores.reservations.hold(
            orgID: scope.org.id, at: scope.now, HoldRequest(credits: spend.credits, ttlSeconds: body.ttlSeconds, usage: spend.usage),
            claim: claim, render: Idempotency.renderer(ReservationResponse.init)
        )
        return Idempotency.response(stored)
    }

    func commit(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let scope = try await services.orgScope(context)
        let reservationID = try reservationParameter(context)
        var request = request
        let json = try await request.decodeOptionalJSON(context: context)
        let body = try StrictJSONDecoder.decode(CommitBody.self, from: json)
        if let credits = body.credits, credits.isNegative {
            throw TallyError.validation("credits must not be negative.", field: "credits")
        }
        if let actor = body.actor { try Validate.text(actor, field: "actor") }
        let claim = try Idempotency.claim(request, body: json, required: false)
        let stored = try await services.stores.reservations.commit(
            orgID: scope.org.id, reservationID: reservationID, credits: body.credits, actor: body.actor, at: scope.now,
            terms: scope.context.spendTerms, claim: claim, render: Idempotency.renderer(status: 200, ReservationResponse.init)
        )
        return Idempotency.response(stored)
    }

    func release(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let scope = try await services.orgScope(context)
        let reservationID = try reservationParameter(context)
        var request = request
        let json = try await request.decodeOptionalJSON(context: context)
        _ = try StrictJSONDecoder.decode(EmptyBody.self, from: json)
        let claim = try Idempotency.claim(request, body: json, required: false)
        let stored = try await services.stores.reservations.release(
            orgID: scope.org.id, reservationID: reservationID, at: scope.now,
            claim: claim, render: Idempotency.renderer(status: 200, ReservationResponse.init)
        )
        return Idempotency.response(stored)
    }

    func ledger(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let scope = try await services.orgScope(context)
        let limit = try PageSize.resolve(try request.queryInt("limit"))
        var cursor: Int64?
        if let text = request.queryString("cursor") {
            guard let value = Int64(text), value > 0 else { throw TallyError.validation("cursor is not valid.", field: "cursor") }
            cursor = value
        }
        let (filter, reversalsAsRefunds) = try LedgerFilterQuery.parse(request)
        let page = try await services.stores.ledger.entries(orgID: scope.org.id, filter: filter, limit: limit, before: cursor)
        return try Response.json(ListResponse(data: page.items.map { LedgerEntryDTO($0, reversalsAsRefunds: reversalsAsRefunds) },
                                              nextCursor: page.nextCursor))
    }

    private func reservationParameter(_ context: TallyRequestContext) throws -> UUID {
        guard let text = context.parameters.get("reservation"), let id = UUID(idString: text) else {
            throw TallyError.notFound("The reservation")
        }
        return id
    }
}

/// A body with no fields: `{}` or none. Any member is refused by name (a synthesized decoder of
/// an empty struct would never look at the object, and so accept anything).
struct EmptyBody: Decodable {
    private struct AnyKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        if let key = container.allKeys.first {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "Unknown field: this request takes none.")
        }
    }
}

struct BalanceResponse: Encodable {
    let available: Credits
    let reserved: Credits
    let buckets: [BucketDTO]
    let period: PeriodUsageDTO?
    let costPerCredit: MoneyDTO?

    init(_ balance: Balance, costPerCredit: Money?) {
        available = balance.available
        reserved = balance.reserved
        buckets = balance.buckets.map(BucketDTO.init)
        period = balance.period.map(PeriodUsageDTO.init)
        self.costPerCredit = costPerCredit.map(MoneyDTO.init)
    }
}

/// `{"start", "end", "allocation", "used", "used_percent", "overage_credits"}`.
struct PeriodUsageDTO: Encodable {
    let start: Instant
    let end: Instant
    let allocation: Credits
    let used: Credits
    let usedPercent: String?
    let overageCredits: Credits

    init(_ usage: PeriodUsage) {
        start = usage.start
        end = usage.end
        allocation = usage.allocation
        used = usage.used
        usedPercent = usage.usedPercent
        overageCredits = usage.overage
    }
}

/// `?type=usage,expiry&event_id=&actor=&from=&to=` of ledger listings.
enum LedgerFilterQuery {
    /// The filter, and whether reversals are listed as refunds: purchase history (`purchase_history`
    /// or `refund`) lists every credit addition, and a reversal returns credits (seed 003), unless
    /// the caller asked for `reversal` by name.
    static func parse(_ request: Request) throws(TallyError) -> (LedgerQueries.EntryFilter, reversalsAsRefunds: Bool) {
        var types: [LedgerEntryType]?
        var reversalsAsRefunds = false
        if let text = request.queryString("type") {
            var parsed: [LedgerEntryType] = []
            for name in text.split(separator: ",") {
                switch name {
                case "purchase_history": parsed.append(contentsOf: LedgerEntryType.additions)
                default:
                    guard let type = LedgerEntryType(rawValue: String(name)) else {
                        throw TallyError.validation("type '\(name)' is not a ledger entry type.", field: "type")
                    }
                    parsed.append(type)
                }
            }
            if parsed.contains(.refund), !parsed.contains(.reversal) {
                parsed.append(.reversal)
                reversalsAsRefunds = true
            }
            types = parsed
        }
        let from = try request.queryInstant("from")
        let to = try request.queryInstant("to")
        if let from, let to, to <= from { throw TallyError.validation("to must be after from.", field: "to") }
        return (LedgerQueries.EntryFilter(types: types, eventID: request.queryString("event_id"), actor: request.queryString("actor"), from: from, to: to),
                reversalsAsRefunds)
    }
}
