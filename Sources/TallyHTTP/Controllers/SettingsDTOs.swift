import Foundation
import TallyCore
import TallyStore

/// `PATCH .../settings`: a member that is absent stays as it is; `null` clears it.
struct SettingsBody: Decodable {
    struct AutoTopUpBody: Decodable {
        let enabled: Bool?
        let thresholdCredits: SettingsPatch.Field<Credits>
        let pack: SettingsPatch.Field<String>

        enum CodingKeys: CodingKey { case enabled, pack, thresholdCredits }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try container.decodeIfPresent(Bool.self, forKey: .enabled)
            thresholdCredits = try container.field(Credits.self, .thresholdCredits)
            pack = try container.field(String.self, .pack)
        }
    }

    let overageProtection: Bool?
    let overageCapCredits: SettingsPatch.Field<Credits>
    let autoTopup: AutoTopUpBody?
    let alertThresholdsPercent: [Int]?
    let lowBalanceCredits: SettingsPatch.Field<Credits>
    let expiryWarningDays: Int?

    enum CodingKeys: CodingKey { case overageProtection, overageCapCredits, autoTopup, alertThresholdsPercent, lowBalanceCredits, expiryWarningDays }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        overageProtection = try container.decodeIfPresent(Bool.self, forKey: .overageProtection)
        overageCapCredits = try container.field(Credits.self, .overageCapCredits)
        autoTopup = try container.decodeIfPresent(AutoTopUpBody.self, forKey: .autoTopup)
        alertThresholdsPercent = try container.decodeIfPresent([Int].self, forKey: .alertThresholdsPercent)
        lowBalanceCredits = try container.field(Credits.self, .lowBalanceCredits)
        expiryWarningDays = try container.decodeIfPresent(Int.self, forKey: .expiryWarningDays)
    }

    func patch() throws(TallyError) -> SettingsPatch {
        var patch = SettingsPatch()
        patch.overageProtection = overageProtection
        if case .set(let cap) = overageCapCredits, cap.isNegative {
            throw TallyError.validation("overage_cap_credits must not be negative.", field: "overage_cap_credits")
        }
        patch.overageCapCredits = overageCapCredits
        if case .set(let low) = lowBalanceCredits, low.isNegative {
            throw TallyError.validation("low_balance_credits must not be negative.", field: "low_balance_credits")
        }
        patch.lowBalanceCredits = lowBalanceCredits
        if let days = expiryWarningDays, !(0...365).contains(days) {
            throw TallyError.validation("expiry_warning_days must be between 0 and 365.", field: "expiry_warning_days")
        }
        patch.expiryWarningDays = expiryWarningDays
        if let autoTopup {
            patch.autoTopUpEnabled = autoTopup.enabled
            if case .set(let threshold) = autoTopup.thresholdCredits, threshold.isNegative {
                throw TallyError.validation("threshold_credits must not be negative.", field: "auto_topup.threshold_credits")
            }
            patch.autoTopUpThreshold = autoTopup.thresholdCredits
            patch.autoTopUpPack = autoTopup.pack
        }
        if let thresholds = alertThresholdsPercent {
            guard thresholds.count <= 10, Set(thresholds).count == thresholds.count, thresholds.allSatisfy({ (1...1000).contains($0) }) else {
                throw TallyError.validation("alert_thresholds_percent takes up to 10 distinct percentages from 1 to 1000.", field: "alert_thresholds_percent")
            }
            patch.alertThresholdsPercent = thresholds.sorted()
        }
        return patch
    }
}

extension KeyedDecodingContainer {
    /// Absent, `null`, or a value: what a PATCH member means.
    func field<Value: Decodable>(_ type: Value.Type, _ key: Key) throws -> SettingsPatch.Field<Value> {
        guard contains(key) else { return .unchanged }
        if try decodeNil(forKey: key) { return .cleared }
        return .set(try decode(Value.self, forKey: key))
    }
}

struct SettingsResponse: Encodable {
    struct AutoTopUp: Encodable {
        let enabled: Bool
        let thresholdCredits: Credits?
        let pack: String?
        let lastAttemptAt: Instant?
        let lastStatus: String?
        let lastError: String?
        let lastInvoiceID: UUID?
    }

    /// When and with which key the settings last changed (nil: never).
    let changedAt: Instant?
    let changedByAPIKeyID: UUID?
    let changedByAPIKeyPrefix: String?
    let overageProtection: Bool
    let overageCapCredits: Credits?
    let autoTopup: AutoTopUp
    let alertThresholdsPercent: [Int]
    let lowBalanceCredits: Credits?
    let expiryWarningDays: Int

    init(_ settings: OrgSettings, lastTopUp: (status: String, error: String?, at: Instant, invoiceID: UUID?)?) {
        overageProtection = settings.overageProtection
        overageCapCredits = settings.overageCapCredits
        autoTopup = AutoTopUp(enabled: settings.autoTopUp.enabled, thresholdCredits: settings.autoTopUp.thresholdCredits,
                              pack: settings.autoTopUp.packCode, lastAttemptAt: lastTopUp?.at, lastStatus: lastTopUp?.status,
                              lastError: lastTopUp?.error, lastInvoiceID: lastTopUp?.invoiceID)
        alertThresholdsPercent = settings.alertThresholdsPercent
        lowBalanceCredits = settings.lowBalanceCredits
        expiryWarningDays = settings.expiryWarningDays
        changedAt = settings.changedAt
        changedByAPIKeyID = settings.changedBy?.id
        changedByAPIKeyPrefix = settings.changedBy?.prefix
    }
}
