import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// An organisation with what every request on it needs to know about time.
public struct OrgContext: Sendable, Equatable {
    public let org: Organisation
    /// The frozen time of the organisation's test clock; nil on the real clock.
    public let clockTime: Instant?
    /// When the live subscription's period ends: at or after this, renewal is due.
    public var renewalDueAt: Instant? { period?.end }
    public let settings: OrgSettings
    /// The live subscription's current period and plan terms.
    public let period: LivePeriod?
    /// The live plan's per-operation rates (pricing reads them from here, no extra query).
    public var planRates: [String: Credits] = [:]

    /// What a spend may do beyond the credits.
    public var spendTerms: SpendTerms { SpendTerms(period: period, settings: settings, timezone: org.timezone) }

    /// The answer stored under the request's Idempotency-Key, when the context was read with one
    /// and that request has finished: a replay is answered from it without a transaction.
    public var storedAnswer: StoredAnswer?
    /// The operations' version when the context was read (sql/0016): operations cached under
    /// it are current for this request.
    public var catalogVersion: Int64 = 0
    /// What the context was read from (`OrgContextFingerprint`): a spend's transaction checks it.
    public var fingerprint: String = ""
}

/// A finished request's answer under its Idempotency-Key, with the hash of that request.
public struct StoredAnswer: Sendable, Equatable {
    public let requestHash: [UInt8]
    public let response: StoredResponse
}

/// Which organisations a job looks at.
public enum OrgSelection: Sendable, Equatable {
    /// Every organisation on the real clock (what the cron runs).
    case realClock
    /// The organisations of one test clock.
    case testClock(UUID)
    /// One organisation (a request catching up before it is served).
    case org(UUID)

    /// A condition on `orgs` aliased `o`, with bound values.
    func condition(_ sql: inout BoundSQL) -> String {
        switch self {
        case .realClock: "o.test_clock_id IS NULL"
        case .testClock(let id): "o.test_clock_id = \(sql.bind(id))"
        case .org(let id): "o.org_id = \(sql.bind(id))"
        }
    }
}

/// Organisations: creating and reading tenants.
public struct OrgStore: Sendable {
    let database: Database
    /// Contexts are read for many requests at once under load (see `OrgContextReader`).
    let reader: OrgContextReader
    /// The contexts spends are priced with (see `OrgContextCache`).
    public let spendContexts = OrgContextCache()

    public init(database: Database) {
        self.database = database
        self.reader = OrgContextReader(read: { requests in
            try await OrgContextsStatement.contexts(requests, on: database.pool, logger: database.logger)
        })
    }

    public struct NewOrganisation: Sendable {
        public var name: String
        public var externalID: String?
        public var timezone: String
        public var testClockID: UUID?

        public init(name: String, externalID: String?, timezone: String, testClockID: UUID?) {
            self.name = name
            self.externalID = externalID
            self.timezone = timezone
            self.testClockID = testClockID
        }
    }

    /// Creates an organisation; one on a test clock is created at the clock's time.
    public func create(_ new: NewOrganisation, at now: Instant) async throws -> Organisation {
        try Organisation.validateTimezone(new.timezone)
        var createdAt = now
        if let clockID = new.testClockID {
            let rows = try await database.pool.query("SELECT frozen_time FROM test_clocks WHERE test_clock_id = \(clockID)", logger: database.logger).collect()
            guard let row = rows.first else { throw TallyError.validation("There is no test clock \(clockID.idString).", field: "test_clock_id") }
            createdAt = try row.decode(Instant.self)
        }
        let org = Organisation(id: .v7(at: createdAt), name: new.name, externalID: new.externalID,
                               timezone: new.timezone, testClockID: new.testClockID, createdAt: createdAt)
        do {
            try await database.pool.query("""
                INSERT INTO orgs (org_id, name, external_id, timezone, test_clock_id, created_at)
                VALUES (\(org.id), \(org.name), \(org.externalID), \(org.timezone), \(org.testClockID), \(org.createdAt))
                """, logger: database.logger)
        } catch let error as PSQLError where error.sqlState == SQLState.uniqueViolation {
            throw TallyError.conflict("external_id_taken", "Another organisation already has external_id '\(new.externalID ?? "")'.")
        }
        return org
    }

    public func find(_ id: UUID) async throws -> Organisation? {
        try await context(id)?.org
    }

    /// The organisation, its clock's time, its settings and its live period, in one prepared
    /// query: every request on an organisation starts with it. With `idempotencyKey`, also the
    /// answer stored under that key, if its request has finished.
    public func context(_ id: UUID, idempotencyKey: String? = nil) async throws -> OrgContext? {
        let context = try await reader.read(.init(orgID: id, idempotencyKey: idempotencyKey))
        if let context { spendContexts.keep(context) } else { spendContexts.forget(id) }
        return context
    }

    /// The context to price a spend with: the one last read, if any (its transaction checks that
    /// it is still current), else `context(id, idempotencyKey:)`.
    public func spendContext(_ id: UUID, idempotencyKey: String?) async throws -> OrgContext? {
        if let kept = spendContexts.context(id) { return kept }
        return try await context(id, idempotencyKey: idempotencyKey)
    }
}

struct OrgContextStatement: PostgresPreparedStatement {
    /// Fixed: PostgresNIO's default name is `String(reflecting:)`, computed on every execution.
    static let name = "tally.OrgContextStatement"
    static let sql = """
        SELECT o.org_id, o.name, o.external_id, o.timezone, o.test_clock_id, o.created_at, c.frozen_time,
               o.overage_protection, o.overage_cap_credits, o.auto_topup_enabled, o.auto_topup_threshold, o.auto_topup_pack,
               o.last_auto_topup_at, o.alert_thresholds_percent,
               s.subscription_id, s.current_period_start, s.current_period_end, p.code, p.name, p.credits_per_period,
               p.overage_allowed, p.overage_rate, p.currency, p.price, o.low_balance_credits, p.operation_rates::text,
               k.request_hash, k.status_code, k.response_body, p.credit_price, o.expiry_warning_days,
               o.settings_changed_at, o.settings_changed_by_key_id, o.settings_changed_by_key_prefix,
               (SELECT version FROM catalog_version) AS catalog_version, \(OrgContextFingerprint.expression(org: "o")) AS fingerprint
        FROM orgs o
        LEFT JOIN test_clocks c ON c.test_clock_id = o.test_clock_id
        LEFT JOIN subscriptions s ON s.org_id = o.org_id AND s.status = 'active'
        LEFT JOIN plans p ON p.code = s.plan_code
        LEFT JOIN idempotency_keys k ON k.org_id = o.org_id AND k.idempotency_key = $2 AND k.status_code IS NOT NULL
        WHERE o.org_id = $1
        """

    let orgID: UUID
    let idempotencyKey: String?

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(orgID)
        bindings.append(idempotencyKey)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> OrgContext {
        try Self.decode(row)
    }

    /// The context from the row's columns, from `offset` on (`OrgContextsStatement` puts the
    /// request's position first).
    static func decode(_ row: PostgresRow, offset: Int = 0) throws -> OrgContext {
        let c = OffsetColumns(base: row.makeRandomAccess(), offset: offset)
        let org = Organisation(id: try c[0].decode(UUID.self), name: try c[1].decode(String.self), externalID: try c[2].decode(String?.self),
                               timezone: try c[3].decode(String.self), testClockID: try c[4].decode(UUID?.self), createdAt: try c[5].decode(Instant.self))
        var settings = OrgSettings(
            overageProtection: try c[7].decode(Bool.self), overageCapCredits: try c[8].decode(Credits?.self),
            autoTopUp: .init(enabled: try c[9].decode(Bool.self), thresholdCredits: try c[10].decode(Credits?.self), packCode: try c[11].decode(String?.self)),
            lastAutoTopUpAt: try c[12].decode(Instant?.self), alertThresholdsPercent: try c[13].decode([Int].self),
            lowBalanceCredits: try c[24].decode(Credits?.self), expiryWarningDays: try c[30].decode(Int.self)
        )
        settings.changedAt = try c[31].decode(Instant?.self)
        settings.changedBy = try c[33].decode(String?.self).map { KeyStamp(id: try c[32].decode(UUID?.self), prefix: $0) }
        var period: LivePeriod?
        var rates: [String: Credits] = [:]
        if let subscriptionID = try c[14].decode(UUID?.self) {
            let currency = try StoredValue.currency(try c[22].decode(String.self), column: "plans.currency")
            let overageRate = try c[20].decode(Bool.self) ? try c[21].decode(MoneyMicros?.self)?.money(currency) : nil
            let allocation = try c[19].decode(Credits.self)
            let price = try c[23].decode(MoneyMicros.self).money(currency)
            period = LivePeriod(subscriptionID: subscriptionID, planCode: try c[17].decode(String.self), planName: try c[18].decode(String.self),
                                start: try c[15].decode(Instant.self), end: try c[16].decode(Instant.self), allocation: allocation,
                                overageRate: overageRate,
                                costPerCredit: Plan.costPerCredit(price: price, creditsPerPeriod: allocation,
                                                                  creditPrice: try c[29].decode(MoneyMicros?.self)?.money(currency)))
            if let text = try c[25].decode(String?.self), case .object(let members) = try JSONParser.parse(Array(text.utf8)) {
                for (code, value) in members { rates[code] = try CatalogJSON.credits(value) }
            }
        }
        var storedAnswer: StoredAnswer?
        if let hash = try c[26].decode(ByteBuffer?.self), let status = try c[27].decode(Int?.self), let body = try c[28].decode(ByteBuffer?.self) {
            storedAnswer = StoredAnswer(requestHash: Array(hash.readableBytesView),
                                        response: StoredResponse(status: status, body: Array(body.readableBytesView), replayed: true))
        }
        return OrgContext(org: org, clockTime: try c[6].decode(Instant?.self), settings: settings, period: period, planRates: rates,
                          storedAnswer: storedAnswer, catalogVersion: try c[34].decode(Int64.self), fingerprint: try c[35].decode(String.self))
    }
}

/// A change to an organisation's settings: absent fields stay, `null` clears.
public struct SettingsPatch: Sendable {
    public enum Field<Value: Sendable>: Sendable {
        case unchanged
        case cleared
        case set(Value)
    }

    public var overageProtection: Bool?
    public var overageCapCredits: Field<Credits> = .unchanged
    public var autoTopUpEnabled: Bool?
    public var autoTopUpThreshold: Field<Credits> = .unchanged
    public var autoTopUpPack: Field<String> = .unchanged
    public var alertThresholdsPercent: [Int]?
    public var lowBalanceCredits: Field<Credits> = .unchanged
    public var expiryWarningDays: Int?

    public init() {}
}

extension OrgStore {
    /// Applies `patch`, recording when and with which key (the request's) the settings changed.
    public func updateSettings(orgID: UUID, _ patch: SettingsPatch, at now: Instant) async throws -> OrgSettings {
        let key = KeyStamp.current
        func parts<T>(_ field: SettingsPatch.Field<T>) -> (Bool, T?) {
            switch field {
            case .unchanged: (false, nil)
            case .cleared: (true, nil)
            case .set(let value): (true, value)
            }
        }
        let (capSet, cap) = parts(patch.overageCapCredits)
        let (thresholdSet, threshold) = parts(patch.autoTopUpThreshold)
        let (packSet, pack) = parts(patch.autoTopUpPack)
        let (lowSet, low) = parts(patch.lowBalanceCredits)
        do {
            try await database.pool.query("""
                UPDATE orgs SET
                    overage_protection = coalesce(\(patch.overageProtection), overage_protection),
                    overage_cap_credits = CASE WHEN \(capSet) THEN \(cap) ELSE overage_cap_credits END,
                    auto_topup_enabled = coalesce(\(patch.autoTopUpEnabled), auto_topup_enabled),
                    auto_topup_threshold = CASE WHEN \(thresholdSet) THEN \(threshold) ELSE auto_topup_threshold END,
                    auto_topup_pack = CASE WHEN \(packSet) THEN \(pack) ELSE auto_topup_pack END,
                    alert_thresholds_percent = coalesce(\(patch.alertThresholdsPercent)::integer[], alert_thresholds_percent),
                    low_balance_credits = CASE WHEN \(lowSet) THEN \(low) ELSE low_balance_credits END,
                    expiry_warning_days = coalesce(\(patch.expiryWarningDays), expiry_warning_days),
                    settings_changed_at = \(now), settings_changed_by_key_id = \(key?.id), settings_changed_by_key_prefix = \(key?.prefix)
                WHERE org_id = \(orgID)
                """, logger: database.logger)
        } catch let error as PSQLError where error.sqlState == SQLState.foreignKeyViolation {
            throw TallyError.validation("There is no credit pack '\(pack ?? "")'.", field: "auto_topup.pack")
        } catch let error as PSQLError where error.sqlState == SQLState.checkViolation {
            throw TallyError.validation("Auto top-up needs threshold_credits and a pack when enabled.", field: "auto_topup")
        }
        guard let settings = try await context(orgID)?.settings else { throw TallyError.notFound("The organisation") }
        return settings
    }

    /// The latest auto top-up attempt, for the settings view.
    public func lastAutoTopUp(orgID: UUID) async throws -> (status: String, error: String?, at: Instant, invoiceID: UUID?)? {
        let rows = try await database.pool.query("""
            SELECT status, error, created_at, invoice_id FROM auto_topups WHERE org_id = \(orgID) ORDER BY created_at DESC LIMIT 1
            """, logger: database.logger).collect()
        guard let row = rows.first else { return nil }
        let (status, error, at, invoiceID) = try row.decode((String, String?, Instant, UUID?).self)
        return (status, error, at, invoiceID)
    }
}

/// A row's columns from `offset` on.
struct OffsetColumns {
    let base: PostgresRandomAccessRow
    let offset: Int

    subscript(index: Int) -> PostgresCell { base[offset + index] }
}
