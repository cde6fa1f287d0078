import Foundation
import Hummingbird
import NIOCore
import TallyCore
import TallyJSON
import TallyStore

/// The monthly usage summary, usage exports and the organisation's events.
struct ReportsController {
    let services: AppServices
    static let summaryMonthsMaximum = 36

    struct MonthDTO: Encodable {
        let month: String
        let creditsUsed: Credits
        let transactions: Int64
        let current: Bool
        /// Only with `by=operation`.
        let operations: [OperationDTO]?

        enum CodingKeys: CodingKey { case month, creditsUsed, transactions, current, operations }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(month, forKey: .month)
            try container.encode(creditsUsed, forKey: .creditsUsed)
            try container.encode(transactions, forKey: .transactions)
            try container.encode(current, forKey: .current)
            if let operations { try container.encode(operations, forKey: .operations) }   // absent without by=operation
        }
    }

    struct OperationDTO: Encodable {
        let operation: String?
        let creditsUsed: Credits
        let transactions: Int64
    }

    struct EventDTO: Encodable {
        let id: UUID
        let type: String
        let createdAt: Instant
        let data: JSONValue
    }

    func register(on v1: RouterGroup<TallyRequestContext>) {
        v1.get("/orgs/{org}/usage/summary") { request, context in
            let scope = try await services.orgScope(context)
            let months = try request.queryInt("months") ?? 4
            guard (1...Self.summaryMonthsMaximum).contains(months) else {
                throw TallyError.validation("months must be between 1 and \(Self.summaryMonthsMaximum).", field: "months")
            }
            let by = request.queryString("by")
            guard by == nil || by == "operation" else { throw TallyError.validation("by must be operation.", field: "by") }
            let reports = services.stores.reports
            let summary = try await reports.monthlySummary(orgID: scope.org.id, timezone: scope.org.timezone, at: scope.now, months: months)
            var operations: [CalendarMonth: [OperationUsage]]?
            if by != nil, let newest = summary.first?.month, let oldest = summary.last?.month {
                operations = try await reports.operationUsage(orgID: scope.org.id, timezone: scope.org.timezone, oldest: oldest, newest: newest)
            }
            let rows = summary.map { month in
                MonthDTO(month: month.month.description, creditsUsed: month.creditsUsed, transactions: month.transactions, current: month.current,
                         operations: operations.map { found in
                             (found[month.month] ?? []).map { OperationDTO(operation: $0.operation, creditsUsed: $0.creditsUsed, transactions: $0.transactions) }
                         })
            }
            return try Response.json(["data": rows])
        }
        v1.get("/orgs/{org}/usage/export") { request, context in
            let scope = try await services.orgScope(context)
            let format = request.queryString("format") ?? "json"
            guard format == "json" || format == "csv" else { throw TallyError.validation("format must be json or csv.", field: "format") }
            let from = try request.queryInstant("from")
            let to = try request.queryInstant("to")
            if let from, let to, to <= from { throw TallyError.validation("to must be after from.", field: "to") }
            return UsageExport(reports: services.stores.reports, orgID: scope.org.id, from: from, to: to, csv: format == "csv").download()
        }
        v1.get("/orgs/{org}/events") { request, context in
            let scope = try await services.orgScope(context)
            let limit = try PageSize.resolve(try request.queryInt("limit"))
            var cursor: Int64?
            if let text = request.queryString("cursor") {
                guard let value = Int64(text) else { throw TallyError.validation("cursor is not valid.", field: "cursor") }
                cursor = value
            }
            let page = try await services.stores.webhooks.events(orgID: scope.org.id, type: request.queryString("type"), limit: limit, before: cursor)
            let items = page.items.map { EventDTO(id: $0.id, type: $0.type, createdAt: $0.createdAt, data: (try? JSONParser.parse(Array($0.data.utf8))) ?? .null) }
            return try Response.json(ListResponse(data: items, nextCursor: page.nextCursor))
        }
    }
}

/// Streams every usage entry of a range, one database page at a time: memory stays bounded by
/// the page, whatever the size of the export. JSON is one array; CSV has a header row and
/// RFC 4180 quoting with CRLF line ends.
struct UsageExport: Sendable {
    /// The export as a download (`usage-<org>.json` or `.csv`), streamed as it is read.
    func download() -> Response {
        Response(status: .ok,
                 headers: [.contentType: csv ? "text/csv; charset=utf-8" : "application/json",
                           .contentDisposition: "attachment; filename=\"usage-\(orgID.idString).\(csv ? "csv" : "json")\""],
                 body: ResponseBody { writer in try await write(to: &writer) })
    }

    static let csvHeader = "id,created_at,credits,overage_credits,operation,quantity,event_id,event_name,actor,params,metadata\r\n"

    let reports: ReportStore
    let orgID: UUID
    let from: Instant?
    let to: Instant?
    let csv: Bool

    func write(to writer: inout any ResponseBodyWriter) async throws {
        try await writer.write(ByteBuffer(string: csv ? Self.csvHeader : "["))
        var cursor: ReportStore.ExportCursor?
        var first = true
        while true {
            let page = try await reports.usagePage(orgID: orgID, from: from, to: to, after: cursor)
            guard let last = page.last else { break }
            var chunk: [UInt8] = []
            chunk.reserveCapacity(page.count * 200)
            for entry in page {
                if csv {
                    chunk.append(contentsOf: Self.csvRow(entry).utf8)
                } else {
                    if !first { chunk.append(UInt8(ascii: ",")) }
                    chunk.append(contentsOf: try TallyJSONEncoder.encode(LedgerEntryDTO(entry)))
                }
                first = false
            }
            try await writer.write(ByteBuffer(bytes: chunk))
            ExportMeter.shared.observe(chunkBytes: chunk.count)
            if page.count < ReportStore.exportPageSize { break }
            cursor = ReportStore.ExportCursor(createdAt: last.createdAt, sequence: last.sequence)
        }
        if !csv { try await writer.write(ByteBuffer(string: "]")) }
        try await writer.finish(nil)
    }

    static func csvRow(_ entry: LedgerEntry) -> String {
        let fields: [String] = [
            entry.id.idString, entry.createdAt.rfc3339, entry.costCredits.description, entry.overageCredits.description,
            entry.operation ?? "", entry.quantity.map(String.init) ?? "", entry.eventID ?? "", entry.eventName ?? "", entry.actor,
            compact(entry.params), compact(entry.metadata),
        ]
        return fields.map(csvField).joined(separator: ",") + "\r\n"
    }

    /// JSON columns as the JSON export writes them (PostgreSQL's jsonb text adds spaces).
    static func compact(_ json: String?) -> String {
        guard let json else { return "" }
        guard let value = try? JSONParser.parse(Array(json.utf8)) else { return json }
        return String(decoding: value.serialized(), as: UTF8.self)
    }

    /// RFC 4180: a field with a comma, quote, CR or LF is quoted, and its quotes doubled.
    static func csvField(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// The largest chunk an export has held in memory at once: what the memory test checks.
public final class ExportMeter: @unchecked Sendable {
    public static let shared = ExportMeter()
    private let lock = NSLock()
    private var largest = 0

    func observe(chunkBytes: Int) {
        lock.withLock { largest = max(largest, chunkBytes) }
    }

    public var largestChunkBytes: Int { lock.withLock { largest } }
}
