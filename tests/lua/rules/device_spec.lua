-- rules/device.lua: the ua_type label from User-Agent (or Server), and final responses by the
-- answering side's Server class.
local t = require "sipscope.testing"
local configure = dofile("tests/lua/rules/configure.lua")

local function engine(overrides)
    local cfg = {enabled = true}
    for k, v in pairs(overrides or {}) do
        cfg[k] = v
    end
    local path = t.write_rule("device.lua", configure.text("rules/device.lua", cfg))
    return t.engine{rules = {path}, config = {t1 = "100ms"}}
end

local function options(e, id, headers, time)
    e:sip(t.request("OPTIONS", {call_id = id, headers = headers}), {time = time})
end

local function finals(e, server, class)
    return e:metric("device_final_responses_total", {server = server, class = class})
end

describe("rules/device.lua", function()
    it("ships disabled", function()
        local e = t.engine{rules = {"rules/device.lua"}}
        options(e, "o", {"User-Agent: Asterisk PBX 18.0"}, 0)
        assert.are.equal(1, e:metric("sip_requests_total", {method = "OPTIONS"}))
        e:close()
    end)

    it("classifies the User-Agent of the request that starts a transaction", function()
        local e = engine()
        options(e, "a", {"User-Agent: Asterisk PBX 18.20.0"}, 0)
        options(e, "b", {"User-Agent: Yealink SIP-T46U 108.86.0.45"}, 1)
        options(e, "c", {"User-Agent: yealink w60b"}, 2) -- nocase
        options(e, "d", {"User-Agent: friendly-scanner"}, 3)
        options(e, "e", {"User-Agent: MyOwnPhone/1.0"}, 4) -- no pattern: unmatched
        options(e, "f", {}, 5) -- no header: the default
        options(e, "g", {"Server: FreeSWITCH-mod_sofia/1.10.9"}, 6) -- Server when no UA
        local function n(v)
            return e:metric("sip_requests_total", {method = "OPTIONS", ua_type = v})
        end
        assert.are.equal(1, n("asterisk"))
        assert.are.equal(2, n("yealink"))
        assert.are.equal(1, n("scanner"))
        assert.are.equal(1, n("other"))
        assert.are.equal(1, n("unknown"))
        assert.are.equal(1, n("freeswitch"))
        e:close()
    end)

    it("labels a whole call with the caller's device", function()
        local e = engine()
        -- t.call puts the headers on every message: the callee's User-Agent does not matter,
        -- the call keeps the label of its first INVITE
        t.call(e, {call_id = "c1", time = 0, headers = {"User-Agent: Zoiper rv2.10"}})
        assert.are.equal(1, e:metric("sip_session_attempts_total", {ua_type = "softphone"}))
        assert.are.equal(1, e:metric("sip_requests_total", {method = "BYE", ua_type = "softphone"}))
        assert.are.equal(1, e:metric("sip_responses_total",
            {method = "BYE", code = "200", ua_type = "softphone"}))
        e:close()
    end)

    it("counts final responses by Server class, once per response", function()
        local e = engine()
        local inv = {call_id = "r1", headers = {"User-Agent: Linphone/5.2"}}
        e:sip(t.request("INVITE", inv), {time = 0})
        e:sip(t.response(100, {call_id = "r1", headers = {"Server: Kamailio (5.7.2)"}}),
            {time = 0.01})
        local busy = {call_id = "r1", to_tag = "x", headers = {"Server: Asterisk PBX 20"}}
        e:sip(t.response(486, busy), {time = 0.2})
        e:sip(t.response(486, busy), {time = 0.7}) -- a retransmission: not counted again
        e:sip(t.request("ACK", {call_id = "r1", to_tag = "x"}), {time = 0.71})
        options(e, "o1", {}, 1)
        -- no Server: the User-Agent of the response; neither: the default
        e:sip(t.response(200, {call_id = "o1", method = "OPTIONS", to_tag = "y",
                               headers = {"User-Agent: Grandstream GXP2170"}}), {time = 1.1})
        options(e, "o2", {}, 2)
        e:sip(t.response(404, {call_id = "o2", method = "OPTIONS", to_tag = "z"}), {time = 2.1})
        assert.are.equal(1, finals(e, "asterisk", "4xx"))
        assert.are.equal(1, finals(e, "grandstream", "2xx"))
        assert.are.equal(1, finals(e, "unknown", "4xx"))
        assert.is_nil(finals(e, "kamailio", "1xx"))
        assert.are.equal(1, e:metric("sip_session_attempts_total", {ua_type = "softphone"}))
        e:close()
    end)

    it("uses the configured names and patterns", function()
        local e = engine {label = "device", default = "none", unmatched = "misc",
                          responses = false,
                          patterns = {{"glob", "Acme-?/*", "acme"}, {"suffix", "-x", "x"}}}
        options(e, "a", {"User-Agent: Acme-7/2.1"}, 0)
        options(e, "b", {"User-Agent: Acme-77/2.1"}, 1)
        options(e, "c", {"User-Agent: phone-x"}, 2)
        options(e, "d", {}, 3)
        local function n(v)
            return e:metric("sip_requests_total", {method = "OPTIONS", device = v})
        end
        assert.are.equal(1, n("acme"))
        assert.are.equal(1, n("misc"))
        assert.are.equal(1, n("x"))
        assert.are.equal(1, n("none"))
        local ok = pcall(e.metric, e, "device_final_responses_total", {server = "x", class = "2xx"})
        assert.is_false(ok) -- responses = false: no such family
        e:close()
    end)

    it("maps classes past max_values to the default and counts each", function()
        local e = engine {max_values = 1}
        options(e, "a", {"User-Agent: Asterisk"}, 0)
        options(e, "b", {"User-Agent: Cisco-CP8865/14.2"}, 1)
        options(e, "c", {"User-Agent: Cisco-CP8865/14.2"}, 2)
        options(e, "d", {"User-Agent: Asterisk"}, 3)
        assert.are.equal(2, e:metric("sip_requests_total", {method = "OPTIONS", ua_type = "asterisk"}))
        assert.are.equal(2, e:metric("sip_requests_total", {method = "OPTIONS", ua_type = "unknown"}))
        assert.are.equal(2, e:metric("sipscope_label_overflow_total", {label = "ua_type"}))
        e:close()
    end)
end)
