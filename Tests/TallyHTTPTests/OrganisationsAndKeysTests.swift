import Foundation
import NIOCore
import Testing
import TallyCore
import TallyStore
import TallyTestSupport

@Suite struct OrganisationsAndKeysTests {
    @Test func platformCreatesAnOrganisationAndAMemberKeyThatReadsOnlyItsOwn() async throws {
        try await TestServer.run { server in
            let created = try await server.request(.POST, "/v1/orgs", key: server.platformKey,
                                                   json: #"{"name": "Acme", "external_id": "cus_1", "timezone": "Europe/Berlin"}"#)
            #expect(created.status == 201)
            #expect(created["name"] == "Acme")
            #expect(created["timezone"] == "Europe/Berlin")
            #expect(created["external_id"] == "cus_1")
            let org = try #require(created["id"])
            let other = try await server.createOrg(name: "Other")

            let keyResponse = try await server.request(.POST, "/v1/orgs/\(org)/api-keys", key: server.platformKey, json: #"{"name": "ci", "role": "member"}"#)
            #expect(keyResponse.status == 201)
            let secret = try #require(keyResponse["key"])
            let prefix = try #require(keyResponse["prefix"])
            #expect(secret.hasPrefix(prefix))
            #expect(keyResponse["role"] == "member")

            let own = try await server.request(.GET, "/v1/orgs/\(org)", key: secret)
            #expect(own.status == 200)
            #expect(own["id"] == org)
            let foreign = try await server.request(.GET, "/v1/orgs/\(other)", key: secret)
            #expect(foreign.status == 404)
            #expect(foreign["code"] == "not_found")
            // A non-existent organisation looks exactly the same as another's.
            let missing = try await server.request(.GET, "/v1/orgs/\(UUID().uuidString.lowercased())", key: secret)
            #expect(missing.status == 404)
            #expect(missing.text.replacingOccurrences(of: missing["detail"] ?? "", with: "") == foreign.text.replacingOccurrences(of: foreign["detail"] ?? "", with: ""))
        }
    }

    @Test func keysAreStoredOnlyAsHashes() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let secret = try await server.createKey(org: org, role: "admin")
            let rows = try await server.pool.query("SELECT prefix, key_hash FROM api_keys", logger: testLogger).collect()
            #expect(rows.count == 1)
            let (prefix, hashBuffer) = try rows[0].decode((String, ByteBuffer).self)
            let hash = Array(hashBuffer.readableBytesView)
            #expect(secret.hasPrefix(prefix))
            #expect(hash == KeyMaterial.hash(secret))
            #expect(!String(decoding: hash, as: UTF8.self).contains(secret))
            let listed = try await server.request(.GET, "/v1/orgs/\(org)/api-keys", key: secret)
            #expect(listed.status == 200)
            #expect(!listed.text.contains(secret))
            #expect(listed.text.contains(prefix))
        }
    }

    @Test func aRevokedKeyFailsOnItsNextRequest() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let admin = try await server.createKey(org: org, role: "admin")
            let member = try await server.createKey(org: org, role: "member")
            #expect(try await server.request(.GET, "/v1/orgs/\(org)", key: member).status == 200)
            let list = try await server.request(.GET, "/v1/orgs/\(org)/api-keys", key: admin)
            guard case .array(let keys)? = try list.json["data"] else { Issue.record("no data"); return }
            let memberKeyIDs = keys.compactMap { key -> String? in
                guard key["role"] == .string("member"), case .string(let id)? = key["id"] else { return nil }
                return id
            }
            let memberKeyID = try #require(memberKeyIDs.first)
            let revoked = try await server.request(.DELETE, "/v1/orgs/\(org)/api-keys/\(memberKeyID)", key: admin)
            #expect(revoked.status == 204)
            let after = try await server.request(.GET, "/v1/orgs/\(org)", key: member)
            #expect(after.status == 401)
            #expect(after["code"] == "invalid_api_key")
            // Revoking again: there is no such live key.
            #expect(try await server.request(.DELETE, "/v1/orgs/\(org)/api-keys/\(memberKeyID)", key: admin).status == 404)
        }
    }

    @Test func rolesAreEnforced() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let member = try await server.createKey(org: org, role: "member")
            let admin = try await server.createKey(org: org, role: "admin")
            let forbidden = try await server.request(.POST, "/v1/orgs/\(org)/api-keys", key: member, json: #"{"name": "x", "role": "member"}"#)
            #expect(forbidden.status == 403)
            #expect(forbidden["code"] == "forbidden")
            // Organisation keys never create organisations or platform keys.
            #expect(try await server.request(.POST, "/v1/orgs", key: admin, json: #"{"name": "New"}"#).status == 403)
            let platformRole = try await server.request(.POST, "/v1/orgs/\(org)/api-keys", key: admin, json: #"{"name": "x", "role": "platform"}"#)
            #expect(platformRole.status == 422)
            #expect(platformRole["field"] == "role")
            // An admin of another organisation gets 404 before any role check.
            let other = try await server.createOrg(name: "Other")
            let otherMember = try await server.createKey(org: other, role: "member")
            #expect(try await server.request(.POST, "/v1/orgs/\(org)/api-keys", key: otherMember, json: #"{"name": "x", "role": "member"}"#).status == 404)
        }
    }

    @Test func missingOrWrongKeysAre401() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            let none = try await server.request(.GET, "/v1/orgs/\(org)")
            #expect(none.status == 401)
            #expect(none["code"] == "unauthenticated")
            #expect(none.header("content-type") == "application/problem+json")
            let wrong = try await server.request(.GET, "/v1/orgs/\(org)", key: "tly_not_a_real_key_at_all")
            #expect(wrong.status == 401)
            #expect(wrong["code"] == "invalid_api_key")
            let basic = try await server.request(.GET, "/v1/orgs/\(org)", headers: [("Authorization", "Basic Zm9vOmJhcg==")])
            #expect(basic.status == 401)
        }
    }

    @Test func badRequestsGetProblemDocumentsAndWriteNothing() async throws {
        try await TestServer.run { server in
            let key = server.platformKey
            let malformed = try await server.request(.POST, "/v1/orgs", key: key, json: #"{"name": "Acme""#)
            #expect(malformed.status == 400)
            #expect(malformed["code"] == "malformed_json")
            #expect(malformed.header("content-type") == "application/problem+json")
            #expect(malformed["type"] == "urn:tally:problem:malformed_json")
            #expect(malformed["status"] == "400")

            let unknown = try await server.request(.POST, "/v1/orgs", key: key, json: #"{"name": "Acme", "nmae": "x"}"#)
            #expect(unknown.status == 422)
            #expect(unknown["code"] == "validation_failed")
            #expect(unknown["field"] == "nmae")

            let wrongType = try await server.request(.POST, "/v1/orgs", key: key, json: #"{"name": 42}"#)
            #expect(wrongType.status == 422)
            #expect(wrongType["field"] == "name")

            let badZone = try await server.request(.POST, "/v1/orgs", key: key, json: #"{"name": "Acme", "timezone": "Mars/Olympus"}"#)
            #expect(badZone.status == 422)
            #expect(badZone["field"] == "timezone")

            let empty = try await server.request(.POST, "/v1/orgs", key: key, json: #"{"name": "   "}"#)
            #expect(empty.status == 422)

            let huge = try await server.request(.POST, "/v1/orgs", key: key,
                                                json: #"{"name": ""# + String(repeating: "x", count: 300_000) + #""}"#)
            #expect(huge.status == 413)
            #expect(huge["code"] == "payload_too_large")

            let notJSON = try await server.request(.POST, "/v1/orgs", key: key, headers: [("Content-Type", "text/plain")], rawBody: Array("name=x".utf8))
            #expect(notJSON.status == 415)

            let route = try await server.request(.GET, "/v1/nothing-here", key: key)
            #expect(route.status == 404)
            #expect(route["code"] == "not_found")
            #expect(try await server.request(.GET, "/nothing", key: key).status == 404)

            #expect(try await server.count("orgs") == 0)

            _ = try await server.createOrg(extra: #", "external_id": "dup""#)
            let duplicate = try await server.request(.POST, "/v1/orgs", key: key, json: #"{"name": "B", "external_id": "dup"}"#)
            #expect(duplicate.status == 409)
            #expect(duplicate["code"] == "external_id_taken")
            #expect(try await server.count("orgs") == 1)
        }
    }

    @Test func keyListsPaginate() async throws {
        try await TestServer.run { server in
            let org = try await server.createOrg()
            for _ in 0..<5 { _ = try await server.createKey(org: org, role: "member") }
            var cursor: String? = nil
            var seen: [String] = []
            repeat {
                let path = "/v1/orgs/\(org)/api-keys?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await server.request(.GET, path, key: server.platformKey)
                #expect(page.status == 200)
                guard case .array(let items)? = try page.json["data"] else { Issue.record("no data"); return }
                #expect(items.count <= 2)
                for item in items { if case .string(let id)? = item["id"] { seen.append(id) } }
                cursor = page["next_cursor"]
            } while cursor != nil
            #expect(seen.count == 5)
            #expect(Set(seen).count == 5)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/api-keys?limit=0", key: server.platformKey).status == 422)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/api-keys?limit=501", key: server.platformKey).status == 422)
            #expect(try await server.request(.GET, "/v1/orgs/\(org)/api-keys?cursor=zzz", key: server.platformKey).status == 422)
        }
    }
}
