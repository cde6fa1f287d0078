import struct Foundation.UUID

/// What an organisation's admins set.
public struct OrgSettings: Sendable, Equatable {
    public struct AutoTopUp: Sendable, Equatable {
        public let enabled: Bool
        public let thresholdCredits: Credits?
        public let packCode: String?

        public init(enabled: Bool, thresholdCredits: Credits?, packCode: String?) {
            self.enabled = enabled
            self.thresholdCredits = thresholdCredits
            self.packCode = packCode
        }
    }

    /// On by default: spends beyond the credits are refused rather than billed.
    public let overageProtection: Bool
    /// The most overage credits one period may incur; nil without a cap.
    public let overageCapCredits: Credits?
    public let autoTopUp: AutoTopUp
    public let lastAutoTopUpAt: Instant?
    /// Percentages of the period's allocation at which `usage.threshold_reached` fires.
    public let alertThresholdsPercent: [Int]
    /// `balance.low` fires when a spend leaves the balance below this; nil: the default, 10% of
    /// the period's allocation when there is one (0 turns it off).
    public let lowBalanceCredits: Credits?
    /// `credits.expiring` fires this many days before a bucket with credits left expires; 0 never.
    public let expiryWarningDays: Int
    /// When the settings last changed, and the key that changed them (nil: never changed).
    public var changedAt: Instant?
    public var changedBy: KeyStamp?

    public static let defaultAlertThresholdsPercent = [80, 100, 110]
    public static let defaultLowBalancePercent = 10
    public static let defaultExpiryWarningDays = 7

    public init(overageProtection: Bool, overageCapCredits: Credits?, autoTopUp: AutoTopUp, lastAutoTopUpAt: Instant?,
                alertThresholdsPercent: [Int] = OrgSettings.defaultAlertThresholdsPercent, lowBalanceCredits: Credits? = nil,
                expiryWarningDays: Int = OrgSettings.defaultExpiryWarningDays) {
        self.expiryWarningDays = expiryWarningDays
        self.overageProtection = overageProtection
        self.overageCapCredits = overageCapCredits
        self.autoTopUp = autoTopUp
        self.lastAutoTopUpAt = lastAutoTopUpAt
        self.alertThresholdsPercent = alertThresholdsPercent
        self.lowBalanceCredits = lowBalanceCredits
    }

    public static let defaults = OrgSettings(overageProtection: true, overageCapCredits: nil,
                                             autoTopUp: .init(enabled: false, thresholdCredits: nil, packCode: nil), lastAutoTopUpAt: nil)
}
