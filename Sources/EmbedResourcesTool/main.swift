import Foundation

// Writes a Swift file that holds the given files as base64 text: `output openapi.json migration...`.
// Base64 needs no escaping, whatever the files hold.
let arguments = CommandLine.arguments.dropFirst()
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: EmbedResourcesTool output.swift openapi.json [migration.sql ...]\n".utf8))
    exit(2)
}
let output = URL(fileURLWithPath: arguments[arguments.startIndex])
let openAPI = URL(fileURLWithPath: arguments[arguments.startIndex + 1])
let migrations = arguments.dropFirst(2).map { URL(fileURLWithPath: $0) }

func base64(_ url: URL) throws -> String { try Data(contentsOf: url).base64EncodedString() }

var source = """
    // Generated at build time by the EmbedResources plugin from sql/*.sql and openapi.json. Do not edit.
    import Foundation

    enum EmbeddedFiles {
        static let openAPI = "\(try base64(openAPI))"
        static let migrations: [(name: String, base64: String)] = [

    """
for migration in migrations {
    source += "        (\"\(migration.lastPathComponent)\", \"\(try base64(migration))\"),\n"
}
source += "    ]\n}\n"
let data = Data(source.utf8)
// Unchanged output keeps the module from compiling again.
if (try? Data(contentsOf: output)) != data {
    try data.write(to: output)
}
