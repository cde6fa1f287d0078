import Foundation
import PostgresNIO
@testable import TallyStore
import Testing
import TallyCore
import TallyTestSupport

@Suite struct HoldTests {
    func hold(_ server: TestServer, _ org: String, _ credits: String, ttl: Int = 900) async throws -> TestResponse {
        try await server.request(.POST, "/v1/orgs/\(org)/reservations", key: server.platformKey,
                                 json: #"{"credits": "\#(credits)", "ttl_seconds": \#(ttl)}"#, headers: [("Idempotency-Key", UUID().uuidString)])
    }

    @Test func heldCreditsAreNotAvailableAndACommitFreesTheRest() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "30")
            let held = try await hold(server, org, "20")
            #expect(held.status == 201)
            #expect(held["status"] == "active")
            let id = try #require(held["id"])
            #expect(try await server.available(org) == Credits(10))
            #expect(try await server.spend(org, "11").status == 402)
            let balance = try await server.request(.GET, "/v1/orgs/\(org)/balance", key: server.platformKey)
            #expect(balance["reserved"] == "20")

            let tooMuch = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(id)/commit", key: server.platformKey, json: #"{"credits": "20.5"}"#)
            #expect(tooMuch.status == 422)
            let commit = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(id)/commit", key: server.platformKey, json: #"{"credits": "12.5"}"#)
            #expect(commit.status == 200)
            #expect(commit["status"] == "committed")
            #expect(commit["committed_credits"] == "12.5")
            #expect(try await server.available(org) == (try Credits(parsing: "17.5")))
            let again = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(id)/commit", key: server.platformKey, json: #"{"credits": "1"}"#)
            #expect(again.status == 409)
            #expect(again["code"] == "reservation_not_active")
            // The problem's own `status` stays the HTTP status; the hold's state has its own member.
            #expect(again["status"] == "409")
            #expect(again["reservation_status"] == "committed")
            let usage = try await server.list("/v1/orgs/\(org)/ledger?type=usage")
            #expect(usage.map { $0.text("credits") } == ["-12.5"])
            #expect(try await server.verify() == [])
        }
    }

    @Test func aReleaseFreesEverything() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "30")
            let id = try #require(try await hold(server, org, "30")["id"])
            #expect(try await server.available(org) == .zero)
            let release = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(id)/release", key: server.platformKey)
            #expect(release.status == 200)
            #expect(release["status"] == "released")
            #expect(try await server.available(org) == Credits(30))
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=usage").isEmpty)
        }
    }

    @Test func anExpiredHoldFreesItselfWithoutAnyJob() async throws {
        let clock = ManualClock("2026-01-01T00:00:00Z")
        try await TestServer.run(clock: clock) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            let id = try #require(try await hold(server, org, "8", ttl: 60)["id"])
            #expect(try await server.available(org) == Credits(2))
            clock.set("2026-01-01T00:01:00Z")
            #expect(try await server.available(org) == Credits(10))
            // A spend that needs the freed credits gets them.
            #expect(try await server.spend(org, "9").status == 201)
            let late = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(id)/commit", key: server.platformKey, json: #"{"credits": "1"}"#)
            #expect(late.status == 409)
            #expect(try await server.verify() == [])
        }
    }

    /// Commits arriving just as holds expire, racing the job that frees expired holds: every hold
    /// is settled exactly once, either committed or expired, and the ledger stays exact.
    @Test func holdExpiryRacingALateCommitSettlesEachHoldOnce() async throws {
        let clock = ManualClock("2026-01-01T00:00:00Z")
        try await TestServer.run(clock: clock, databaseConnections: 16) { server in
            let org = try await server.createOrg()
            try await server.grant(org, "1000")
            var ids: [String] = []
            for _ in 0..<20 { ids.append(try #require(try await hold(server, org, "10", ttl: 60)["id"])) }
            // One microsecond before expiry: commits are still allowed; the job runs "late" with a
            // time after expiry, as a cron that ran a little ahead would.
            clock.set(try Instant(rfc3339: "2026-01-01T00:01:00Z").adding(microseconds: -1))
            let expiryTime = try Instant(rfc3339: "2026-01-01T00:01:00Z")
            let (commits, freed) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for id in ids {
                    group.addTask {
                        let response = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(id)/commit", key: server.platformKey, json: #"{"credits": "4"}"#)
                        return (response.status == 200 ? 1 : 0, 0)
                    }
                }
                group.addTask { (0, try await server.stores.reservations.releaseExpired(.realClock, at: expiryTime)) }
                group.addTask { (0, try await server.stores.reservations.releaseExpired(.realClock, at: expiryTime)) }
                var commits = 0
                var freed = 0
                for try await (c, f) in group {
                    commits += c
                    freed += f
                }
                return (commits, freed)
            }
            #expect(commits + freed == 20)
            let settled = try await server.pool.query("""
                SELECT count(*) FILTER (WHERE type = 'hold_release'), count(*) FILTER (WHERE type = 'usage') FROM ledger_entries
                """, logger: testLogger).collect()
            let (releases, usages) = try settled[0].decode((Int, Int).self)
            #expect(releases == 20)
            #expect(usages == commits)
            #expect(try await server.available(org) == Credits(1000 - 4 * commits))
            #expect(try await server.verify() == [])
        }
    }

    /// A committed hold is usage like a spend: it counts in the month and the period, and crosses
    /// the period's alert thresholds once (the spends' own statement counts it).
    @Test func aCommittedHoldCountsAsUsageAndCrossesThresholdsOnce() async throws {
        try await TestServer.run { server in
            try await server.createPlan("p", price: "10.00", credits: "100")
            let org = try await server.createOrg()
            try await server.subscribe(org, plan: "p")
            _ = try await server.spend(org, "70")
            let id = try #require(try await hold(server, org, "20")["id"])
            let commit = try await server.request(.POST, "/v1/orgs/\(org)/reservations/\(id)/commit", key: server.platformKey, json: #"{"credits": "15"}"#)
            #expect(commit.status == 200)
            let period = try await server.request(.GET, "/v1/orgs/\(org)/balance", key: server.platformKey).json["period"]
            #expect(period?.text("used") == "85")
            let events = try await server.list("/v1/orgs/\(org)/events?type=usage.threshold_reached")
            #expect(events.count == 1)
            #expect(events.first?["data"]?["percent"] == .number("80"))
            let months = try await server.list("/v1/orgs/\(org)/usage/summary?months=1")
            #expect(months.first?.text("credits_used") == "85")
            #expect(try await server.verify() == [])
        }
    }

    @Test func holdsNeedCreditsAndAValidTTL() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "5")
            let short = try await hold(server, org, "6")
            #expect(short.status == 402)
            #expect(short["shortfall"] == "1")
            #expect(try await hold(server, org, "1", ttl: 0).status == 422)
            #expect(try await hold(server, org, "1", ttl: 700_000).status == 422)
            #expect(try await server.count("reservations") == 0)
        }
    }
}

@Suite struct LedgerListingTests {
    @Test func pagesAreStableWhileNewEntriesArrive() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "100")
            for _ in 0..<9 { _ = try await server.spend(org, "1") }
            let first = try await server.request(.GET, "/v1/orgs/\(org)/ledger?limit=4", key: server.platformKey)
            guard case .array(let page1)? = try first.json["data"] else { Issue.record("no data"); return }
            let cursor = try #require(first["next_cursor"])
            for _ in 0..<3 { _ = try await server.spend(org, "1") }
            var seen = page1.compactMap { $0.text("id") }
            var next: String? = cursor
            while let current = next {
                let page = try await server.request(.GET, "/v1/orgs/\(org)/ledger?limit=4&cursor=\(current)", key: server.platformKey)
                guard case .array(let items)? = try page.json["data"] else { break }
                seen += items.compactMap { $0.text("id") }
                next = page["next_cursor"]
            }
            // The 10 entries that existed, each once; the 3 new ones are above the first page.
            #expect(seen.count == 10)
            #expect(Set(seen).count == 10)
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=free_credits").count == 1)
            #expect(try await server.list("/v1/orgs/\(org)/ledger?type=usage,free_credits&limit=500").count == 13)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/ledger?type=bogus", key: server.platformKey).status == 422)
        }
    }

    @Test func verifyFindsDrift() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            _ = try await server.spend(org, "3")
            #expect(try await server.verify() == [])
            try await server.pool.query("UPDATE credit_buckets SET remaining = remaining - 1", logger: testLogger)
            let findings = try await server.verify()
            #expect(findings.count == 1)
            #expect(findings.first?.contains("remaining 6 but postings sum to 7") == true)
        }
    }

    /// What the foreign keys checked row by row (sql/0015): the writer refuses it, and
    /// `tally verify` finds it when it was written behind Tally's back.
    @Test func verifyFindsRowsWhoseReferencesAreMissing() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            #expect(try await server.verify() == [])
            let stranger = UUID()
            try await server.pool.query("""
                INSERT INTO ledger_postings (org_id, entry_id, bucket_id, credits)
                SELECT org_id, entry_id, gen_random_uuid(), -1 FROM ledger_entries
                """, logger: testLogger)
            try await server.pool.query("""
                INSERT INTO ledger_entries (org_id, entry_id, type, credits, created_at)
                VALUES (\(stranger), gen_random_uuid(), 'usage', 0, now())
                """, logger: testLogger)
            try await server.pool.query("""
                INSERT INTO idempotency_keys (org_id, idempotency_key, request_hash, created_at) VALUES (\(stranger), 'k', '\\x00', now())
                """, logger: testLogger)
            let findings = try await server.verify()
            #expect(findings.count == 4, "\(findings)")
            #expect(findings.contains { $0.contains("its bucket does not exist") })
            #expect(findings.filter { $0.contains("its organisation does not exist") }.count == 2)
            // The entry's credits no longer match its postings: the old check sees it too.
            #expect(findings.contains { $0.contains("postings sum to") })
        }
    }

    @Test func theLedgerWriterRefusesPostingsOfEntriesItDoesNotWrite() throws {
        let org = UUID(), entry = UUID(), bucket = UUID(), now = Instant(secondsSinceEpoch: 1_800_000_000)
        var rows = LedgerRows()
        rows.entries.append(.init(orgID: org, id: entry, type: .usage, at: now))
        rows.postings.append(.init(orgID: org, entryID: entry, bucketID: bucket, credits: Credits(-1)))
        var bindings = PostgresBindings()
        #expect(throws: Never.self) { try rows.append(to: &bindings) }
        for posting in [LedgerRows.Posting(orgID: org, entryID: UUID(), bucketID: bucket, credits: Credits(-1)),
                        LedgerRows.Posting(orgID: UUID(), entryID: entry, bucketID: bucket, credits: Credits(-1))] {
            var bad = rows
            bad.postings.append(posting)
            #expect(throws: LedgerRowsReferenceError.self) { try bad.append(to: &bindings) }
        }
        var foreignGrant = rows
        foreignGrant.newBuckets.append(.init(orgID: org, id: UUID(), source: .adminGrant, credits: Credits(1), priority: 0, effectiveAt: now,
                                             expiresAt: nil, grantedAt: now, grantEntryID: UUID()))
        #expect(throws: LedgerRowsReferenceError.self) { try foreignGrant.append(to: &bindings) }
    }

    @Test func theLedgerIsAppendOnly() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            try await server.grant(org, "10")
            // Refused by the append-only trigger (restrict_violation), not by anything else.
            for statement: PostgresQuery in ["UPDATE ledger_entries SET credits = 0", "DELETE FROM ledger_postings"] {
                do {
                    try await server.pool.query(statement, logger: testLogger)
                    Issue.record("\(statement.sql) was allowed")
                } catch let error as PSQLError {
                    #expect(error.serverInfo?[.sqlState] == "23001", "\(String(reflecting: error))")
                    #expect(error.serverInfo?[.message]?.contains("append-only") == true)
                }
            }
            #expect(try await server.ledgerCount(org) == 1)
        }
    }
}
