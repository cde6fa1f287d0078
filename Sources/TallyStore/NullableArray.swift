import NIOCore
import PostgresNIO

/// A one-dimensional array that may hold NULLs, in PostgreSQL's binary array format (PostgresNIO
/// encodes arrays of non-optional values only). Fixed-shape prepared statements pass rows as
/// parallel arrays, and some columns of a row are NULL.
struct NullableArray<Element: PostgresArrayEncodable & PostgresNonThrowingEncodable>: PostgresNonThrowingEncodable, Sendable where Element: Sendable {
    static var psqlType: PostgresDataType { Element.psqlArrayType }
    static var psqlFormat: PostgresFormat { .binary }

    let elements: [Element?]

    init(_ elements: [Element?]) {
        self.elements = elements
    }

    func encode<E: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<E>) {
        buffer.writeInteger(Int32(elements.isEmpty ? 0 : 1))                     // dimensions
        buffer.writeInteger(Int32(elements.contains { $0 == nil } ? 1 : 0))       // has NULLs
        buffer.writeInteger(Element.psqlType.rawValue)                             // element type
        guard !elements.isEmpty else { return }
        buffer.writeInteger(Int32(elements.count))                                 // length
        buffer.writeInteger(Int32(1))                                              // lower bound
        var scratch = ByteBuffer()
        for element in elements {
            guard let element else {
                buffer.writeInteger(Int32(-1))
                continue
            }
            scratch.clear()
            element.encode(into: &scratch, context: context)
            buffer.writeInteger(Int32(scratch.readableBytes))
            buffer.writeBuffer(&scratch)
        }
    }
}
