import Foundation
@testable import TallyCatalog
import TallyCore
@testable import TallyHTTP
import TallyJSON
import Testing

/// JSON member names are the Swift names in snake case, converted once in TallyJSON.
@Suite struct KeyCaseTests {
    @Test(arguments: [
        ("eventID", "event_id"), ("returnURL", "return_url"), ("changedByAPIKeyID", "changed_by_api_key_id"),
        ("bucketID", "bucket_id"), ("ttlSeconds", "ttl_seconds"), ("autoTopup", "auto_topup"),
        ("purchasedCreditsExpireAfterDays", "purchased_credits_expire_after_days"), ("id", "id"), ("apiKeyID", "api_key_id"),
        ("URL", "url"), ("sha256Hex", "sha256_hex"), ("credits_per_period", "credits_per_period"), ("", ""),
    ])
    func convertsSwiftNamesToSnakeCase(name: String, wire: String) {
        #expect(KeyCase.snakeCase(name) == wire)
    }

    struct Reply: Encodable {
        let eventID: String
        let returnURL: String?
        let changedByAPIKeyID: UUID?
        let rates: [String: Int]
    }

    @Test func encoderWritesSnakeCaseInDeclarationOrderAndDictionaryKeysAsTheyAre() throws {
        let bytes = try TallyJSONEncoder.encode(Reply(eventID: "e1", returnURL: nil, changedByAPIKeyID: nil, rates: ["imageGen": 2]))
        #expect(String(decoding: bytes, as: UTF8.self)
            == #"{"event_id":"e1","return_url":null,"changed_by_api_key_id":null,"rates":{"imageGen":2}}"#)
    }

    struct Request: Decodable {
        let eventID: String
        let ttlSeconds: Int?
        let rates: [String: Int]?
    }

    func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try StrictJSONDecoder.decode(type, from: try JSONParser.parse(Array(text.utf8)))
    }

    func field<T: Decodable>(_ type: T.Type, _ text: String) -> String? {
        do {
            _ = try decode(type, text)
            return "decoded"
        } catch let error as TallyError {
            return error.field
        } catch {
            return "\(error)"
        }
    }

    @Test func decoderReadsSnakeCaseAndNamesFieldsAsTheJSONDoes() throws {
        let request = try decode(Request.self, #"{"event_id": "e1", "ttl_seconds": 60, "rates": {"imageGen": 2}}"#)
        #expect(request.eventID == "e1")
        #expect(request.ttlSeconds == 60)
        #expect(request.rates == ["imageGen": 2])
        // The Swift spelling is an unknown field, named as it was written.
        #expect(field(Request.self, #"{"eventID": "e1"}"#) == "event_id")
        #expect(field(Request.self, #"{"event_id": "e1", "eventID": "e1"}"#) == "eventID")
        #expect(field(Request.self, #"{"event_id": "e1", "ttl_seconds": "soon"}"#) == "ttl_seconds")
        #expect(field(Request.self, #"{"event_id": "e1", "rates": {"imageGen": "two"}}"#) == "rates.imageGen")
    }

    @Test func nestedFieldsOfARealBodyAreNamedByTheirWirePath() {
        #expect(field(SettingsBody.self, #"{"auto_topup": {"threshold_credits": true}}"#) == "auto_topup.threshold_credits")
        #expect(field(SettingsBody.self, #"{"auto_topup": {"thresholdCredits": "5"}}"#) == "auto_topup.thresholdCredits")
        #expect(field(SettingsBody.self, #"{"autoTopup": {}}"#) == "autoTopup")
        #expect(field(SettingsBody.self, #"{"auto_topup": {"threshold_credits": "5", "pack": null}, "low_balance_credits": null}"#) == "decoded")
    }

    @Test func aReservationBodyReadsTheUsageFieldsAndItsOwn() throws {
        let body = try decode(ReservationBody.self, #"{"credits": "5", "ttl_seconds": 60, "event_id": "e1", "event_name": "n", "actor": "a"}"#)
        #expect(body.ttlSeconds == 60)
        #expect(body.usage.credits == Credits(units: 50_000))
        #expect(body.usage.eventID == "e1")
        #expect(body.usage.eventName == "n")
        #expect(body.usage.actor == "a")
        #expect(field(ReservationBody.self, #"{"credits": "5", "ttl": 60}"#) == "ttl")
        #expect(field(ReservationBody.self, #"{"credits": "5", "ttl_seconds": "60"}"#) == "ttl_seconds")
        // A usage body does not take ttl_seconds.
        #expect(field(UsageBody.self, #"{"credits": "5", "ttl_seconds": 60}"#) == "ttl_seconds")
    }

    @Test func anOperationRoundTripsByteForByte() throws {
        let text = #"{"code":"render","name":"Render","credits":"2","tiers":[{"param":"size","value":"1024","credits":"3"}],"multipliers":[{"param":"hd","value":"1","factor":"1.5"}],"addons":[{"param":"audio","credits":"1"}],"components":[],"free_quantity_per_request":1}"#
        let operation = try decode(OperationBody.self, text).definition()
        #expect(String(decoding: try TallyJSONEncoder.encode(OperationBody(operation)), as: UTF8.self) == text)
    }

    @Test func aPlanReadsAndWritesItsSnakeCaseMembers() throws {
        let text = #"{"code":"pro","name":"Pro","price":{"amount":"49.00","currency":"USD"},"interval":"month","credits_per_period":"1000","credit_expiry":{"policy":"days","days":30},"rollover":{"policy":"capped","max_credits":"500"},"overage":{"allowed":true,"rate_per_credit":"0.05"},"min_purchase_credits":"100","credit_price":{"amount":"0.06","currency":"USD"},"purchased_credits_expire_after_days":365,"operation_rates":{"image-gen":"2"}}"#
        let plan = try decode(PlanBody.self, text).plan()
        #expect(plan.operationRates == ["image-gen": Credits(units: 20_000)])
        let written = String(decoding: try TallyJSONEncoder.encode(PlanResponse(plan)), as: UTF8.self)
        #expect(written.hasPrefix(#"{"code":"pro","name":"Pro","price":{"amount":"49.00","currency":"USD"},"interval":"month","credits_per_period":"1000","credit_expiry":{"policy":"days","days":30},"rollover":{"policy":"capped","max_credits":"500"},"overage":{"allowed":true,"rate_per_credit":"0.05"},"min_purchase_credits":"100","credit_price":{"amount":"0.06","currency":"USD"},"purchased_credits_expire_after_days":365,"operation_rates":{"image-gen":"2"},"cost_per_credit":"#))
    }

    /// A spend's answer is written by hand on the hot path: the same bytes as its `Encodable` form.
    @Test(arguments: [
        [], [("1.3", "b0e7c5a2-0000-4000-8000-00000000000a")],
        [("0.0001", "6f1d2c3b-aaaa-4bbb-8ccc-dddddddddddd"), ("99999999999.9999", "00000000-0000-4000-8000-000000000001")],
    ])
    func spendAnswerWrittenByHandMatchesItsEncodableForm(draws: [(String, String)]) throws {
        let answer = SpendResponse(
            entryID: UUID(uuidString: "C0FFEE00-1234-4ABC-8DEF-0123456789AB")!,
            credits: try Credits(parsing: "4.1"), overageCredits: try Credits(parsing: "-0.5"),
            availableAfter: try Credits(parsing: "123456789.0001"),
            drawn: try draws.map { DrawDTO(BurnDownPlan.Draw(bucketID: UUID(uuidString: $0.1)!, credits: try Credits(parsing: $0.0))) },
            createdAt: Instant(microsecondsSinceEpoch: 1_796_000_000_123_456)
        )
        let byHand = answer.json.serialized()
        #expect(byHand == (try TallyJSONEncoder.encode(answer)))
        #expect(String(decoding: byHand, as: UTF8.self).hasPrefix(#"{"entry_id":"c0ffee00-1234-4abc-8def-0123456789ab","credits":"4.1""#))
    }
}
