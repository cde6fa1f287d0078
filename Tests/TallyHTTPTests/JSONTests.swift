import TallyJSON
import Foundation
import Testing
import TallyCore
@testable import TallyJSON
import TallyHTTP

@Suite struct JSONParserTests {
    @Test func keepsNumbersExactlyAsWritten() throws {
        let value = try JSONParser.parse(Array(#"{"a": 1.3, "b": -0.10, "c": 1e400, "d": [0, 12]}"#.utf8))
        #expect(value["a"] == .number("1.3"))
        #expect(value["b"] == .number("-0.10"))
        #expect(value["c"] == .number("1e400"))
        #expect(value["d"] == .array([.number("0"), .number("12")]))
    }

    @Test(arguments: [
        "", "{", "{\"a\":}", "{\"a\":1,}", "[1,]", "01", "1.", ".5", "+1", "NaN", "{'a':1}", "\"\\x\"", "\"\u{01}\"",
        "\"\\ud800\"", "{} {}", "tru", "[1 2]", "{\"a\" 1}",
    ])
    func refusesMalformedDocuments(text: String) {
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect(throws: Never.self) { try JSONParser.parse(Array(fine.utf8)) }
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let value = try JSONParser.parse(Array(#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#.utf8))
        #expect(value == .string("a\"b\\c/d\né😀"))
    }

    @Test func serialisesCanonicallyWithSortedKeys() throws {
        let a = try JSONParser.parse(Array(#"{"b": 1, "a": {"y": "x", "x": null}}"#.utf8))
        let b = try JSONParser.parse(Array(#"{ "a": {"x": null, "y": "x"}, "b": 1 }"#.utf8))
        #expect(a.serialized(sortedKeys: true) == b.serialized(sortedKeys: true))
        #expect(String(decoding: a.serialized(sortedKeys: true), as: UTF8.self) == #"{"a":{"x":null,"y":"x"},"b":1}"#)
    }

    @Test func escapesControlCharactersWhenWriting() {
        #expect(String(decoding: JSONValue.string("a\u{01}\"\n").serialized(), as: UTF8.self) == #""a\u0001\"\n""#)
    }
}

@Suite struct StrictDecoderTests {
    struct Spend: Decodable {
        let credits: Credits
        let quantity: Int?
        let note: String?
        let tags: [String]?
    }

    func decode(_ text: String) throws -> Spend {
        try StrictJSONDecoder.decode(Spend.self, from: try JSONParser.parse(Array(text.utf8)))
    }

    func failure(_ text: String) -> TallyError? {
        do {
            _ = try decode(text)
            return nil
        } catch let error as TallyError {
            return error
        } catch {
            return nil
        }
    }

    @Test func acceptsCreditsAsStringOrNumber() throws {
        #expect(try decode(#"{"credits": "1.3"}"#).credits == Credits(units: 13_000))
        #expect(try decode(#"{"credits": 1.3}"#).credits == Credits(units: 13_000))
        #expect(try decode(#"{"credits": "4.1000"}"#).credits == Credits(units: 41_000))
    }

    @Test(arguments: [#"{"credits": "1.23456"}"#, #"{"credits": "abc"}"#, #"{"credits": 1e400}"#, #"{"credits": "NaN"}"#, #"{"credits": true}"#])
    func namesTheFieldOfABadAmount(text: String) throws {
        let error = try #require(failure(text))
        #expect(error.kind == .unprocessable)
        #expect(error.field == "credits")
    }

    @Test func namesUnknownFields() throws {
        let error = try #require(failure(#"{"credits": "1", "creditz": "2"}"#))
        #expect(error.field == "creditz")
        #expect(error.detail.contains("Unknown field"))
    }

    @Test func namesWrongTypes() throws {
        #expect(try #require(failure(#"{"credits": "1", "quantity": "5"}"#)).field == "quantity")
        #expect(try #require(failure(#"{"credits": "1", "quantity": 1.5}"#)).field == "quantity")
        #expect(try #require(failure(#"{"credits": "1", "note": 5}"#)).field == "note")
        #expect(try #require(failure(#"{"credits": "1", "tags": ["a", 2]}"#)).field == "tags[1]")
        #expect(try #require(failure(#"[1]"#)).kind == .unprocessable)
    }

    /// JSON Schema's integer is any number without a fraction: 455.0 and 4.55e2 are 455.
    @Test func integersMayBeWrittenWithAZeroFractionOrAnExponent() throws {
        for text in ["455", "455.0", "455.000", "4.55e2", "4550e-1", "45500E-2", "0.0", "-0"] {
            let quantity = try decode(#"{"credits": "1", "quantity": \#(text)}"#).quantity
            #expect(quantity == (text.hasPrefix("0") || text == "-0" ? 0 : 455), "\(text)")
        }
        for text in ["455.5", "4.555e2", "1e-1", "1e41", "99999999999999999999"] {
            #expect(try #require(failure(#"{"credits": "1", "quantity": \#(text)}"#)).field == "quantity", "\(text)")
        }
    }

    @Test func namesMissingAndNullRequiredFields() throws {
        #expect(try #require(failure(#"{}"#)).field == "credits")
        #expect(try #require(failure(#"{"credits": null}"#)).field == "credits")
    }

    @Test func refusesDuplicateMembers() throws {
        #expect(try #require(failure(#"{"credits": "1", "credits": "2"}"#)).field == "credits")
    }

    @Test func nullOptionalsAreAbsent() throws {
        let spend = try decode(#"{"credits": "1", "quantity": null}"#)
        #expect(spend.quantity == nil)
    }

    @Test func integersOutOfRangeAreRefused() throws {
        #expect(try #require(failure(#"{"credits": "1", "quantity": 99999999999999999999}"#)).field == "quantity")
    }
}

@Suite struct EncoderTests {
    struct Body: Encodable {
        let id: UUID
        let credits: Credits
        let expiresAt: Instant?
        let count: Int

        enum CodingKeys: String, CodingKey {
            case id, credits, count
            case expiresAt = "expires_at"
        }
    }

    @Test func writesNullsLowercaseIDsAndDecimalStrings() throws {
        let id = UUID(uuidString: "0192F0C4-7B7E-7C4A-9D2E-1A2B3C4D5E6F")!
        let bytes = try TallyJSONEncoder.encode(Body(id: id, credits: Credits(units: 1_376_000), expiresAt: nil, count: 3))
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"id":"0192f0c4-7b7e-7c4a-9d2e-1a2b3c4d5e6f","credits":"137.6","count":3,"expires_at":null}"#)
    }
}
