import Foundation
import Hummingbird
import TallyCore
import TallyJSON
import TallyStore
import TallyJobs
#if canImport(Glibc)
import Glibc
#endif

/// Webhook endpoints: an organisation admin's (for its own organisation) or the platform's (for
/// one organisation, or for every organisation when `org_id` is left out).
struct WebhooksController {
    let services: AppServices

    struct CreateBody: Decodable {
        let url: String
        let events: [String]
        let orgID: UUID?
    }

    struct EndpointDTO: Encodable {
        let id: UUID
        let orgID: UUID?
        let url: String
        let events: [String]
        let active: Bool
        let createdAt: Instant
        let secret: String?

        init(_ endpoint: WebhookEndpoint, secret: String? = nil) {
            id = endpoint.id
            orgID = endpoint.orgID
            url = endpoint.url
            events = endpoint.events
            active = endpoint.active
            createdAt = endpoint.createdAt
            self.secret = secret
        }
    }

    struct AttemptDTO: Encodable {
        let attempt: Int
        let at: Instant
        let statusCode: Int?
        let error: String?
        let durationMs: Int
    }

    struct DeliveryDTO: Encodable {
        let id: UUID
        let eventID: UUID
        let eventType: String
        let orgID: UUID
        let status: String
        let attempts: Int
        let nextAttemptAt: Instant?
        let deliveredAt: Instant?
        let createdAt: Instant
        let attemptLog: [AttemptDTO]

        init(_ delivery: WebhookDelivery) {
            id = delivery.id
            eventID = delivery.eventID
            eventType = delivery.eventType
            orgID = delivery.orgID
            status = delivery.status
            attempts = delivery.attempts
            nextAttemptAt = delivery.nextAttemptAt
            deliveredAt = delivery.deliveredAt
            createdAt = delivery.createdAt
            attemptLog = delivery.attemptLog.map {
                AttemptDTO(attempt: $0.number, at: $0.at, statusCode: $0.statusCode, error: $0.error, durationMs: $0.durationMilliseconds)
            }
        }
    }

    func register(on v1: RouterGroup<TallyRequestContext>) {
        let webhooks = services.stores.webhooks
        v1.post("/webhook-endpoints") { request, context in
            let caller = try context.requiredCaller
            var request = request
            let body = try await request.decode(CreateBody.self, context: context)
            let orgID: UUID?
            switch caller.role {
            case .platform:
                orgID = body.orgID
                if let orgID, try await services.stores.orgs.find(orgID) == nil {
                    throw TallyError.validation("There is no organisation \(orgID.idString).", field: "org_id")
                }
            case .admin:
                guard body.orgID == nil || body.orgID == caller.orgID else { throw TallyError.notFound("The organisation") }
                orgID = caller.orgID
            case .member:
                throw TallyError.forbidden("This needs a key with the admin role.")
            }
            let events = try Self.validateEvents(body.events)
            let privateAllowed = caller.role == .platform || services.allowPrivateWebhookTargets
            let url = try await WebhookURL.validate(body.url, allowPrivateAddresses: privateAllowed)
            let (endpoint, secret) = try await webhooks.create(orgID: orgID, url: url, events: events,
                                                               privateAllowed: caller.role == .platform, at: services.clock.now())
            return try Response.json(EndpointDTO(endpoint, secret: secret), status: .created)
        }
        v1.get("/webhook-endpoints") { request, context in
            let caller = try context.requiredCaller
            guard caller.role.permits(.admin) else { throw TallyError.forbidden("This needs a key with the admin role.") }
            let page = try await webhooks.list(orgID: caller.role == .platform ? nil : caller.orgID,
                                               limit: try PageSize.resolve(try request.queryInt("limit")),
                                               after: try Cursor.uuid(request.queryString("cursor")))
            return try Response.json(ListResponse(data: page.items.map { EndpointDTO($0) }, nextCursor: page.nextCursor))
        }
        v1.delete("/webhook-endpoints/{endpoint}") { _, context in
            let endpoint = try await ownEndpoint(context)
            try await webhooks.disable(endpoint.id)
            return Response(status: .noContent)
        }
        v1.get("/webhook-endpoints/{endpoint}/deliveries") { request, context in
            let endpoint = try await ownEndpoint(context)
            var cursor: Int64?
            if let text = request.queryString("cursor") {
                guard let value = Int64(text) else { throw TallyError.validation("cursor is not valid.", field: "cursor") }
                cursor = value
            }
            let page = try await webhooks.deliveries(endpointID: endpoint.id, limit: try PageSize.resolve(try request.queryInt("limit")), before: cursor)
            return try Response.json(ListResponse(data: page.items.map(DeliveryDTO.init), nextCursor: page.nextCursor))
        }
        v1.post("/webhook-endpoints/{endpoint}/deliveries/{delivery}/resend") { _, context in
            let endpoint = try await ownEndpoint(context)
            guard endpoint.active else { throw TallyError.conflict("endpoint_disabled", "The endpoint is disabled.") }
            guard let text = context.parameters.get("delivery"), let deliveryID = UUID(idString: text),
                  try await webhooks.resend(endpointID: endpoint.id, deliveryID: deliveryID) else {
                throw TallyError.notFound("The delivery")
            }
            return try Response.json(["status": "pending"], status: .accepted)
        }
    }

    /// The endpoint, if the caller may manage it: the platform any, an admin its organisation's.
    private func ownEndpoint(_ context: TallyRequestContext) async throws -> WebhookEndpoint {
        let caller = try context.requiredCaller
        guard let text = context.parameters.get("endpoint"), let id = UUID(idString: text),
              let endpoint = try await services.stores.webhooks.endpoint(id), endpoint.active,
              caller.role == .platform || (endpoint.orgID != nil && endpoint.orgID == caller.orgID) else {
            throw TallyError.notFound("The webhook endpoint")
        }
        guard caller.role.permits(.admin) else { throw TallyError.forbidden("This needs a key with the admin role.") }
        return endpoint
    }

    static func validateEvents(_ events: [String]) throws(TallyError) -> [String] {
        guard !events.isEmpty, events.count <= EventType.allCases.count + 1 else {
            throw TallyError.validation("events lists the event types to deliver (\"*\" for all).", field: "events")
        }
        for (index, event) in events.enumerated() where event != "*" && EventType(rawValue: event) == nil {
            throw TallyError.validation("'\(event)' is not an event type.", field: "events[\(index)]")
        }
        return Array(Set(events)).sorted()
    }
}

/// Endpoint URLs: http(s), a host that resolves. An organisation's endpoint must resolve to public
/// addresses only, so that nobody can make Tally post into the network it runs in. Returns the URL
/// with its scheme in lower case (schemes are case-insensitive; `HTTP://host` is stored as
/// `http://host`, as the database's check expects).
enum WebhookURL {
    static func validate(_ text: String, allowPrivateAddresses: Bool) async throws -> String {
        guard text.count <= 2048, let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else {
            throw TallyError.validation("url must be an http(s) URL.", field: "url")
        }
        let addresses = await WebhookAddressPolicy.resolve(host)
        guard !addresses.isEmpty else { throw TallyError.validation("url's host '\(host)' does not resolve.", field: "url") }
        if !allowPrivateAddresses, addresses.contains(where: WebhookAddressPolicy.isPrivate) {
            throw TallyError.validation("url must point to a public address.", field: "url")
        }
        return scheme + text.dropFirst(scheme.count)
    }
}
