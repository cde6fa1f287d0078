import struct Foundation.UUID
import TallyCore

/// Encodes response types to compact JSON with a stable shape: members in declaration order,
/// named in snake case (`KeyCase`), absent optionals written as explicit `null` (so clients see
/// every field), UUIDs in lower case.
public enum TallyJSONEncoder {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try encodeValue(value).serialized()
    }

    public static func encodeValue<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = EncodingNode()
        try NodeEncoder(node: root, codingPath: []).encodeAny(value)
        return root.materialize()
    }
}

final class EncodingNode {
    enum Content {
        case unset
        case value(JSONValue)
        case object([(key: String, node: EncodingNode)])
        case array([EncodingNode])
    }

    var content: Content = .unset

    func materialize() -> JSONValue {
        switch content {
        case .unset: .object([])
        case .value(let value): value
        case .object(let members): .object(members.map { ($0.key, $0.node.materialize()) })
        case .array(let items): .array(items.map { $0.materialize() })
        }
    }

    func child(forKey key: String) -> EncodingNode {
        if case .object(var members) = content {
            if let existing = members.first(where: { $0.key == key }) { return existing.node }
            let node = EncodingNode()
            content = .unset        // the enum's reference dropped: the append below does not copy
            members.append((key, node))
            content = .object(members)
            return node
        }
        let node = EncodingNode()
        content = .object([(key, node)])
        return node
    }

    func appendChild() -> EncodingNode {
        let node = EncodingNode()
        if case .array(var items) = content {
            content = .unset
            items.append(node)
            content = .array(items)
        } else {
            content = .array([node])
        }
        return node
    }
}

struct NodeEncoder: Encoder, SingleValueEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    /// Set while encoding a `[String: Value]` dictionary, whose keys are written as they are.
    var verbatimKeys = false
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object([]) }
        return KeyedEncodingContainer(NodeKeyedContainer<Key>(node: node, codingPath: codingPath, verbatimKeys: verbatimKeys))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return NodeUnkeyedContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func encodeAny<T: Encodable>(_ value: T) throws {
        switch value {
        case let uuid as UUID: node.content = .value(.string(uuid.idString))
        case let json as JSONValue: node.content = .value(json)
        case is any StringKeyedDictionary: try value.encode(to: NodeEncoder(node: node, codingPath: codingPath, verbatimKeys: true))
        default: try value.encode(to: self)
        }
    }

    func encodeNil() { node.content = .value(.null) }
    func encode(_ value: Bool) { node.content = .value(.bool(value)) }
    func encode(_ value: String) { node.content = .value(.string(value)) }
    func encode(_ value: Double) { node.content = .value(.number(value.description)) }
    func encode(_ value: Float) { node.content = .value(.number(value.description)) }
    func encode(_ value: Int) { node.content = .value(.number(String(value))) }
    func encode(_ value: Int8) { node.content = .value(.number(String(value))) }
    func encode(_ value: Int16) { node.content = .value(.number(String(value))) }
    func encode(_ value: Int32) { node.content = .value(.number(String(value))) }
    func encode(_ value: Int64) { node.content = .value(.number(String(value))) }
    func encode(_ value: UInt) { node.content = .value(.number(String(value))) }
    func encode(_ value: UInt8) { node.content = .value(.number(String(value))) }
    func encode(_ value: UInt16) { node.content = .value(.number(String(value))) }
    func encode(_ value: UInt32) { node.content = .value(.number(String(value))) }
    func encode(_ value: UInt64) { node.content = .value(.number(String(value))) }
    func encode<T: Encodable>(_ value: T) throws { try encodeAny(value) }
}

struct NodeKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let verbatimKeys: Bool

    // The coding path is not extended: nothing reads it (encoding a response cannot fail on a
    // value), and an array per field cost more than the rest of the field's encoding.
    private func encoder(_ key: Key) -> NodeEncoder {
        let name = verbatimKeys ? key.stringValue : KeyCase.snakeCase(key.stringValue)
        return NodeEncoder(node: node.child(forKey: name), codingPath: codingPath)
    }

    mutating func encodeNil(forKey key: Key) { encoder(key).encodeNil() }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try encoder(key).encodeAny(value) }

    // Absent optionals are written as null rather than left out.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { encodeNil(forKey: key) }
    }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try encodeIfPresent(value.map { $0 }, key) }

    private mutating func encodeIfPresent<T: Encodable>(_ value: T?, _ key: Key) throws {
        if let value { try encode(value, forKey: key) } else { encodeNil(forKey: key) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        encoder(key).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        encoder(key).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { NodeEncoder(node: node, codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { encoder(key) }
}

struct NodeUnkeyedContainer: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    var count: Int {
        if case .array(let items) = node.content { return items.count }
        return 0
    }

    private func nextEncoder() -> NodeEncoder {
        NodeEncoder(node: node.appendChild(), codingPath: codingPath)
    }

    mutating func encodeNil() { nextEncoder().encodeNil() }
    mutating func encode<T: Encodable>(_ value: T) throws { try nextEncoder().encodeAny(value) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        nextEncoder().container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { nextEncoder().unkeyedContainer() }
    mutating func superEncoder() -> any Encoder { nextEncoder() }
}

extension JSONValue: Encodable {
    public func encode(to encoder: any Encoder) throws {
        // TallyJSONEncoder writes a JSONValue as it is; other encoders get its text.
        var container = encoder.singleValueContainer()
        try container.encode(String(decoding: serialized(), as: UTF8.self))
    }
}

