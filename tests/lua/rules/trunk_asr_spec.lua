-- rules/trunk_asr.lua: seizures, answers, outcomes and ratios per trunk and direction.
local t = require "sipscope.testing"
local configure = dofile("tests/lua/rules/configure.lua")

local GW1, CORE, CARRIER, STRANGER = "192.0.2.10:5060", "192.0.2.1:5060", "198.51.100.5:5060",
    "192.0.2.50:5060"

local function engine(overrides)
    local cfg = {enabled = true, trunks = {["192.0.2.10"] = "gw1", ["198.51.100.0/28"] = "carrier-a"}}
    for k, v in pairs(overrides or {}) do
        cfg[k] = v
    end
    local path = t.write_rule("trunk_asr.lua", configure.text("rules/trunk_asr.lua", cfg))
    return t.engine{rules = {path}, config = {t1 = "100ms"}}
end

-- A call that ends with a final code (ACKed), from src to dst at time.
local function final(e, id, code, src, dst, time, ruri)
    e:sip(t.request("INVITE", {call_id = id, ruri = ruri}), {time = time, src = src, dst = dst})
    e:sip(t.response(100, {call_id = id}), {time = time + 0.01, src = dst, dst = src})
    e:sip(t.response(code, {call_id = id, to_tag = "x"}), {time = time + 0.1, src = dst, dst = src})
    e:sip(t.request("ACK", {call_id = id, to_tag = "x"}), {time = time + 0.11, src = src, dst = dst})
end

local function get(e, family, trunk, dir, outcome)
    return e:metric(family, {trunk = trunk, direction = dir, outcome = outcome})
end

describe("rules/trunk_asr.lua", function()
    it("ships disabled", function()
        local e = t.engine{rules = {"rules/trunk_asr.lua"}}
        assert.is_false(pcall(e.metric, e, "trunk_overflow_total", {}))
        e:close()
    end)

    it("gives each inbound trunk its seizures, answers, outcomes and ratios", function()
        local e = engine()
        t.call(e, {call_id = "ans", time = 0, src = GW1, dst = CORE})
        final(e, "busy", 486, GW1, CORE, 20)
        final(e, "noans", 480, GW1, CORE, 21)
        final(e, "unavail", 503, GW1, CORE, 22)
        final(e, "redir", 302, GW1, CORE, 23)
        final(e, "nf", 404, GW1, CORE, 24)
        -- cancelled while ringing
        e:sip(t.request("INVITE", {call_id = "can"}), {time = 25, src = GW1, dst = CORE})
        e:sip(t.response(180, {call_id = "can", to_tag = "x"}), {time = 25.1, src = CORE, dst = GW1})
        e:sip(t.request("CANCEL", {call_id = "can", branch = "z9hG4bKcanINVITE1"}),
            {time = 25.5, src = GW1, dst = CORE})
        e:sip(t.response(487, {call_id = "can", to_tag = "x"}), {time = 25.6, src = CORE, dst = GW1})
        -- hung up while ringing: no final at all
        e:sip(t.request("INVITE", {call_id = "early"}), {time = 26, src = GW1, dst = CORE})
        e:sip(t.response(180, {call_id = "early", to_tag = "x"}), {time = 26.1, src = CORE, dst = GW1})
        e:sip(t.request("BYE", {call_id = "early", to_tag = "x", cseq = 2}),
            {time = 26.5, src = GW1, dst = CORE})
        -- never answered at all: Timer B, 6.4 s
        e:sip(t.request("INVITE", {call_id = "lost"}), {time = 27, src = GW1, dst = CORE})
        e:advance(10)
        assert.are.equal(9, get(e, "trunk_seizures_total", "gw1", "inbound"))
        assert.are.equal(1, get(e, "trunk_answers_total", "gw1", "inbound"))
        for outcome, n in pairs {answered = 1, busy = 1, no_answer = 1, failed = 2,
                                 redirected = 1, rejected = 1, cancelled = 1, other = 1} do
            assert.are.equal(n, get(e, "trunk_call_outcomes_total", "gw1", "inbound", outcome),
                outcome)
        end
        assert.are.equal(1 / 9, get(e, "trunk_answer_seizure_ratio", "gw1", "inbound"))
        assert.are.equal(1 - 2 / 9, get(e, "trunk_network_effectiveness_ratio", "gw1", "inbound"))
        e:close()
    end)

    it("counts outbound calls by destination, and tgrp before addresses", function()
        local e = engine()
        t.call(e, {call_id = "o1", time = 0, src = CORE, dst = CARRIER})
        final(e, "o2", 486, CORE, CARRIER, 20)
        -- RFC 4904 trunk group in the Request-URI, towards gw1's address: trunk tg7
        final(e, "tg", 503, CORE, GW1, 21, "sip:+4930123;tgrp=tg7;trunk-context=example.com@gw.example")
        final(e, "tg2", 486, CORE, GW1, 22, "sip:+4930124;tgrp=tg7@gw.example")
        final(e, "tg3", 486, CORE, GW1, 23, "sip:+4930125;TGrp=tg7@gw.example") -- any case
        assert.are.equal(2, get(e, "trunk_seizures_total", "carrier-a", "outbound"))
        assert.are.equal(0.5, get(e, "trunk_answer_seizure_ratio", "carrier-a", "outbound"))
        assert.are.equal(1, get(e, "trunk_network_effectiveness_ratio", "carrier-a", "outbound"))
        assert.are.equal(3, get(e, "trunk_seizures_total", "tg7", "outbound"))
        assert.are.equal(0, get(e, "trunk_answer_seizure_ratio", "tg7", "outbound"))
        assert.are.equal(1 - 1 / 3, get(e, "trunk_network_effectiveness_ratio", "tg7", "outbound"))
        assert.is_nil(get(e, "trunk_seizures_total", "gw1", "outbound"))
        e:close()
    end)

    it("puts calls on no trunk under the default, or leaves them out", function()
        local e = engine()
        final(e, "s1", 404, STRANGER, CORE, 0)
        assert.are.equal(1, get(e, "trunk_seizures_total", "other", "unknown"))
        assert.are.equal(1, get(e, "trunk_call_outcomes_total", "other", "unknown", "rejected"))
        e:close()
        e = engine {default = false}
        final(e, "s1", 404, STRANGER, CORE, 0)
        assert.is_nil(get(e, "trunk_seizures_total", "other", "unknown"))
        e:close()
    end)

    it("counts tgrp names past max_trunks under the default", function()
        -- gw1 and carrier-a are configured: room for one more name
        local e = engine {max_trunks = 3}
        final(e, "a", 486, CORE, STRANGER, 0, "sip:1;tgrp=tg7@x")
        final(e, "b", 486, CORE, STRANGER, 1, "sip:2;tgrp=tg8@x")
        final(e, "c", 486, CORE, STRANGER, 2, "sip:3;tgrp=tg9?x=y")
        final(e, "d", 486, CORE, STRANGER, 3, "sip:4;tgrp=tg7@x")
        final(e, "e", 486, CORE, STRANGER, 4, "sip:4;tgrp=@x") -- empty: no tgrp, no trunk
        assert.are.equal(2, get(e, "trunk_seizures_total", "tg7", "outbound"))
        assert.are.equal(2, get(e, "trunk_seizures_total", "other", "outbound"))
        assert.are.equal(1, get(e, "trunk_seizures_total", "other", "unknown"))
        assert.are.equal(2, e:metric("trunk_overflow_total", {}))
        assert.is_nil(get(e, "trunk_seizures_total", "tg8", "outbound"))
        e:close()
    end)
end)
