-- trunk_asr: an answer-seizure view per trunk (ITU-T E.411): seizures (calls), answers, the
-- answer-seizure and network-effectiveness ratios, and how each call ended, per trunk and
-- direction. A trunk is named by the RFC 4904 `tgrp` parameter of the INVITE's Request-URI,
-- else by the peer's address (source for inbound, destination for outbound) in a CIDR set.
-- It runs once per call (dialog hooks), not per message, and adds no label to the built-in
-- families. Documentation: rules/README.md.
local sip = require "sipscope"

-- Configuration. Edit, then reload (SIGHUP): this rule declares no label.
local config = {
    -- false: this file declares nothing and costs nothing.
    enabled = false,
    -- Peer address prefix (or a bare address) -> trunk name. A call whose INVITE comes from
    -- one is inbound on that trunk; else one whose INVITE goes to one is outbound on it.
    trunks = {
        -- ["192.0.2.10"] = "gw1",
        -- ["198.51.100.0/28"] = "carrier-a",
    },
    -- Read the trunk group from ";tgrp=NAME" in the INVITE's Request-URI (RFC 4904; the
    -- parameter name in any case), before the addresses: an outbound call on trunk NAME.
    tgrp = true,
    -- Trunk name for calls on no known trunk; false leaves those calls out.
    default = "other",
    -- Distinct trunk names held (tgrp values come from the wire); names past it are counted
    -- under the default and in trunk_overflow_total.
    max_trunks = 64,
}

if not config.enabled then
    return {}
end

local TRUNK_DIR = {"trunk", "direction"}
local seizures = sip.counter{name = "trunk_seizures_total", labels = TRUNK_DIR,
                             help = "Calls (INVITE session attempts) on the trunk"}
local answers = sip.counter{name = "trunk_answers_total", labels = TRUNK_DIR,
                            help = "Calls on the trunk answered (2xx)"}
local outcomes = sip.counter{name = "trunk_call_outcomes_total",
                             labels = {"trunk", "direction", "outcome"},
                             help = "Calls on the trunk by how they ended: answered, busy, " ..
                                 "no_answer, cancelled, rejected, failed, redirected, other"}
local asr = sip.gauge{name = "trunk_answer_seizure_ratio", labels = TRUNK_DIR,
                      help = "Answers / seizures since load (0-1)"}
local ner = sip.gauge{name = "trunk_network_effectiveness_ratio", labels = TRUNK_DIR,
                      help = "1 - failed / seizures since load (0-1); failed: 408, 500, " ..
                          "503, 504 or no final at all"}
local overflow = sip.counter{name = "trunk_overflow_total",
                             help = "Calls whose trunk name was past max_trunks"}

local peers = sip.cidr_set(config.trunks)
local default, max_trunks, use_tgrp = config.default, config.max_trunks, config.tgrp

-- Trunk names seen, with their counts since load: name -> direction -> {s, a, f}.
local trunks, n_trunks = {}, 0
for _, name in pairs(config.trunks) do
    if trunks[name] == nil then
        trunks[name] = {}
        n_trunks = n_trunks + 1
    end
end

local function classify(m)
    if use_tgrp then
        -- ";tgrp=NAME" in the Request-URI, up to the next ';', '@' (a tel-style user part, as
        -- in sip:+15551234;tgrp=tg1;trunk-context=example.com@gw.example) or '?', read in C.
        local name = m:ruri_param("tgrp")
        if name ~= nil and name ~= "" then
            if trunks[name] == nil then
                if n_trunks >= max_trunks then
                    overflow:inc()
                    return default or nil, "outbound"
                end
                trunks[name] = {}
                n_trunks = n_trunks + 1
            end
            return name, "outbound"
        end
    end
    local name = peers:src(m)
    if name ~= nil then
        return name, "inbound"
    end
    name = peers:dst(m)
    if name ~= nil then
        return name, "outbound"
    end
    if default then
        return default, "unknown"
    end
    return nil
end

local function stats(trunk, dir)
    local t = trunks[trunk]
    if t == nil then
        t = {}
        trunks[trunk] = t -- the default trunk
    end
    local s = t[dir]
    if s == nil then
        s = {s = 0, a = 0, f = 0}
        t[dir] = s
    end
    return s
end

local function ratios(trunk, dir, s)
    asr:set(trunk, dir, s.a / s.s)
    ner:set(trunk, dir, 1 - s.f / s.s)
end

-- RFC 6076 ISA's failures: the network did not deliver.
local FAILED = {[408] = true, [500] = true, [503] = true, [504] = true, [0] = true}

local function outcome_of(d)
    if d.answer_time ~= nil then
        return "answered"
    end
    local reason, code = d.end_reason, d.final_code
    if reason == "redirected" then
        return "redirected"
    elseif reason == "cancel" then
        return "cancelled"
    elseif reason == "timeout" then
        return "failed"
    elseif code == nil then
        return "other" -- ended before any final: BYE while early, max_age, evicted
    elseif code == 486 or code == 600 then
        return "busy"
    elseif code == 480 then
        return "no_answer"
    elseif FAILED[code] then
        return "failed"
    end
    return "rejected"
end

return {
    on_dialog_start = function(d, m)
        local trunk, dir = classify(m)
        if trunk == nil then
            return
        end
        local v = d.vars
        v.trunk, v.dir = trunk, dir
        seizures:inc(trunk, dir)
        local s = stats(trunk, dir)
        s.s = s.s + 1
        ratios(trunk, dir, s)
    end,
    on_dialog_answer = function(d)
        local v = d.vars
        local trunk = v.trunk
        if trunk == nil then
            return
        end
        answers:inc(trunk, v.dir)
        local s = stats(trunk, v.dir)
        s.a = s.a + 1
        ratios(trunk, v.dir, s)
    end,
    on_dialog_end = function(d)
        local v = d.vars
        local trunk = v.trunk
        if trunk == nil then
            return
        end
        local o = outcome_of(d)
        outcomes:inc(trunk, v.dir, o)
        if o == "failed" then
            local s = stats(trunk, v.dir)
            s.f = s.f + 1
            ratios(trunk, v.dir, s)
        end
    end,
}
