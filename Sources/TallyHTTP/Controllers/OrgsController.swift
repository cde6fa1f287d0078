import Foundation
import Hummingbird
import TallyCore
import TallyStore

/// `POST /v1/orgs`, `GET /v1/orgs` (find by `external_id`, list), `GET` and `PATCH /v1/orgs/{org}`.
struct OrgsController {
    let services: AppServices

    struct CreateRequest: Decodable {
        let name: String
        let timezone: String?
        let externalID: String?
        let testClockID: UUID?
    }

    /// `PATCH /v1/orgs/{org}`: absent members stay; `external_id: null` clears it.
    struct PatchRequest: Decodable {
        let name: String?
        let externalID: SettingsPatch.Field<String>
        let timezone: String?

        enum CodingKeys: CodingKey { case name, timezone, externalID }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name)
            externalID = try container.field(String.self, .externalID)
            timezone = try container.decodeIfPresent(String.self, forKey: .timezone)
        }

        func patch() throws(TallyError) -> OrganisationPatch {
            if let name { try Validate.text(name, field: "name") }
            if case .set(let externalID) = externalID { try Validate.text(externalID, field: "external_id") }
            return OrganisationPatch(name: name, externalID: externalID, timezone: timezone)
        }
    }

    struct OrgResponse: Encodable {
        let id: UUID
        let name: String
        let timezone: String
        let externalID: String?
        let testClockID: UUID?
        let createdAt: Instant

        init(_ org: Organisation) {
            id = org.id
            name = org.name
            externalID = org.externalID
            timezone = org.timezone
            testClockID = org.testClockID
            createdAt = org.createdAt
        }
    }

    func register(on v1: RouterGroup<TallyRequestContext>) {
        v1.post("/orgs") { request, context in
            try context.requirePlatform()
            var request = request
            let body = try await request.decode(CreateRequest.self, context: context)
            try Validate.text(body.name, field: "name")
            if let externalID = body.externalID { try Validate.text(externalID, field: "external_id") }
            let org = try await services.stores.orgs.create(
                .init(name: body.name, externalID: body.externalID, timezone: body.timezone ?? "UTC", testClockID: body.testClockID),
                at: services.clock.now()
            )
            return try Response.json(OrgResponse(org), status: .created)
        }
        v1.get("/orgs") { request, context in
            try context.requirePlatform()
            let externalID = request.queryString("external_id")
            if let externalID { try Validate.text(externalID, field: "external_id") }
            let page = try await services.stores.orgs.list(externalID: externalID, limit: try PageSize.resolve(try request.queryInt("limit")),
                                                           after: try Cursor.uuid(request.queryString("cursor")))
            return try Response.json(ListResponse(data: page.items.map(OrgResponse.init), nextCursor: page.nextCursor))
        }
        v1.get("/orgs/{org}") { _, context in
            let scope = try await services.orgScope(context)
            return try Response.json(OrgResponse(scope.org))
        }
        v1.patch("/orgs/{org}") { request, context in
            let scope = try await services.orgScope(context)
            try context.requirePlatform()
            var request = request
            let patch = try await request.decode(PatchRequest.self, context: context).patch()
            guard let org = try await services.stores.orgs.update(scope.org.id, patch) else { throw TallyError.notFound("The organisation") }
            return try Response.json(OrgResponse(org))
        }
    }
}

/// Shape checks shared by request types.
enum Validate {
    static let textLengthMaximum = 200

    static func text(_ value: String, field: String) throws(TallyError) {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, value.unicodeScalars.count <= textLengthMaximum else {
            throw TallyError.validation("\(field) must be 1 to \(textLengthMaximum) characters.", field: field)
        }
    }
}
