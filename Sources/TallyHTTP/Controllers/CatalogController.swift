import Foundation
import Hummingbird
import TallyCatalog
import TallyCore
import TallyJSON
import TallyStore

/// Plans, operations and credit packs. The platform key writes them; any key may read them
/// (an admin's UI lists plans to change to and packs to buy).
struct CatalogController {
    let services: AppServices

    func register(on v1: RouterGroup<TallyRequestContext>) {
        let catalog = services.stores.catalog
        v1.post("/plans") { request, context in
            try context.requirePlatform()
            var request = request
            let plan = try await request.decode(PlanBody.self, context: context).plan()
            try await catalog.createPlan(plan, at: services.clock.now())
            return try Response.json(PlanResponse(plan), status: .created)
        }
        v1.get("/plans") { request, context in
            _ = try context.requiredCaller
            let page = try await catalog.plans(limit: try PageSize.resolve(try request.queryInt("limit")), after: request.queryString("cursor"))
            return try Response.json(ListResponse(data: page.items.map(PlanResponse.init), nextCursor: page.nextCursor))
        }
        v1.get("/plans/{code}") { _, context in
            _ = try context.requiredCaller
            guard let plan = try await catalog.plan(context.parameters.get("code") ?? "") else { throw TallyError.notFound("The plan") }
            return try Response.json(PlanResponse(plan))
        }
        v1.put("/plans/{code}") { request, context in
            try context.requirePlatform()
            var request = request
            let plan = try await request.decode(PlanBody.self, context: context).plan()
            guard plan.code == context.parameters.get("code") else { throw TallyError.validation("code must match the path.", field: "code") }
            try await catalog.replacePlan(plan, at: services.clock.now())
            return try Response.json(PlanResponse(plan))
        }

        v1.post("/operations") { request, context in
            try context.requirePlatform()
            var request = request
            let operation = try await request.decode(OperationBody.self, context: context).definition()
            try await catalog.createOperation(operation, at: services.clock.now())
            return try Response.json(OperationBody(operation), status: .created)
        }
        v1.put("/operations/{code}") { request, context in
            try context.requirePlatform()
            var request = request
            let operation = try await request.decode(OperationBody.self, context: context).definition()
            guard operation.code == context.parameters.get("code") else {
                throw TallyError.validation("code must match the path.", field: "code")
            }
            try await catalog.replaceOperation(operation, at: services.clock.now())
            return try Response.json(OperationBody(operation))
        }
        v1.get("/operations") { request, context in
            _ = try context.requiredCaller
            let page = try await catalog.operations(limit: try PageSize.resolve(try request.queryInt("limit")), after: request.queryString("cursor"))
            return try Response.json(ListResponse(data: page.items.map(OperationBody.init), nextCursor: page.nextCursor))
        }
        v1.get("/operations/{code}") { _, context in
            _ = try context.requiredCaller
            guard let operation = try await catalog.operation(context.parameters.get("code") ?? "") else {
                throw TallyError(.notFound, code: "unknown_operation", detail: "There is no such operation.")
            }
            return try Response.json(OperationBody(operation))
        }

        v1.post("/credit-packs") { request, context in
            try context.requirePlatform()
            var request = request
            let pack = try await request.decode(PackBody.self, context: context).pack()
            try await catalog.createPack(pack, at: services.clock.now())
            return try Response.json(PackResponse(pack), status: .created)
        }
        v1.get("/credit-packs") { request, context in
            _ = try context.requiredCaller
            let page = try await catalog.packs(limit: try PageSize.resolve(try request.queryInt("limit")), after: request.queryString("cursor"))
            return try Response.json(ListResponse(data: page.items.map(PackResponse.init), nextCursor: page.nextCursor))
        }
        v1.get("/credit-packs/{code}") { _, context in
            _ = try context.requiredCaller
            guard let pack = try await catalog.pack(context.parameters.get("code") ?? "") else { throw TallyError.notFound("The credit pack") }
            return try Response.json(PackResponse(pack))
        }

        v1.post("/orgs/{org}/quote") { request, context in
            // The organisation and its balance in one read (many quotes share it under load).
            let (scope, balance) = try await services.orgBalance(context)
            var request = request
            let body = try await request.decode(QuoteBody.self, context: context)
            let quote = try await services.quote(operation: body.operation, quantity: body.quantity ?? 1, params: body.params, scope: scope)
            return try Response.json(QuoteResponse(quote, available: balance.available, terms: scope.context.spendTerms))
        }
    }
}
