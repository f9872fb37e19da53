-- rules/carrier.lua: the carrier label from the source, else the destination, address.
local t = require "sipscope.testing"
local configure = dofile("tests/lua/rules/configure.lua")

local CARRIERS = {
    ["198.51.100.0/24"] = "red",
    ["198.51.100.128/25"] = "crimson", -- longer: wins inside the /24
    ["203.0.113.0/24"] = "blue",
    ["2001:db8:b::/48"] = "blue",
}

local function engine(overrides)
    local cfg = {enabled = true, carriers = CARRIERS}
    for k, v in pairs(overrides or {}) do
        cfg[k] = v
    end
    local path = t.write_rule("carrier.lua", configure.text("rules/carrier.lua", cfg))
    return t.engine{rules = {path}, config = {t1 = "100ms"}}
end

local function attempts(e, carrier)
    return e:metric("sip_session_attempts_total", {carrier = carrier})
end

local function outcomes(e, carrier, code)
    return e:metric("sip_session_outcomes_total", {carrier = carrier, code = code})
end

-- A rejected call: INVITE from src to dst, the final code back.
local function rejected(e, id, src, dst, code, time)
    e:sip(t.request("INVITE", {call_id = id}), {time = time, src = src, dst = dst})
    e:sip(t.response(code, {call_id = id, to_tag = "x"}), {time = time + 0.1, src = dst, dst = src})
    e:sip(t.request("ACK", {call_id = id, to_tag = "x"}), {time = time + 0.2, src = src, dst = dst})
end

describe("rules/carrier.lua", function()
    it("ships disabled: no label, the built-in families as without rules", function()
        local e = t.engine{rules = {"rules/carrier.lua"}}
        t.call(e, {call_id = "c1", src = "198.51.100.1:5060"})
        assert.are.equal(1, e:metric("sip_session_attempts_total", {}))
        assert.are.equal(false, configure.defaults("rules/carrier.lua").enabled)
        e:close()
    end)

    it("labels calls by source prefix, the longest one winning", function()
        local e = engine()
        t.call(e, {call_id = "a", time = 0, src = "198.51.100.7:5060", dst = "192.0.2.1:5060"})
        t.call(e, {call_id = "b", time = 20, src = "198.51.100.200:5060", dst = "192.0.2.1:5060"})
        rejected(e, "c", "198.51.100.8:5060", "192.0.2.1:5060", 486, 40)
        assert.are.equal(2, attempts(e, "red"))
        assert.are.equal(1, attempts(e, "crimson"))
        assert.are.equal(1, outcomes(e, "red", "200"))
        assert.are.equal(1, outcomes(e, "red", "486"))
        assert.are.equal(0.5, e:metric("sip_session_establishment_ratio", {carrier = "red"}))
        assert.are.equal(1, e:metric("sip_session_establishment_ratio", {carrier = "crimson"}))
        -- the responses and the in-dialog requests carry the call's label
        assert.are.equal(2, e:metric("sip_requests_total", {method = "BYE", carrier = "red"}) +
            e:metric("sip_requests_total", {method = "BYE", carrier = "crimson"}))
        assert.are.equal(1, e:metric("sip_responses_total",
            {method = "INVITE", code = "486", carrier = "red"}))
        e:close()
    end)

    it("falls back to the destination, then to the default", function()
        local e = engine()
        -- outbound to blue over IPv6, and over IPv4
        t.call(e, {call_id = "out6", time = 0, src = "[2001:db8:1::1]:5060",
                   dst = "[2001:db8:b::9]:5060"})
        rejected(e, "out4", "192.0.2.1:5060", "203.0.113.9:5060", 503, 20)
        -- neither address is a carrier's
        rejected(e, "none", "192.0.2.1:5060", "192.0.2.2:5060", 404, 21)
        e:sip(t.request("OPTIONS", {call_id = "o"}), {time = 22, src = "192.0.2.9:5060",
                                                      dst = "192.0.2.1:5060"})
        assert.are.equal(2, attempts(e, "blue"))
        assert.are.equal(1, outcomes(e, "blue", "503"))
        assert.are.equal(1, attempts(e, "other"))
        assert.are.equal(1, outcomes(e, "other", "404"))
        assert.are.equal(1, e:metric("sip_requests_total", {method = "OPTIONS", carrier = "other"}))
        assert.is_nil(attempts(e, "red"))
        e:close()
    end)

    it("uses the configured default", function()
        local e = engine {default = "offnet"}
        rejected(e, "none", "192.0.2.1:5060", "192.0.2.2:5060", 404, 0)
        assert.are.equal(1, attempts(e, "offnet"))
        e:close()
    end)

    it("labels registrations", function()
        local e = engine()
        e:sip(t.request("REGISTER", {call_id = "r", ruri = "sip:b.example",
                                     to = "sip:alice@b.example", from = "sip:alice@b.example",
                                     headers = {"Contact: <sip:alice@203.0.113.4>",
                                                "Expires: 60"}}),
            {time = 0, src = "203.0.113.4:5060", dst = "192.0.2.1:5060"})
        e:sip(t.response(200, {call_id = "r", to_tag = "x", method = "REGISTER",
                               to = "sip:alice@b.example", from = "sip:alice@b.example",
                               headers = {"Contact: <sip:alice@203.0.113.4>;expires=60"}}),
            {time = 0.1, src = "192.0.2.1:5060", dst = "203.0.113.4:5060"})
        assert.are.equal(1, e:metric("sip_registration_attempts_total", {carrier = "blue"}))
        assert.are.equal(1, e:metric("sip_registrations_active", {carrier = "blue"}))
        e:close()
    end)

    it("maps carriers past max_values to the default and counts each", function()
        -- one value besides the default: red, the first carrier seen; blue overflows
        local e = engine {max_values = 1}
        rejected(e, "r1", "198.51.100.7:5060", "192.0.2.1:5060", 486, 0)
        rejected(e, "b1", "203.0.113.7:5060", "192.0.2.1:5060", 486, 1)
        rejected(e, "b2", "203.0.113.8:5060", "192.0.2.1:5060", 486, 2)
        assert.are.equal(1, attempts(e, "red"))
        assert.are.equal(2, attempts(e, "other"))
        assert.is_nil(attempts(e, "blue"))
        assert.are.equal(2, e:metric("sipscope_label_overflow_total", {label = "carrier"}))
        e:close()
    end)

    it("adds a direction label when configured", function()
        local e = engine {direction = true}
        rejected(e, "in", "198.51.100.7:5060", "192.0.2.1:5060", 486, 0)
        rejected(e, "out", "192.0.2.1:5060", "203.0.113.9:5060", 486, 1)
        rejected(e, "both", "198.51.100.7:5060", "203.0.113.9:5060", 486, 2)
        rejected(e, "none", "192.0.2.1:5060", "192.0.2.2:5060", 486, 3)
        assert.are.equal(2, e:metric("sip_session_attempts_total",
            {carrier = "red", direction = "inbound"}))
        assert.are.equal(1, e:metric("sip_session_attempts_total",
            {carrier = "blue", direction = "outbound"}))
        assert.are.equal(1, e:metric("sip_session_attempts_total",
            {carrier = "other", direction = "unknown"}))
        e:close()
    end)

    it("refuses a prefix with host bits at load time", function()
        local path = t.write_rule("carrier.lua", configure.text("rules/carrier.lua",
            {enabled = true, carriers = {["198.51.100.1/24"] = "red"}}))
        local ok, err = pcall(t.engine, {rules = {path}})
        assert.is_false(ok)
        assert.truthy(err:find("carrier.lua:", 1, true), err)
        assert.truthy(err:find("sip.cidr_set", 1, true), err)
    end)
end)
