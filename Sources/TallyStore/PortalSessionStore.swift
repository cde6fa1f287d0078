import Foundation
import Logging
import NIOCore
import PostgresNIO
import TallyCore

/// A credits portal session: one organisation, one role, until it expires or is revoked.
public struct PortalSession: Sendable, Equatable {
    public let id: UUID
    public let orgID: UUID
    public let role: KeyRole
    /// Who the SaaS says the person is (shown on the page and recorded as the actor of changes).
    public let user: String?
    public let returnURL: String?
    public let createdAt: Instant
    public let expiresAt: Instant

    /// What the ledger and the audit columns record of changes made in this session.
    public var stamp: KeyStamp { KeyStamp(id: id, prefix: PortalSessionStore.stampPrefix) }
}

/// Portal sessions. The token (256 random bits) is the link's last path segment and then the
/// browser's cookie; only its SHA-256 is stored, so a database dump opens no portal.
public struct PortalSessionStore: Sendable {
    let database: Database
    /// The prefix recorded beside changes made through the portal (API keys record theirs).
    public static let stampPrefix = "portal"
    public static let tokenScheme = "tps_"

    public init(database: Database) {
        self.database = database
    }

    /// A new session and its token (shown once, in the link).
    public func create(orgID: UUID, role: KeyRole, user: String?, returnURL: String?, lifetimeSeconds: Int,
                       at now: Instant) async throws -> (session: PortalSession, token: String) {
        precondition(role == .admin || role == .member, "a portal session is an organisation's admin or member")
        let token = Self.tokenScheme + KeyMaterial.generate().secret.dropFirst(KeyMaterial.scheme.count)
        let session = PortalSession(id: .v7(at: now), orgID: orgID, role: role, user: user, returnURL: returnURL,
                                    createdAt: now, expiresAt: now.adding(seconds: Int64(lifetimeSeconds)))
        let key = KeyStamp.current
        try await database.pool.query("""
            INSERT INTO portal_sessions (org_id, session_id, token_hash, role, user_label, return_url, created_at, expires_at,
                                         created_by_key_id, created_by_key_prefix)
            VALUES (\(orgID), \(session.id), \(ByteBuffer(bytes: KeyMaterial.hash(token))), \(role.rawValue), \(user), \(returnURL),
                    \(now), \(session.expiresAt), \(key?.id), \(key?.prefix))
            """, logger: database.logger)
        return (session, token)
    }

    /// The live session of this organisation with this token; nil when unknown, expired or revoked.
    public func session(orgID: UUID, token: String, at now: Instant) async throws -> PortalSession? {
        guard token.hasPrefix(Self.tokenScheme), token.utf8.count <= 128 else { return nil }
        let rows = try await database.pool.query("""
            SELECT session_id, role, user_label, return_url, created_at, expires_at FROM portal_sessions
            WHERE org_id = \(orgID) AND token_hash = \(ByteBuffer(bytes: KeyMaterial.hash(token)))
              AND revoked_at IS NULL AND expires_at > \(now)
            """, logger: database.logger).collect()
        guard let row = rows.first else { return nil }
        let (id, roleText, user, returnURL, created, expires) = try row.decode((UUID, String, String?, String?, Instant, Instant).self)
        let role = try StoredValue.decode(KeyRole.self, roleText, column: "portal_sessions.role")
        guard role != .platform else { throw UnknownStoredValue(column: "portal_sessions.role", value: roleText) }
        return PortalSession(id: id, orgID: orgID, role: role, user: user, returnURL: returnURL, createdAt: created, expiresAt: expires)
    }

    /// Ends a session at once; false when there is no such live session.
    @discardableResult
    public func revoke(orgID: UUID, sessionID: UUID, at now: Instant) async throws -> Bool {
        let rows = try await database.pool.query("""
            UPDATE portal_sessions SET revoked_at = \(now)
            WHERE org_id = \(orgID) AND session_id = \(sessionID) AND revoked_at IS NULL RETURNING 1
            """, logger: database.logger).collect()
        return !rows.isEmpty
    }

    /// Ends the session that carries this token (the portal's sign-out).
    public func revoke(orgID: UUID, token: String, at now: Instant) async throws {
        try await database.pool.query("""
            UPDATE portal_sessions SET revoked_at = \(now)
            WHERE org_id = \(orgID) AND token_hash = \(ByteBuffer(bytes: KeyMaterial.hash(token))) AND revoked_at IS NULL
            """, logger: database.logger)
    }
}
