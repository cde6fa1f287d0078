import Foundation
import Hummingbird
import TallyCore
import TallyJSON
import TallyJobs
import TallyStore

/// The subscription of an organisation (team admins change it), its invoices, and test clocks.
struct SubscriptionController {
    let services: AppServices

    /// The catalog's plans of these codes (an answer rendered inside a transaction cannot read them).
    private func plans(_ codes: [String?]) async throws -> [String: Plan] {
        var plans: [String: Plan] = [:]
        for code in Set(codes.compactMap { $0 }) {
            plans[code] = try await services.stores.catalog.plan(code)
        }
        return plans
    }

    func register(on v1: RouterGroup<TallyRequestContext>) {
        let subscriptions = services.stores.subscriptions
        // Subscribe, change and cancel take an optional Idempotency-Key: the same key and body
        // replay the first answer, so a retried subscribe is not mistaken for a real conflict.
        v1.post("/orgs/{org}/subscription") { request, context in
            let scope = try await services.orgScope(context, role: .admin)
            var request = request
            let json = try await request.jsonBody(context: context)
            let body = try StrictJSONDecoder.decode(SubscribeBody.self, from: json)
            let claim = try Idempotency.claim(request, body: json, required: false)
            let stored = try await subscriptions.subscribe(orgID: scope.org.id, planCode: body.plan, startAt: body.startAt, at: scope.now, claim: claim,
                                                           render: Idempotency.renderer { SubscriptionResponse($0.subscription, plan: $0.plan) })
            return Idempotency.response(stored)
        }
        v1.get("/orgs/{org}/subscription") { _, context in
            let scope = try await services.orgScope(context)
            guard let subscription = try await subscriptions.current(orgID: scope.org.id) else {
                throw TallyError.notFound("The subscription")
            }
            var usage: PeriodUsage?
            if let live = scope.context.period {
                usage = try await services.stores.ledger.periodUsage(orgID: scope.org.id, period: live)
            }
            return try Response.json(SubscriptionResponse(subscription, plan: try await services.stores.catalog.plan(subscription.planCode), usage: usage))
        }
        v1.post("/orgs/{org}/subscription/change") { request, context in
            let scope = try await services.orgScope(context, role: .admin)
            var request = request
            let json = try await request.jsonBody(context: context)
            let body = try StrictJSONDecoder.decode(ChangeBody.self, from: json)
            guard let effective = PlanChangeRequest.Effective(rawValue: body.effective ?? "immediate") else {
                throw TallyError.validation("effective must be immediate or period_end.", field: "effective")
            }
            let claim = try Idempotency.claim(request, body: json, required: false)
            // The answer shows the subscription's plan after the change: the new one, or (scheduled) the current one.
            let plans = try await self.plans([body.plan, scope.context.period?.planCode])
            let stored = try await subscriptions.change(orgID: scope.org.id, PlanChangeRequest(planCode: body.plan, effective: effective,
                                                                                               preview: body.preview ?? false),
                                                        at: scope.now, claim: claim,
                                                        render: Idempotency.renderer(status: 200) { ChangeResponse($0, plan: plans[$0.subscription.planCode]) })
            return Idempotency.response(stored)
        }
        v1.post("/orgs/{org}/subscription/cancel") { request, context in
            let scope = try await services.orgScope(context, role: .admin)
            var request = request
            let json = try await request.decodeOptionalJSON(context: context)
            let body = try StrictJSONDecoder.decode(CancelBody.self, from: json)
            let claim = try Idempotency.claim(request, body: json, required: false)
            let plans = try await self.plans([scope.context.period?.planCode])
            let stored = try await subscriptions.cancel(orgID: scope.org.id, atPeriodEnd: body.atPeriodEnd ?? true, at: scope.now, claim: claim,
                                                        render: Idempotency.renderer(status: 200) { SubscriptionResponse($0, plan: plans[$0.planCode]) })
            return Idempotency.response(stored)
        }

        v1.get("/orgs/{org}/invoices") { request, context in
            let scope = try await services.orgScope(context)
            let page = try await services.stores.invoices.invoices(orgID: scope.org.id, limit: try PageSize.resolve(try request.queryInt("limit")),
                                                                   after: try Cursor.uuid(request.queryString("cursor")))
            return try Response.json(ListResponse(data: page.items.map(InvoiceResponse.init), nextCursor: page.nextCursor))
        }
        v1.get("/orgs/{org}/invoices/{invoice}") { _, context in
            let scope = try await services.orgScope(context)
            guard let text = context.parameters.get("invoice"), let id = UUID(idString: text),
                  let invoice = try await services.stores.invoices.invoice(orgID: scope.org.id, id: id) else {
                throw TallyError.notFound("The invoice")
            }
            return try Response.json(InvoiceResponse(invoice))
        }

        v1.post("/test-clocks") { request, context in
            try context.requirePlatform()
            var request = request
            let body = try await request.decode(TestClockBody.self, context: context)
            let clock = try await services.stores.testClocks.create(frozenTime: body.frozenTime, at: services.clock.now())
            return try Response.json(TestClockResponse(clock), status: .created)
        }
        v1.get("/test-clocks/{clock}") { _, context in
            try context.requirePlatform()
            return try Response.json(TestClockResponse(try await testClock(context)))
        }
        v1.post("/test-clocks/{clock}/advance") { request, context in
            try context.requirePlatform()
            let clock = try await testClock(context)
            var request = request
            let body = try await request.decode(AdvanceBody.self, context: context)
            guard body.to >= clock.frozenTime else {
                throw TallyError.validation("A test clock moves forward only: it is at \(clock.frozenTime).", field: "to")
            }
            // Every job that falls due for the clock's organisations runs, in time order, before the answer.
            let report = try await JobRunner(stores: services.stores, logger: context.logger).runDue(.testClock(clock.id), until: body.to)
            context.logger.info("test clock advanced", metadata: ["test_clock.id": "\(clock.id.idString)", "report": "\(report)"])
            return try Response.json(TestClockResponse(try await services.stores.testClocks.setTime(clock.id, to: body.to)))
        }
    }

    private func testClock(_ context: TallyRequestContext) async throws -> TestClock {
        guard let text = context.parameters.get("clock"), let id = UUID(idString: text),
              let clock = try await services.stores.testClocks.clock(id) else {
            throw TallyError.notFound("The test clock")
        }
        return clock
    }
}
