/// JSON member names are the Swift names in snake case, converted here once for every type that
/// `TallyJSONEncoder` writes and `StrictJSONDecoder` reads: `creditsPerPeriod` is
/// `credits_per_period`, and a run of capitals is one word (`eventID` is `event_id`, `returnURL`
/// is `return_url`, `changedByAPIKeyID` is `changed_by_api_key_id`). A name already in snake case
/// is left as it is. The keys of a `[String: Value]` dictionary are data, not names, and are
/// never converted.
public enum KeyCase {
    public static func snakeCase(_ name: String) -> String {
        let utf8 = name.utf8
        guard utf8.contains(where: isUpper) else { return name }
        let characters = Array(utf8)
        var out: [UInt8] = []
        out.reserveCapacity(characters.count + 4)
        for (index, byte) in characters.enumerated() {
            guard isUpper(byte) else {
                out.append(byte)
                continue
            }
            if index > 0 {
                let previous = characters[index - 1]
                let next = index + 1 < characters.count ? characters[index + 1] : nil
                // A word starts after a lower-case letter or a digit, and at the last capital of
                // a run that a lower-case letter follows (`APIKey`: `api`, `key`).
                if isLower(previous) || isDigit(previous) || (isUpper(previous) && next.map(isLower) == true) {
                    out.append(UInt8(ascii: "_"))
                }
            }
            out.append(byte + 32)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isUpper(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }
    private static func isLower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

/// A `[String: Value]` dictionary: its keys are written and read as they are.
protocol StringKeyedDictionary {}

extension Dictionary: StringKeyedDictionary where Key == String {}
