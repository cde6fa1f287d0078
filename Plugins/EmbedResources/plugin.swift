import Foundation
import PackagePlugin

/// Compiles the migrations (`sql/*.sql`) and `openapi.json` into the `TallyResources` module, so
/// that `tally` is one self-contained binary that runs from any folder.
@main
struct EmbedResources: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let sql = root.appending(path: "sql")
        let migrations = try FileManager.default.contentsOfDirectory(at: sql, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let openAPI = root.appending(path: "openapi.json")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedResources.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(migrations.count) migrations and openapi.json",
                executable: try context.tool(named: "EmbedResourcesTool").url,
                arguments: [output.path, openAPI.path] + migrations.map(\.path),
                inputFiles: [openAPI] + migrations,
                outputFiles: [output]
            ),
        ]
    }
}
