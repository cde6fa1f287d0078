import Foundation
import Hummingbird
import TallyCore
import TallyStore

/// An organisation's settings: overage protection and cap, auto top-up, alerts, warnings.
struct SettingsController {
    let services: AppServices

    func register(on v1: RouterGroup<TallyRequestContext>) {
        v1.get("/orgs/{org}/settings") { _, context in
            let scope = try await services.orgScope(context)
            return try Response.json(try await settingsResponse(scope.context.settings, orgID: scope.org.id))
        }
        v1.patch("/orgs/{org}/settings") { request, context in
            let scope = try await services.orgScope(context, role: .admin)
            var request = request
            let patch = try await request.decode(SettingsBody.self, context: context).patch()
            let settings = try await services.stores.orgs.updateSettings(orgID: scope.org.id, patch, at: scope.now)
            return try Response.json(try await settingsResponse(settings, orgID: scope.org.id))
        }
    }

    private func settingsResponse(_ settings: OrgSettings, orgID: UUID) async throws -> SettingsResponse {
        SettingsResponse(settings, lastTopUp: try await services.stores.orgs.lastAutoTopUp(orgID: orgID))
    }
}
