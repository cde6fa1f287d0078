import Foundation
import Testing
@testable import TallyCore

@Suite struct DecimalTextTests {
    @Test(arguments: [
        ("1.3", Int64(13_000)), ("1.30", 13_000), ("4.1000", 41_000), ("4.10000000", 41_000),
        ("0", 0), ("0.0001", 1), ("137.6", 1_376_000), ("-4.1", -41_000), ("007", 70_000),
        ("1000000000000", 10_000_000_000_000_000),
    ])
    func parsesExactly(text: String, units: Int64) throws {
        #expect(try DecimalText.parse(text, scale: 4) == units)
    }

    @Test(arguments: ["1.23456", "0.00001", "1.00005"])
    func refusesMorePlacesThanTheScale(text: String) {
        #expect(throws: DecimalText.ParseError.tooManyDecimalPlaces(maximum: 4)) { try DecimalText.parse(text, scale: 4) }
    }

    @Test(arguments: ["abc", "NaN", "Infinity", "1e400", "1E2", "+1", " 1", "1 ", ".5", "5.", "", "-", "1.2.3", "0x10", "١٢"])
    func refusesWhatIsNotADecimal(text: String) {
        #expect(throws: DecimalText.ParseError.notANumber) { try DecimalText.parse(text, scale: 4) }
    }

    @Test func refusesOverflow() {
        #expect(throws: DecimalText.ParseError.outOfRange) { try DecimalText.parse("99999999999999999999", scale: 4) }
        #expect(throws: DecimalText.ParseError.outOfRange) { try DecimalText.parse("922337203685478", scale: 4) }
    }

    @Test(arguments: [
        (Int64(1_376_000), 4, 0, "137.6"), (1_300_000, 4, 0, "130"), (0, 4, 0, "0"), (-41_000, 4, 0, "-4.1"),
        (1, 4, 0, "0.0001"), (250_000_000, 6, 2, "250.00"), (54_700, 6, 2, "0.0547"), (410_000, 6, 2, "0.41"),
        (-5, 6, 2, "-0.000005"), (9_900_000, 6, 2, "9.90"),
    ])
    func formats(units: Int64, scale: Int, minimumFractionDigits: Int, text: String) {
        #expect(DecimalText.format(units, scale: scale, minimumFractionDigits: minimumFractionDigits) == text)
    }

    @Test func roundTripsEveryFormattedValue() throws {
        for units in stride(from: Int64(-30_000), through: 30_000, by: 7) {
            let text = DecimalText.format(units, scale: 4)
            #expect(try DecimalText.parse(text, scale: 4) == units)
        }
    }

    @Test func roundsHalfAwayFromZero() {
        let rule = RoundingRule.halfAwayFromZero
        #expect(rule.divide(5, by: 10) == 1)
        #expect(rule.divide(4, by: 10) == 0)
        #expect(rule.divide(-5, by: 10) == -1)
        #expect(rule.divide(-4, by: 10) == 0)
        #expect(rule.divide(15, by: 10) == 2)
        #expect(RoundingRule.towardZero.divide(19, by: 10) == 1)
        #expect(RoundingRule.towardZero.divide(-19, by: 10) == -1)
    }
}

@Suite struct CreditsTests {
    @Test func theSeedArithmeticIsExact() throws {
        // Seed 001: 500 - 100 x 1.3 = 370; 370 - 83 x 2.8 = 137.6, exactly.
        let balance = Credits(500)
        let smartCrop = try Credits(parsing: "1.3")
        let backgroundRemoval = try Credits(parsing: "2.8")
        let afterCrops = balance - smartCrop.multiplied(by: 100)!
        #expect(afterCrops == Credits(370))
        let afterRemovals = afterCrops - backgroundRemoval.multiplied(by: 83)!
        #expect(afterRemovals.description == "137.6")
        #expect(backgroundRemoval.multiplied(by: 83)!.description == "232.4")
    }

    @Test func wholeTimesIsTheLargestAffordableQuantity() throws {
        #expect(try Credits(parsing: "1.3").wholeTimes(in: Credits(500)) == 384)
        #expect(try Credits(parsing: "2.8").wholeTimes(in: Credits(500)) == 178)
        #expect(Credits(3).wholeTimes(in: Credits(2)) == 0)
        #expect(Credits.zero.wholeTimes(in: Credits(2)) == 0)
        #expect(Credits(1).wholeTimes(in: .zero) == 0)
    }

    @Test func multiplicationReportsOverflow() {
        // Int128 units: a trillion credits times a million is exact; only beyond 1.7 * 10^34 credits is nil.
        #expect(Credits.inputMaximum.multiplied(by: 1_000_000) == Credits(units: 10_000_000_000_000_000_000_000))
        #expect(Credits(units: Int128.max / 2).multiplied(by: 3) == nil)
        #expect(Credits(units: Int128.min / 2).multiplied(by: 3) == nil)
        #expect(Credits(2).multiplied(by: 3) == Credits(6))
    }

    @Test func equalAmountsAreEqualWhateverTheirSpelling() throws {
        #expect(try Credits(parsing: "1.3") == Credits(parsing: "1.3000"))
        #expect(try Credits(parsing: "4.1000").description == "4.1")
    }
}

@Suite struct MoneyTests {
    let usd = Currency.usd

    @Test func costPerCreditOfTheSeedPlan() throws {
        // Seed 001: $250 / 4,570 credits = $0.0547 per credit (4 places); 4.1 credits cost $0.2243.
        let price = try Money(parsing: "250.00", currency: usd, maximumDecimalPlaces: 2)
        let perCredit = try #require(price.perCredit(of: Credits(4570), decimalPlaces: 4, .halfAwayFromZero))
        #expect(perCredit.amountText == "0.0547")
        let operation = try Credits(parsing: "4.1")
        let exact = Money(micros: operation.units * perCredit.micros / Credits.unitsPerCredit, currency: usd)
        #expect(exact.rounded(toDecimalPlaces: 4, .halfAwayFromZero).amountText == "0.2243")
        #expect(perCredit.priceOf(operation, decimalPlaces: 4, .halfAwayFromZero).amountText == "0.2243")
    }

    @Test func overageLinesRoundToTheMinorUnit() throws {
        let rate = try Money(parsing: "0.10", currency: usd, maximumDecimalPlaces: 6)
        #expect(rate.priceOf(try Credits(parsing: "4.1"), .halfAwayFromZero).amountText == "0.41")
        #expect(rate.priceOf(try Credits(parsing: "2.1"), .halfAwayFromZero).amountText == "0.21")
        // 0.125 -> 0.13 (half away from zero), 0.0049 -> 0.00
        let halfCent = try Money(parsing: "0.005", currency: usd, maximumDecimalPlaces: 6)
        #expect(halfCent.priceOf(Credits(25), .halfAwayFromZero).amountText == "0.13")
        #expect(halfCent.priceOf(try Credits(parsing: "0.98"), .halfAwayFromZero).amountText == "0.00")
        #expect(Money(micros: -5_000, currency: usd).roundedToMinorUnit(.halfAwayFromZero).amountText == "-0.01")
    }

    @Test func minorUnitsFollowTheCurrency() throws {
        let yen = try #require(Currency.named("JPY"))
        #expect(Money(micros: 1_500_000, currency: yen).roundedToMinorUnit(.halfAwayFromZero).amountText == "2")
        let dinar = try #require(Currency.named("KWD"))
        #expect(Money(micros: 1_234_500, currency: dinar).roundedToMinorUnit(.halfAwayFromZero).amountText == "1.235")
        #expect(Currency.named("XYZ") == nil)
    }

    @Test func currenciesNeverMix() throws {
        let euros = Money(micros: 1, currency: try #require(Currency.named("EUR")))
        #expect(throws: TallyError.self) { try Money(micros: 1, currency: usd).adding(euros) }
    }

    @Test func pricesRefuseFractionsOfTheMinorUnit() {
        #expect(throws: DecimalText.ParseError.self) { try Money(parsing: "9.999", currency: usd, maximumDecimalPlaces: 2) }
    }
}

@Suite struct InstantTests {
    @Test(arguments: [
        ("2026-11-21T10:00:00Z", "2026-11-21T10:00:00Z"),
        ("2026-11-21T10:00:00.5Z", "2026-11-21T10:00:00.5Z"),
        ("2026-11-21T10:00:00.123456789Z", "2026-11-21T10:00:00.123456Z"),
        ("2026-11-21T12:00:00+02:00", "2026-11-21T10:00:00Z"),
        ("2026-11-21t10:00:00z", "2026-11-21T10:00:00Z"),
        ("2024-02-29T23:59:59-00:30", "2024-03-01T00:29:59Z"),
        ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
    ])
    func parsesAndFormats(input: String, output: String) throws {
        #expect(try Instant(rfc3339: input).rfc3339 == output)
    }

    @Test(arguments: ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-21 10:00:00Z", "2026-11-21T10:00:00",
                      "2026-11-21T24:00:00Z", "2026-11-21T10:00:00.Z", "yesterday", "2025-02-29T00:00:00Z", ""])
    func refusesWhatIsNotRFC3339(input: String) {
        #expect(throws: Instant.ParseError.self) { try Instant(rfc3339: input) }
    }

    @Test func civilDatesRoundTripOverFourCenturies() {
        var days = CivilDate.daysSinceEpoch(year: 1800, month: 1, day: 1)
        for year in 1800...2200 {
            for month in 1...12 {
                for day in 1...CivilDate.daysInMonth(year: year, month: month) {
                    let (y, m, d) = CivilDate.fromDaysSinceEpoch(days)
                    #expect(y == year && m == month && d == day)
                    days += 1
                }
            }
        }
    }

    @Test func leapYears() {
        #expect(CivilDate.isLeapYear(2024))
        #expect(!CivilDate.isLeapYear(2026))
        #expect(!CivilDate.isLeapYear(1900))
        #expect(CivilDate.isLeapYear(2000))
    }
}

@Suite struct IdentifierTextTests {
    /// The hand-written lower-case text is Foundation's, lower-cased, for any id.
    @Test func idStringIsTheLowerCasedCanonicalText() {
        var ids = (0..<1000).map { _ in UUID() }
        ids.append(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
        ids.append(UUID(uuid: (255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255)))
        for id in ids { #expect(id.idString == id.uuidString.lowercased()) }
        #expect(UUID(idString: ids[0].idString) == ids[0])
    }

    @Test func hexRoundTripsAndRefusesWhatIsNotLowerCaseHex() {
        let bytes: [UInt8] = [0, 1, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xff]
        #expect(Hex.lowercase(bytes) == "00010f107f80abff")
        #expect(Hex.bytes("00010f107f80abff") == bytes)
        #expect(Hex.bytes("") == [])
        for bad in ["0", "abc", "0g", "AB", " 00", "00 ", "-1"] { #expect(Hex.bytes(bad) == nil, "\(bad)") }
    }
}
