import Foundation
import Hummingbird
import TallyCore
import TallyStore

/// `POST/GET /v1/orgs/{org}/api-keys`, `DELETE /v1/orgs/{org}/api-keys/{key}`: admins manage keys.
struct APIKeysController {
    let services: AppServices

    struct CreateRequest: Decodable {
        let name: String
        let role: KeyRole
    }

    struct KeyResponse: Encodable {
        let id: UUID
        let name: String
        let role: KeyRole
        let prefix: String
        let createdAt: Instant

        init(_ key: APIKey) {
            id = key.id
            name = key.name
            role = key.role
            prefix = key.prefix
            createdAt = key.createdAt
        }
    }

    /// The one response that carries the secret.
    struct CreatedKeyResponse: Encodable {
        let id: UUID
        let name: String
        let role: KeyRole
        let prefix: String
        let key: String
        let createdAt: Instant
    }

    func register(on v1: RouterGroup<TallyRequestContext>) {
        v1.post("/orgs/{org}/api-keys") { request, context in
            let scope = try await services.orgScope(context, role: .admin)
            var request = request
            let body = try await request.decode(CreateRequest.self, context: context)
            try Validate.text(body.name, field: "name")
            guard body.role != .platform else {
                throw TallyError.validation("role must be admin or member.", field: "role")
            }
            let (key, secret) = try await services.stores.keys.create(orgID: scope.org.id, name: body.name, role: body.role, at: services.clock.now())
            return try Response.json(
                CreatedKeyResponse(id: key.id, name: key.name, role: key.role, prefix: key.prefix, key: secret, createdAt: key.createdAt),
                status: .created
            )
        }
        v1.get("/orgs/{org}/api-keys") { request, context in
            let scope = try await services.orgScope(context, role: .admin)
            let limit = try PageSize.resolve(try request.queryInt("limit"))
            let cursor = try Cursor.uuid(request.queryString("cursor"))
            let page = try await services.stores.keys.list(orgID: scope.org.id, limit: limit, after: cursor)
            return try Response.json(ListResponse(data: page.items.map(KeyResponse.init), nextCursor: page.nextCursor))
        }
        v1.delete("/orgs/{org}/api-keys/{key}") { _, context in
            let scope = try await services.orgScope(context, role: .admin)
            guard let text = context.parameters.get("key"), let keyID = UUID(idString: text),
                  try await services.stores.keys.revoke(orgID: scope.org.id, keyID: keyID, at: services.clock.now()) else {
                throw TallyError.notFound("The API key")
            }
            return Response(status: .noContent)
        }
    }
}

/// `{"data": [...], "next_cursor": ...}`.
struct ListResponse<Item: Encodable>: Encodable {
    let data: [Item]
    let nextCursor: String?
}

enum Cursor {
    static func uuid(_ text: String?) throws(TallyError) -> UUID? {
        guard let text else { return nil }
        guard let id = UUID(idString: text) else { throw TallyError.validation("cursor is not valid.", field: "cursor") }
        return id
    }
}
