import Foundation

/// What `tally` carries inside itself: the migrations and the OpenAPI document, compiled in at
/// build time (see Plugins/EmbedResources), so that the binary runs from any folder.
public enum TallyResources {
    /// The OpenAPI document served at `/openapi.json`.
    public static var openAPIDocument: [UInt8] {
        Array(Data(base64Encoded: EmbeddedFiles.openAPI) ?? Data())
    }

    /// The migrations as (file name, SQL text), in file-name order.
    public static var migrationFiles: [(name: String, sql: String)] {
        EmbeddedFiles.migrations.map { file in
            (file.name, String(decoding: Data(base64Encoded: file.base64) ?? Data(), as: UTF8.self))
        }
    }
}
