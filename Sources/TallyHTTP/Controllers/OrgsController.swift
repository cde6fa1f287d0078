import Foundation
import Hummingbird
import TallyCore
import TallyStore

/// `POST /v1/orgs`, `GET /v1/orgs/{org}`.
struct OrgsController {
    let services: AppServices

    struct CreateRequest: Decodable {
        let name: String
        let externalID: String?
        let timezone: String?
        let testClockID: UUID?

        enum CodingKeys: String, CodingKey {
            case name, timezone
            case externalID = "external_id"
            case testClockID = "test_clock_id"
        }
    }

    struct OrgResponse: Encodable {
        let id: UUID
        let name: String
        let externalID: String?
        let timezone: String
        let testClockID: UUID?
        let createdAt: Instant

        enum CodingKeys: String, CodingKey {
            case id, name, timezone
            case externalID = "external_id"
            case testClockID = "test_clock_id"
            case createdAt = "created_at"
        }

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
        v1.get("/orgs/{org}") { _, context in
            let scope = try await services.orgScope(context)
            return try Response.json(OrgResponse(scope.org))
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
