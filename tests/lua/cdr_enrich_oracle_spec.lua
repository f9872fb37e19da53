-- The signalling fields of call lines (src_ip... q850, core/call_cdr.c), written by the engine,
-- and the Lua rule they replace (tests/lua/fixtures/cdr_enrich_oracle.lua, once the bundled
-- rules/cdr_enrich.lua): every case runs on both, and both must give the fields it expects.
-- The oracle also stands behind tests/offline/cdr_fields.py, on whole captures.
local t = require "sipscope.testing"
local configure = dofile("tests/lua/rules/configure.lua")

local A, B = "192.0.2.10:5062", "198.51.100.20:5060"
local ORACLE = "tests/lua/fixtures/cdr_enrich_oracle.lua"
local ALL = {"src_ip", "src_port", "dst_ip", "dst_port", "transport", "user_agent", "server",
             "pdd", "codec", "hangup", "q850"}

-- The two engines for a field selection (a set of names; nil: all of them): the engine's own
-- fields, and the oracle rule with the engine's turned off. extra: more config for both.
local function engines(fields, extra)
    local list, set = {}, {}
    for _, k in ipairs(ALL) do
        if fields == nil or fields[k] then
            list[#list + 1] = k
        end
        set[k] = fields == nil or fields[k] == true
    end
    local function config(events_fields)
        local c = {t1 = "100ms", events_fields = events_fields}
        for k, v in pairs(extra or {}) do
            c[k] = v
        end
        return c
    end
    local native = t.engine{config = config(#list > 0 and table.concat(list, ",") or "none"),
                            events = true}
    local path = t.write_rule("cdr_enrich.lua", configure.text(ORACLE, {fields = set}))
    local oracle = t.engine{rules = {path}, config = config("none"), events = true}
    return {native = native, oracle = oracle}
end

-- Runs scenario(e, which) on both engines, then check(events, which) on each one's lines.
local function both(fields, scenario, check, extra)
    for which, e in pairs(engines(fields, extra)) do
        scenario(e)
        check(e:events(), which)
        if which == "oracle" then
            assert.is_nil(e:metric("sipscope_rule_errors_total",
                {rule = "cdr_enrich", hook = "on_dialog_end", kind = "api"}))
            assert.are.equal(0, e:metric("sipscope_rule_disabled", {rule = "cdr_enrich"}))
        end
        e:close()
    end
end

-- The fields added to a call line: everything but the engine's core members.
local CORE = {type = true, call_id = true, from = true, to = true, start = true, answer = true,
              ["end"] = true, setup_delay = true, duration = true, outcome = true,
              end_reason = true, labels = true}

local function added(ev)
    local out = {}
    for k, v in pairs(ev) do
        if not CORE[k] then
            out[k] = v
        end
    end
    return out
end

local SDP = [[
v=0
o=bob 1 1 IN IP4 198.51.100.20
s=-
c=IN IP4 198.51.100.20
t=0 0
m=audio 4000 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
]]

local function invite(e, id, time, headers)
    e:sip(t.request("INVITE", {call_id = id, headers = headers or {"User-Agent: Zoiper rv2.10"}}),
        {time = time, src = A, dst = B})
end

local function answer(e, id, time)
    e:sip(t.response(183, {call_id = id, to_tag = "b"}), {time = time + 0.25, src = B, dst = A})
    e:sip(t.response(180, {call_id = id, to_tag = "b"}), {time = time + 0.5, src = B, dst = A})
    e:sip(t.response(200, {call_id = id, to_tag = "b", body = SDP,
                           headers = {"Server: Asterisk PBX 20.5", "Content-Type: application/sdp"}}),
        {time = time + 2, src = B, dst = A})
    e:sip(t.request("ACK", {call_id = id, to_tag = "b", branch = "z9hG4bKack" .. id}),
        {time = time + 2.01, src = A, dst = B})
end

describe("call lines' signalling fields, by the engine and by the oracle rule", function()
    it("add addresses, agents, pdd, codec, the hang-up side and the Q.850 cause", function()
        both(nil, function(e)
            invite(e, "c1", 0)
            answer(e, "c1", 0)
            -- the callee hangs up: From is the callee (URI and tag), To the caller
            e:sip(t.request("BYE", {call_id = "c1", from_tag = "b", to_tag = "ft", cseq = 1,
                                    from = "sip:bob@b.example", to = "sip:alice@a.example",
                                    branch = "z9hG4bKbye1",
                                    headers = {"Reason: SIP;cause=200;text=\"x\"",
                                               "Reason: Q.850;cause=16;text=\"Normal call clearing\""}}),
                {time = 30, src = B, dst = A})
        end, function(ev, which)
            assert.are.equal(1, #ev, which)
            assert.are.same({src_ip = "192.0.2.10", src_port = 5062, dst_ip = "198.51.100.20",
                             dst_port = 5060, transport = "udp", user_agent = "Zoiper rv2.10",
                             server = "Asterisk PBX 20.5", pdd = 0.25, codec = "PCMA",
                             hangup = "callee", q850 = 16}, added(ev[1]), which)
        end)
    end)

    it("know the caller hung up, and read the server of a rejected call", function()
        both(nil, function(e)
            invite(e, "c1", 0)
            answer(e, "c1", 0)
            e:sip(t.request("BYE", {call_id = "c1", to_tag = "b", cseq = 2, branch = "z9hG4bKbye1"}),
                {time = 30, src = A, dst = B})
            invite(e, "c2", 40, {})
            e:sip(t.response(486, {call_id = "c2", to_tag = "x", headers = {"User-Agent: Yealink"}}),
                {time = 40.5, src = B, dst = A})
        end, function(ev, which)
            assert.are.equal("caller", ev[1].hangup, which)
            assert.is_nil(ev[1].q850, which)
            assert.are.same({src_ip = "192.0.2.10", src_port = 5062, dst_ip = "198.51.100.20",
                             dst_port = 5060, transport = "udp", server = "Yealink"},
                added(ev[2]), which)
        end)
    end)

    it("tell the hang-up side by the dialog tags, also between two equal URIs", function()
        local me = {from = "sip:me@a.example", to = "sip:me@a.example"}
        local function o(extra)
            local x = {call_id = "c1", from = me.from, to = me.to}
            for k, v in pairs(extra) do
                x[k] = v
            end
            return x
        end
        both({hangup = true, q850 = true}, function(e)
            e:sip(t.request("INVITE", o {}), {time = 0, src = A, dst = B})
            e:sip(t.response(200, o {to_tag = "b"}), {time = 1, src = B, dst = A})
            e:sip(t.request("BYE", o {to_tag = "b", cseq = 2, branch = "z9hG4bKbye1",
                                      headers = {"Reason: Q.850;cause=17,SIP;cause=486"}}),
                {time = 5, src = A, dst = B})
            -- c2: the callee's BYE (its tag in From, the caller's "ft" in To) after a 200 the
            -- capture missed: the call's key, made from the caller's tag, tells the sides apart.
            e:sip(t.request("INVITE", o {call_id = "c2"}), {time = 10, src = A, dst = B})
            e:sip(t.request("BYE", o {call_id = "c2", from = me.to, to = me.from, from_tag = "b2",
                                      to_tag = "ft", cseq = 1, branch = "z9hG4bKbye2"}),
                {time = 15, src = B, dst = A})
        end, function(ev, which)
            assert.are.same({hangup = "caller", q850 = 17}, added(ev[1]), which)
            assert.are.equal("c2", ev[2].call_id)
            assert.are.equal("bye", ev[2].end_reason)
            assert.are.same({hangup = "callee"}, added(ev[2]), which)
        end)
    end)

    it("take only a whole cause number from the wire, whatever the parameter's case", function()
        -- One call per Reason value, hung up by the caller. Values that tonumber would read as
        -- nan, inf or hex give no field (and the oracle no rule error).
        local reasons = {
            {"Q.850;cause=nan", nil}, {"Q.850;cause=inf", nil}, {"Q.850;cause=1e999", nil},
            {"Q.850;cause=0x10", nil}, {"Q.850;cause=-3", nil}, {"Q.850;cause=16.5", nil},
            {"Q.850;cause=", nil}, {"Q.850;Cause=21", 21}, {"q.850 ; CAUSE=34;text=\"x\"", 34},
            {"Q.850;cause=127", 127}, {"Q.850;cause=1000", nil},
            {"Q.850;cause=16 ;text=\"x\"", 16}, {"Q.850;cause=17  ", 17}, {"Q.850;cause= ", nil},
        }
        both({q850 = true}, function(e)
            for i, r in ipairs(reasons) do
                local id = "r" .. i
                e:sip(t.request("INVITE", {call_id = id}), {time = i * 10, src = A, dst = B})
                e:sip(t.response(200, {call_id = id, to_tag = "b"}),
                    {time = i * 10 + 1, src = B, dst = A})
                e:sip(t.request("BYE", {call_id = id, to_tag = "b", cseq = 2,
                                        branch = "z9hG4bKbye" .. id, headers = {"Reason: " .. r[1]}}),
                    {time = i * 10 + 5, src = A, dst = B})
            end
        end, function(ev, which)
            assert.are.equal(#reasons, #ev)
            for i, r in ipairs(reasons) do
                assert.are.equal("r" .. i, ev[i].call_id)
                assert.are.equal(r[2], ev[i].q850, which .. ": " .. r[1])
            end
        end)
    end)

    it("read the cause of a CANCEL", function()
        both(nil, function(e)
            invite(e, "c1", 0)
            e:sip(t.response(180, {call_id = "c1", to_tag = "b"}), {time = 1.5, src = B, dst = A})
            e:sip(t.request("CANCEL", {call_id = "c1", branch = "z9hG4bKc1INVITE1",
                                       headers = {"Reason: Q.850;cause=31"}}),
                {time = 5, src = A, dst = B})
            e:sip(t.response(200, {call_id = "c1", method = "CANCEL", branch = "z9hG4bKc1INVITE1"}),
                {time = 5.01, src = B, dst = A})
            e:sip(t.response(487, {call_id = "c1", to_tag = "b"}), {time = 5.02, src = B, dst = A})
        end, function(ev, which)
            assert.are.equal(1, #ev)
            assert.are.equal("cancel", ev[1].end_reason)
            assert.are.equal(31, ev[1].q850, which)
            assert.are.equal(1.5, ev[1].pdd, which)
            assert.is_nil(ev[1].hangup, which)
        end)
    end)

    -- A CANCEL that crosses the 200 has no effect on the call (RFC 3261 §9.2): its cause is not
    -- the call's, even when no BYE comes to replace it. Which of the two the capture sees first
    -- depends on where it is: the 200 first at the callee's side, the CANCEL at the caller's.
    local function cancel(e, time)
        e:sip(t.request("CANCEL", {call_id = "c1", branch = "z9hG4bKc1INVITE1",
                                   headers = {"Reason: Q.850;cause=31"}}),
            {time = time, src = A, dst = B})
    end
    local crossings = {
        ["after the 200"] = function(e)
            answer(e, "c1", 0) -- the 200 at 2 s, its ACK at 2.01 s
            cancel(e, 2.015)
        end,
        ["before the 200"] = function(e)
            e:sip(t.response(180, {call_id = "c1", to_tag = "b"}), {time = 0.5, src = B, dst = A})
            cancel(e, 1.9)
            e:sip(t.response(200, {call_id = "c1", to_tag = "b"}), {time = 2, src = B, dst = A})
            e:sip(t.request("ACK", {call_id = "c1", to_tag = "b", branch = "z9hG4bKackc1"}),
                {time = 2.01, src = A, dst = B})
        end,
    }
    for order, crossing in pairs(crossings) do
        it("leave out the cause of a CANCEL that crossed the answer, seen " .. order, function()
            both({q850 = true}, function(e)
                invite(e, "c1", 0)
                crossing(e)
                e:sip(t.response(200, {call_id = "c1", method = "CANCEL",
                                       branch = "z9hG4bKc1INVITE1"}),
                    {time = 2.02, src = B, dst = A})
                e:advance(120)
            end, function(ev, which)
                assert.are.equal(1, #ev, which)
                assert.are.equal("max_age", ev[1].end_reason, which)
                assert.are.equal(200, ev[1].outcome, which)
                assert.are.same({}, added(ev[1]), which)
            end, {max_call_age = "60s"})
        end)
    end

    it("add only the fields asked for, and cut long values on a character", function()
        -- 127 bytes, then an é in bytes 128-129: a cut after byte 128 would split it
        local long = "Phone/" .. string.rep("x", 121) .. "\195\169/1"
        both({user_agent = true, transport = true}, function(e)
            invite(e, "c1", 0, {"User-Agent: " .. long})
            e:sip(t.response(404, {call_id = "c1", to_tag = "x"}), {time = 0.5, src = B, dst = A})
            invite(e, "c2", 10, {"User-Agent: Phone/12"})
            e:sip(t.response(404, {call_id = "c2", to_tag = "x"}), {time = 10.5, src = B, dst = A})
        end, function(ev, which)
            assert.are.same({user_agent = long:sub(1, 127), transport = "udp"}, added(ev[1]),
                which)
            assert.are.same({user_agent = "Phone/12", transport = "udp"}, added(ev[2]), which)
        end)
    end)

    it("add nothing they do not know: a call that times out", function()
        both({pdd = true, codec = true, hangup = true, q850 = true, server = true}, function(e)
            invite(e, "c1", 0)
            e:advance(10)
        end, function(ev, which)
            assert.are.equal("timeout", ev[1].outcome)
            assert.are.same({}, added(ev[1]), which)
        end)
    end)
end)

describe("the engine's signalling fields and rules' fields", function()
    local function rule(hooks)
        return t.write_rule("fields.lua", "local sip = require 'sipscope'\n" ..
            "local copier = sip.field_copier{ua = {header = 'User-Agent'}, dst_port = 'dst_port'," ..
            " transport = 'transport'}\n" ..
            "local note = sip.field_copier{ua = {header = 'User-Agent'}}\n" .. hooks)
    end

    it("refuse a rule's call field of a name the engine writes, when it is written", function()
        -- The copier with the engine's names loads; its copy into d.cdr fails when it runs,
        -- naming the first of them in name order, and the rule's other writes go on.
        local path = rule([[return {on_dialog_start = function(d, m)
            d.cdr.note = 'x'
            note:copy(m, d.cdr)
            if m.call_id == "c1" then d.cdr.src_ip = 'mine' else copier:copy(m, d.cdr) end
        end}]])
        local e = t.engine{rules = {path}, events = true}
        t.call(e, {call_id = "c1", headers = {"User-Agent: P/1"}})
        t.call(e, {call_id = "c2", time = 100, headers = {"User-Agent: P/1"}})
        local ev = e:events()
        assert.are.equal(2, e:metric("sipscope_rule_errors_total",
            {rule = "fields", hook = "on_dialog_start", kind = "api"}))
        assert.are.same({"x", "P/1", "10.0.0.1", "udp", 5060},
            {ev[1].note, ev[1].ua, ev[1].src_ip, ev[1].transport, ev[1].dst_port})
        assert.are.same({"x", "P/1", "10.0.0.1", "udp", 5060},
            {ev[2].note, ev[2].ua, ev[2].src_ip, ev[2].transport, ev[2].dst_port})
        e:close()
        -- A rule that writes one of them on every call is disabled by its breaker; the
        -- engine's fields stay.
        e = t.engine{rules = {(t.write_rule("fields.lua",
            "return {on_dialog_start = function(d) d.cdr.q850 = 1 end}"))}, events = true,
            config = {breaker_errors = 2}}
        for i = 1, 3 do
            t.call(e, {call_id = "d" .. i, time = i * 100})
        end
        assert.are.equal(1, e:metric("sipscope_rule_disabled", {rule = "fields"}))
        assert.are.equal(2, e:metric("sipscope_rule_errors_total",
            {rule = "fields", hook = "on_dialog_start", kind = "api"}))
        ev = e:events()
        assert.are.equal(3, #ev)
        assert.are.equal("10.0.0.1", ev[3].src_ip)
        assert.is_nil(ev[3].q850)
        e:close()
    end)

    -- alice registers (User-Agent "R/2"); the 200 OK comes from the registrar 192.0.2.1
    local function register(e)
        local reg = {call_id = "r1", from = "sip:alice@a.example", to = "sip:alice@a.example",
                     ruri = "sip:a.example", headers = {"Contact: <sip:alice@192.0.2.10:5060>",
                     "Expires: 600", "User-Agent: R/2"}}
        e:sip(t.request("REGISTER", reg), {time = 200, src = "192.0.2.10:5060"})
        reg.method, reg.to_tag = "REGISTER", "x"
        e:sip(t.response(200, reg), {time = 200.1, src = "192.0.2.1:5060", dst = "192.0.2.10:5060"})
    end

    it("take them when --events-fields leaves them out, and always in r.event", function()
        local path = rule([[return {
            on_dialog_start = function(d, m)
                d.cdr.src_ip = 'mine'
                copier:copy(m, d.cdr)
            end,
            on_register = function(r, m)
                r.event.src_ip = 'reg'
                copier:copy(m, r.event)
            end}]])
        local e = t.engine{rules = {path}, events = true,
                           config = {events_fields = "src_port,dst_ip,q850"}}
        t.call(e, {call_id = "c1", headers = {"User-Agent: P/1"}})
        register(e)
        local ev = e:events()
        assert.is_nil(e:metric("sipscope_rule_errors_total",
            {rule = "fields", hook = "on_dialog_start", kind = "api"}))
        assert.are.same({"mine", 5060, "10.0.0.2", "udp", 5060, "P/1"},
            {ev[1].src_ip, ev[1].src_port, ev[1].dst_ip, ev[1].transport, ev[1].dst_port, ev[1].ua})
        e:close()
        -- with every field on, r.event still takes the names (registration lines lack them)
        e = t.engine{rules = {path}, events = true}
        register(e)
        ev = e:events()
        assert.are.equal("registration", ev[1].type)
        assert.are.same({"reg", "udp", 5060, "R/2"},
            {ev[1].src_ip, ev[1].transport, ev[1].dst_port, ev[1].ua})
        assert.is_nil(e:metric("sipscope_rule_errors_total",
            {rule = "fields", hook = "on_register", kind = "api"}))
        e:close()
    end)
end)
