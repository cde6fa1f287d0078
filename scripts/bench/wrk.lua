-- One wrk script for every scenario (BENCH_SCENARIO): consume over many organisations, consume
-- on one hot organisation, quote, balance read, consume replaying idempotency keys, and consume on
-- one organisation with its own key (BENCH_ORG, for the fairness runs), batches of 100 spends
-- (consume_batch), balance reads with each organisation's own member key (balance_member, keys
-- from BENCH_MEMBERS: "org secret" lines) and /healthz.
-- Prints one "RESULT requests/s p50 p99 p99.9 errors requests" line (latencies in ms).
local scenario = os.getenv("BENCH_SCENARIO")
local key = os.getenv("TALLY_KEY")
local threads = {}
local orgs = {}
local hot = nil
local counter = 0
local nonce = nil
local members = {}

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    for line in io.lines(os.getenv("BENCH_ORGS")) do orgs[#orgs + 1] = line end
    hot = os.getenv("BENCH_HOT_ORG")
    local memberFile = os.getenv("BENCH_MEMBERS")
    if memberFile then
        for line in io.lines(memberFile) do
            local org, secret = line:match("^(%S+) (%S+)$")
            if org then members[#members + 1] = {org, secret} end
        end
    end
    math.randomseed(tid * 7919 + os.time())
    -- Keys unique to this run: a key seen before (the warm-up's) would be a replay, not a spend.
    nonce = string.format("%d%06d", os.time(), math.random(0, 999999))
end

local function headers(idempotency)
    local h = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
    if idempotency then h["Idempotency-Key"] = idempotency end
    return h
end

function request()
    counter = counter + 1
    local org = orgs[math.random(1, #orgs)]
    if scenario == "consume_many" then
        return wrk.format("POST", "/v1/orgs/" .. org .. "/usage", headers(nonce .. "-" .. tid .. "-" .. counter), '{"credits": "0.0001"}')
    elseif scenario == "consume_hot" then
        return wrk.format("POST", "/v1/orgs/" .. hot .. "/usage", headers("hot-" .. nonce .. "-" .. tid .. "-" .. counter), '{"credits": "0.0001"}')
    elseif scenario == "quote" then
        return wrk.format("POST", "/v1/orgs/" .. org .. "/quote", headers(nil), '{"operation": "smart_crop", "quantity": 10}')
    elseif scenario == "balance" then
        return wrk.format("GET", "/v1/orgs/" .. org .. "/balance", headers(nil))
    elseif scenario == "consume_org" then
        -- One organisation with its own member key (fairness: a victim, or a flood).
        return wrk.format("POST", "/v1/orgs/" .. os.getenv("BENCH_ORG") .. "/usage",
            headers("org-" .. nonce .. "-" .. tid .. "-" .. counter), '{"operation": "smart_crop", "quantity": 1}')
    elseif scenario == "consume_batch" then
        local items = {}
        for i = 1, 100 do
            items[i] = string.format('{"idempotency_key": "b-%s-%d-%d-%d", "credits": "0.0001"}', nonce, tid, counter, i)
        end
        return wrk.format("POST", "/v1/orgs/" .. org .. "/usage/batch", headers(nil), '{"items": [' .. table.concat(items, ",") .. ']}')
    elseif scenario == "balance_member" then
        local member = members[math.random(1, #members)]
        return wrk.format("GET", "/v1/orgs/" .. member[1] .. "/balance", {["Authorization"] = "Bearer " .. member[2]})
    elseif scenario == "healthz" then
        return wrk.format("GET", "/healthz", {})
    elseif scenario == "replay" then
        -- 100 organisations, one key each: after the first request per key, every one replays.
        local n = math.random(1, 100)
        return wrk.format("POST", "/v1/orgs/" .. orgs[n] .. "/usage", headers("replay-" .. n), '{"credits": "0.0001"}')
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    local errors = e.connect + e.read + e.write + e.status + e.timeout
    io.write(string.format("RESULT %.1f %.2f %.2f %.2f %d %d\n", summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, errors, summary.requests))
end
