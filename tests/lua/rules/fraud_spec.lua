-- rules/fraud.lua: INVITE bursts and registration scans per source address.
local t = require "sipscope.testing"
local configure = dofile("tests/lua/rules/configure.lua")

local function engine(overrides, events)
    local cfg = {enabled = true, invite_burst = {threshold = 3, seconds = 10},
                 register_scan = {threshold = 2, seconds = 60}, log = false}
    for k, v in pairs(overrides or {}) do
        cfg[k] = v
    end
    local path = t.write_rule("fraud.lua", configure.text("rules/fraud.lua", cfg))
    return t.engine{rules = {path}, config = {t1 = "100ms"}, events = events}
end

local function invite(e, id, src, time, o)
    o = o or {}
    o.call_id = id
    e:sip(t.request("INVITE", o), {time = time, src = src .. ":5060", dst = "192.0.2.1:5060"})
end

-- A REGISTER from src and the registrar's final response (404 unless code is given).
local function register(e, id, user, src, time, cseq, code)
    local aor = "sip:" .. user .. "@b.example"
    local o = {call_id = id, cseq = cseq, ruri = "sip:b.example", to = aor, from = aor,
               headers = {"Contact: <sip:x@" .. src .. ">"}}
    e:sip(t.request("REGISTER", o), {time = time, src = src .. ":5060", dst = "192.0.2.1:5060"})
    o.method, o.to_tag, o.headers = "REGISTER", "r", {}
    e:sip(t.response(code or 404, o), {time = time + 0.01, src = "192.0.2.1:5060",
                                       dst = src .. ":5060"})
end

local function value(e, family, signal)
    return e:metric(family, {signal = signal})
end

describe("rules/fraud.lua", function()
    it("ships disabled", function()
        local e = t.engine{rules = {"rules/fraud.lua"}}
        local ok = pcall(e.metric, e, "fraud_alerts_total", {signal = "invite_burst"})
        assert.is_false(ok) -- no such family
        e:close()
    end)

    it("flags a source sending more than the threshold of new calls in the window", function()
        local e = engine(nil, true)
        for i = 1, 5 do
            invite(e, "m" .. i, "192.0.2.66", 0.1 * i)
        end
        -- a retransmission of the fifth INVITE does not count
        invite(e, "m5", "192.0.2.66", 0.55)
        for i = 1, 3 do -- at the threshold, not over it
            invite(e, "q" .. i, "192.0.2.7", 0.6 + 0.01 * i)
        end
        assert.are.equal(1, value(e, "fraud_alerts_total", "invite_burst"))
        assert.are.equal(2, value(e, "fraud_flagged_requests_total", "invite_burst"))
        e:advance(1) -- a new second: on_tick
        assert.are.equal(1, value(e, "fraud_flagged_sources", "invite_burst"))
        -- the calls time out (Timer B = 6.4 s); the 4th and 5th from .66 are marked
        e:advance(9)
        local marked, lines = {}, 0
        for _, ev in ipairs(e:events()) do
            lines = lines + 1
            if ev.fraud then
                marked[#marked + 1] = ev.call_id .. "=" .. ev.fraud
            end
        end
        table.sort(marked)
        assert.are.equal(8, lines)
        assert.are.same({"m4=invite_burst", "m5=invite_burst"}, marked)
        -- 10 s after the burst, its INVITEs have left the window: no longer flagged
        e:advance(1)
        assert.are.equal(0, value(e, "fraud_flagged_sources", "invite_burst"))
        -- a new burst is a new alert
        for i = 1, 4 do
            invite(e, "n" .. i, "192.0.2.66", 12 + 0.1 * i)
        end
        assert.are.equal(2, value(e, "fraud_alerts_total", "invite_burst"))
        assert.are.equal(3, value(e, "fraud_flagged_requests_total", "invite_burst"))
        e:close()
    end)

    it("counts calls: a retry after a challenge and a re-INVITE are the same call", function()
        local e = engine()
        invite(e, "c1", "192.0.2.66", 0)
        e:sip(t.response(407, {call_id = "c1", to_tag = "a"}),
            {time = 0.1, src = "192.0.2.1:5060", dst = "192.0.2.66:5060"})
        invite(e, "c1", "192.0.2.66", 0.2, {cseq = 2}) -- the retry: the same call
        e:sip(t.response(200, {call_id = "c1", cseq = 2, to_tag = "b"}),
            {time = 0.3, src = "192.0.2.1:5060", dst = "192.0.2.66:5060"})
        invite(e, "c1", "192.0.2.66", 0.4, {cseq = 3, to_tag = "b"}) -- re-INVITE: the same
        invite(e, "c2", "192.0.2.66", 0.5) -- 2
        invite(e, "c3", "192.0.2.66", 0.6) -- 3: at the threshold
        assert.is_nil(value(e, "fraud_alerts_total", "invite_burst"))
        invite(e, "c4", "192.0.2.66", 0.7) -- 4: over it
        assert.are.equal(1, value(e, "fraud_alerts_total", "invite_burst"))
        e:close()
    end)

    it("never flags trusted sources", function()
        local e = engine {trusted = {"192.0.2.64/30"}}
        for i = 1, 5 do
            invite(e, "t" .. i, "192.0.2.66", 0.1 * i)
            register(e, "r" .. i, "user" .. i, "192.0.2.67", 0.1 * i)
        end
        assert.is_nil(value(e, "fraud_alerts_total", "invite_burst"))
        assert.is_nil(value(e, "fraud_alerts_total", "register_scan"))
        e:close()
    end)

    it("flags a source registering more than the threshold of distinct AoRs", function()
        local e = engine()
        register(e, "a", "alice", "192.0.2.99", 0, 1, 401)
        register(e, "a", "alice", "192.0.2.99", 0.1, 2, 200) -- the retry: the same AoR
        register(e, "b", "bob", "192.0.2.99", 1)
        assert.is_nil(value(e, "fraud_alerts_total", "register_scan"))
        register(e, "c", "carol", "192.0.2.99", 2) -- the third distinct AoR: over 2
        register(e, "d", "dave", "192.0.2.99", 3)
        register(e, "b2", "bob", "192.0.2.99", 4) -- still flagged: counted, no new alert
        register(e, "x", "alice", "192.0.2.98", 5) -- another source
        assert.are.equal(1, value(e, "fraud_alerts_total", "register_scan"))
        assert.are.equal(3, value(e, "fraud_flagged_requests_total", "register_scan"))
        e:advance(1)
        assert.are.equal(1, value(e, "fraud_flagged_sources", "register_scan"))
        assert.is_nil(value(e, "fraud_alerts_total", "invite_burst"))
        e:close()
    end)

    it("does not count a REGISTER that never gets an answer", function()
        local e = engine()
        for i = 1, 4 do
            local aor = "sip:u" .. i .. "@b.example"
            e:sip(t.request("REGISTER", {call_id = "n" .. i, ruri = "sip:b.example", to = aor,
                                         from = aor}),
                {time = 0.1 * i, src = "192.0.2.99:5060", dst = "192.0.2.1:5060"})
        end
        e:advance(40) -- Timer F: the four transactions time out
        assert.is_nil(value(e, "fraud_alerts_total", "register_scan"))
        assert.is_nil(value(e, "fraud_flagged_requests_total", "register_scan"))
        e:close()
    end)

    it("counts alerts past max_flagged as overflow", function()
        local e = engine {max_flagged = 1}
        for i = 1, 4 do
            invite(e, "a" .. i, "192.0.2.10", 0.1 * i)
            invite(e, "b" .. i, "192.0.2.11", 0.1 * i + 0.05)
        end
        assert.are.equal(2, value(e, "fraud_alerts_total", "invite_burst"))
        assert.are.equal(1, value(e, "fraud_flagged_overflow_total", "invite_burst"))
        e:advance(1)
        assert.are.equal(1, value(e, "fraud_flagged_sources", "invite_burst"))
        e:close()
    end)

    it("turns a signal off with false", function()
        local e = engine {register_scan = false}
        for i = 1, 5 do
            register(e, "r" .. i, "user" .. i, "192.0.2.99", 0.1 * i)
            invite(e, "i" .. i, "192.0.2.66", 0.1 * i)
        end
        assert.is_nil(value(e, "fraud_alerts_total", "register_scan"))
        assert.are.equal(1, value(e, "fraud_alerts_total", "invite_burst"))
        e:close()
    end)
end)
