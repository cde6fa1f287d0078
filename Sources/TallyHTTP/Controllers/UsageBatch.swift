import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TallyCore
import TallyJSON

/// `POST /v1/orgs/{org}/usage/batch`: up to 100 spends in one request (seed 000 processes images
/// in batches). Each item is claimed and answered exactly as `POST .../usage` with its key and
/// body would be (replays across the two included); one failing item never undoes another. The
/// items run concurrently, at most `batchItemsInFlight` at a time, so the organisation's spend
/// batcher commits them together while a flood of batches holds a bounded number of spends in
/// memory (all 100 at once took a server from 49 to 155 MB under 64 concurrent batches).
extension CreditsController {
    static let batchItemsMaximum = 100
    static let batchItemsInFlight = 25

    func consumeBatch(_ request: Request, _ context: TallyRequestContext) async throws -> Response {
        let scope = try await services.orgScope(context)
        var request = request
        let json = try await request.jsonBody(context: context)
        guard case .object(let members) = json else { throw TallyError.validation("The body must be a JSON object.", field: "body") }
        if let unknown = members.first(where: { $0.key != "items" }) {
            throw TallyError.validation("'\(unknown.key)' is not a member of a usage batch.", field: unknown.key)
        }
        guard case .array(let items)? = json["items"], (1...Self.batchItemsMaximum).contains(items.count) else {
            throw TallyError.validation("items must be an array of 1 to \(Self.batchItemsMaximum) usage requests.", field: "items")
        }
        // Each item is the `POST .../usage` it stands for, on the same organisation path.
        let usagePath = String(request.uri.path.dropLast("/batch".count))
        let answers = await withTaskGroup(of: (Int, Int, [UInt8]).self) { group in
            var answers = [(Int, [UInt8])](repeating: (0, []), count: items.count)
            for (index, item) in items.enumerated() {
                if index >= Self.batchItemsInFlight, let (done, status, body) = await group.next() { answers[done] = (status, body) }
                group.addTask {
                    let (status, body) = await batchItem(item, index: index, path: usagePath, scope: scope, context: context)
                    return (index, status, body)
                }
            }
            for await (index, status, body) in group { answers[index] = (status, body) }
            return answers
        }
        var bytes = Array(#"{"results":["#.utf8)
        for (offset, (status, body)) in answers.enumerated() {
            if offset > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: #"{"status":\#(status),"body":"#.utf8)
            bytes.append(contentsOf: body)
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(contentsOf: "]}".utf8)
        return Response(status: .ok, headers: [.contentType: Response.jsonContentType], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// One item's answer: its status and body, a problem document when it failed.
    private func batchItem(_ item: JSONValue, index: Int, path: String, scope: OrgScope, context: TallyRequestContext) async -> (Int, [UInt8]) {
        do {
            guard case .object(var members) = item else {
                throw TallyError.validation("items[\(index)] must be a usage request object.", field: "items[\(index)]")
            }
            var key: String?
            if let found = members.firstIndex(where: { $0.key == "idempotency_key" }) {
                guard case .string(let text) = members[found].value else {
                    throw TallyError.validation("items[\(index)].idempotency_key must be a string.", field: "items[\(index)].idempotency_key")
                }
                key = text
                members.remove(at: found)
            }
            let stored = try await spend(.object(members), key: key, path: path, scope: scope, context: context)
            return (stored.status, stored.body)
        } catch {
            let (status, problem) = ProblemMiddleware.problem(for: error, context: context)
            return (Int(status.code), ProblemMiddleware.body(status: status, code: problem.code, detail: problem.detail,
                                                             field: problem.field, extras: problem.extras))
        }
    }
}
