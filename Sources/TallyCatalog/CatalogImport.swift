import TallyCore
import TallyJSON
import TallyStore

/// Loads a catalog document (the demo catalog, `tally catalog load`): creates what is missing
/// and leaves what exists alone, components before the pipelines that use them.
public enum CatalogImport {
    public struct Report: Sendable {
        public var created: [String] = []
        public var skipped: [String] = []
    }

    public static func load(_ bytes: [UInt8], into catalog: CatalogStore, at now: Instant) async throws -> Report {
        let document: CatalogDocument
        do {
            document = try StrictJSONDecoder.decode(CatalogDocument.self, from: try JSONParser.parse(bytes))
        } catch let error as JSONParser.SyntaxError {
            throw TallyError.validation("The catalog file is not JSON: \(error.reason) at byte \(error.offset).")
        }
        var report = Report()
        func attempt(_ name: String, _ create: () async throws -> Void) async throws {
            do {
                try await create()
                report.created.append(name)
            } catch let error as TallyError where error.kind == .conflict {
                report.skipped.append(name)
            }
        }
        for body in document.plans ?? [] {
            let plan = try body.plan()
            try await attempt("plan \(plan.code)") { try await catalog.createPlan(plan, at: now) }
        }
        let operations = try (document.operations ?? []).map { try $0.definition() }
        for operation in operations.filter({ !$0.isPipeline }) + operations.filter(\.isPipeline) {
            try await attempt("operation \(operation.code)") { try await catalog.createOperation(operation, at: now) }
        }
        for body in document.creditPacks ?? [] {
            let pack = try body.pack()
            try await attempt("credit pack \(pack.code)") { try await catalog.createPack(pack, at: now) }
        }
        return report
    }
}
