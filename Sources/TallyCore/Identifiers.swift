import struct Foundation.UUID

extension UUID {
    /// A version 7 UUID: 48 bits of Unix milliseconds, then random bits. Ids made this way sort
    /// roughly by creation time, which keeps primary-key indexes compact under heavy inserts.
    public static func v7<Generator: RandomNumberGenerator>(at instant: Instant, using generator: inout Generator) -> UUID {
        let milliseconds = UInt64(max(0, instant.microsecondsSinceEpoch / 1000)) & 0xFFFF_FFFF_FFFF
        let randomA = generator.next()
        let randomB = generator.next()
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * index)) }
        for index in 6..<8 { bytes[index] = UInt8(truncatingIfNeeded: randomA >> (8 * index)) }
        for index in 8..<16 { bytes[index] = UInt8(truncatingIfNeeded: randomB >> (8 * (index - 8))) }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    public static func v7(at instant: Instant) -> UUID {
        var generator = SystemRandomNumberGenerator()
        return v7(at: instant, using: &generator)
    }

    /// Parses an id from a path or body; nil for anything that is not a UUID.
    public init?(idString: some StringProtocol) {
        guard idString.utf8.count == 36 else { return nil }
        self.init(uuidString: String(idString))
    }

    public var idString: String {
        // By hand: Foundation's `uuidString.lowercased()` showed in every response's profile.
        withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { text in
                var position = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        text[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    text[position] = Hex.digits[Int(byte >> 4)]
                    text[position + 1] = Hex.digits[Int(byte & 0x0f)]
                    position += 2
                }
                return position
            }
        }
    }
}
