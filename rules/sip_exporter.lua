-- sip_exporter: for users moving from sip-exporter (aibudaevv/sip-exporter 1.11.0): exports
-- its SIP metric names (prefix sip_exporter_) with its meanings, computed from sipscope's
-- tracking, so that dashboards and alerts keep working during a migration. Where its
-- semantics differ from sipscope's own families (it counts a challenged call as two attempts,
-- 401/407 as failures, ratios in percent, delays in milliseconds), this rule follows
-- sip-exporter. The mapping of every name is in rules/README.md. Not meant for the 1M msgs/s
-- budget: it runs on every message and updates several 4-label families.
local sip = require "sipscope"

-- Configuration. Edit, then reload (SIGHUP): this rule declares no label.
local config = {
    -- false: this file declares nothing and costs nothing.
    enabled = false,
    -- Operator labels read for sip-exporter's `carrier`, `ua_type` and `direction` labels
    -- (declared by rules/carrier.lua and rules/device.lua, or your own rules); when no rule
    -- declares one, its value is `unknown`.
    carrier_label = "carrier",
    ua_type_label = "ua_type",
    direction_label = "direction",
    -- What sipscope does not know (no GeoIP, no interface or host labels on these families).
    unknown = "unknown",
}

if not config.enabled then
    return {}
end

local U = config.unknown
local LC, LU, LD = config.carrier_label, config.ua_type_label, config.direction_label
local P = "sip_exporter_"
local BASE = {"carrier", "ua_type", "source_country", "direction"}
local BASE_EXTRA = {"carrier", "ua_type", "source_country", "direction", "destination_country",
                    "caller_host", "called_host", "iface"}
local MS_BUCKETS = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000}
local SPD_BUCKETS = {1, 5, 10, 30, 60, 300, 600, 1800, 3600}

local function with(labels, extra)
    local out = {}
    for i, l in ipairs(labels) do
        out[i] = l
    end
    out[#out + 1] = extra
    return out
end

local function counter(name, help, labels)
    return sip.counter{name = P .. name, help = help, labels = labels or BASE}
end

local function gauge(name, help, labels)
    return sip.gauge{name = P .. name, help = help, labels = labels or BASE}
end

local function histogram(name, help, buckets)
    return sip.histogram{name = P .. name, help = help, labels = BASE, buckets = buckets}
end

-- Families -------------------------------------------------------------------------------------

local packets = counter("packets_total", "SIP messages, INVITE retransmissions excluded")
local invites = counter("invite_total", "Initial INVITEs (a challenged call counts twice)",
    BASE_EXTRA)
local reinvites = counter("reinvite_total", "INVITEs inside a dialog")
local retrans = counter("sip_retransmission_total", "INVITE retransmissions",
    with(BASE, "method"))
local invite_200 = counter("invite_200_total", "Initial INVITEs whose first final is 200",
    BASE_EXTRA)
local invite_3xx = counter("invite_3xx_total", "Initial INVITEs whose first final is 3xx")

local BY_METHOD = {}
for _, method in ipairs {"ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "UPDATE", "INFO",
                         "REFER", "SUBSCRIBE", "NOTIFY", "PRACK", "PUBLISH", "MESSAGE"} do
    BY_METHOD[method] = counter(method:lower() .. "_total", method .. " requests, every copy")
end

local BY_CODE = {}
for _, code in ipairs {100, 180, 181, 182, 183, 200, 202, 300, 302, 400, 401, 403, 404, 405,
                       408, 480, 481, 486, 487, 488, 500, 501, 502, 503, 504, 600, 603, 604,
                       606} do
    BY_CODE[code] = counter(code .. "_total", code .. " responses, every copy")
end
BY_CODE[407] = counter("proxy_authentication_required_total", "407 responses, every copy")

local RATIO = "percent, cumulative since load; 401/407 count as failures"
local ser = gauge("ser", "Session establishment ratio: 200 / (INVITEs - 3xx), " .. RATIO)
local seer = gauge("seer", "Session establishment effectiveness ratio: " ..
    "200, 480, 486, 600, 603 / (INVITEs - 3xx), " .. RATIO)
local isa = gauge("isa", "Ineffective session attempts: 408, 500, 503, 504, timeout / INVITEs, " ..
    RATIO)
local scr = gauge("scr", "Session completion ratio: completed sessions / INVITEs, " .. RATIO)
local asr = gauge("asr", "Answer seizure ratio: 2xx / INVITEs, " .. RATIO)
local ner = gauge("ner", "Network effectiveness ratio: 100 - ISA, " .. RATIO)
local reg_ratio = gauge("register_success_ratio", "REGISTER 200 / (200 + finals >= 400 " ..
    "except 401, 407), percent, cumulative since load")

local sdc = counter("sdc_total", "Completed sessions: BYE answered 200, or session expiry")
local iss = counter("iss_total", "Initial INVITEs whose first final is 408, 500, 503 or 504")
local short_calls = counter("short_calls_total", "Completed sessions shorter than threshold " ..
    "seconds", with(BASE, "threshold"))

local rrd = histogram("rrd", "REGISTER to its 200, milliseconds", MS_BUCKETS)
local lrd = histogram("lrd", "REGISTER to its 3xx, milliseconds", MS_BUCKETS)
local ttr = histogram("ttr", "Initial INVITE to its first 1xx, milliseconds", MS_BUCKETS)
local pdd = histogram("pdd", "Initial INVITE to its first 180, milliseconds", MS_BUCKETS)
local ord = histogram("ord", "OPTIONS to its final response, milliseconds", MS_BUCKETS)
local pbd = histogram("pbd", "BYE to its 200, milliseconds", MS_BUCKETS)
local spd = histogram("spd", "Session duration: answer to BYE 200 or expiry, seconds",
    SPD_BUCKETS)

local sessions = gauge("sessions", "Confirmed dialogs now")
local reg_ok = counter("register_success_total", "REGISTER 200 responses")
local reg_fail = counter("register_failure_total", "REGISTER final responses >= 300",
    with(BASE, "code"))
local active_regs = gauge("active_registrations", "AoRs with at least one binding")
local build_info = sip.gauge{name = P .. "build_info", labels = {"version"},
                             help = "1; version is sipscope's"}

-- Labels ---------------------------------------------------------------------------------------

-- Whether a rule declared each label: asked once (the labels cannot change without a restart).
local detected, has_c, has_u, has_d = false, false, false, false

local function detect(h)
    has_c = pcall(h.label, h, LC)
    has_u = pcall(h.label, h, LU)
    has_d = pcall(h.label, h, LD)
    detected = true
end

-- (carrier, ua_type, direction) of a handle's call, transaction or registration.
local function labels(h)
    if not detected then
        detect(h)
    end
    local c, u, d = U, U, U
    if has_c then
        c = h:label(LC)
    end
    if has_u then
        u = h:label(LU)
    end
    if has_d then
        d = h:label(LD)
    end
    return c, u, d
end

-- Those of the message being dispatched, for on_request / on_response.
local mc, mu, md = U, U, U

-- Ratio state per label set, since load: stats[c][u][d].
local call_stats, reg_stats = {}, {}

local function stats_of(root, c, u, d, new)
    local a = root[c]
    if a == nil then
        a = {}
        root[c] = a
    end
    local b = a[u]
    if b == nil then
        b = {}
        a[u] = b
    end
    local s = b[d]
    if s == nil then
        s = new(c, u, d)
        b[d] = s
    end
    return s
end

local function new_call_stats(c, u, d)
    return {c = c, u = u, d = d, att = 0, n200 = 0, n2xx = 0, n3xx = 0, eff = 0, ineff = 0,
            completed = 0}
end

local function new_reg_stats(c, u, d)
    return {c = c, u = u, d = d, ok = 0, fail = 0}
end

-- RFC 6076 ratios over initial INVITE transactions, in percent; not exported while a
-- denominator is 0 (no fake 0). Run from on_tick for the label sets that changed (see touch).
local function update_ratios(s)
    local att = s.att
    if att == 0 then
        return
    end
    local c, u, d = s.c, s.u, s.d
    local den = att - s.n3xx
    if den > 0 then
        ser:set(c, u, U, d, 100 * s.n200 / den)
        seer:set(c, u, U, d, 100 * s.eff / den)
    end
    local ineff = 100 * s.ineff / att
    isa:set(c, u, U, d, ineff)
    ner:set(c, u, U, d, 100 - ineff)
    asr:set(c, u, U, d, 100 * s.n2xx / att)
    scr:set(c, u, U, d, 100 * s.completed / att)
end

local function update_reg_ratio(s)
    if s.ok + s.fail > 0 then
        reg_ratio:set(s.c, s.u, U, s.d, 100 * s.ok / (s.ok + s.fail))
    end
end

-- Ratio gauges are set once per second of packet time (on_tick), for the label sets whose
-- counts changed: setting six 4-label gauges at every attempt, outcome and completion was
-- about 300 ns per message, most of this rule's cost.
local dirty, n_dirty = {}, 0

local function touch(s)
    if not s.dirty then
        s.dirty = true
        n_dirty = n_dirty + 1
        dirty[n_dirty] = s
    end
end

local function flush()
    for i = 1, n_dirty do
        local s = dirty[i]
        dirty[i] = nil
        s.dirty = false
        if s.att ~= nil then
            update_ratios(s)
        else
            update_reg_ratio(s)
        end
    end
    n_dirty = 0
end

local EFFECTIVE = {[200] = true, [480] = true, [486] = true, [600] = true, [603] = true}
local INEFFECTIVE = {[408] = true, [500] = true, [503] = true, [504] = true}

-- A completed session (BYE answered 200, or expiry) that lasted dur seconds.
local function completed(c, u, d, dur)
    sdc:inc(c, u, U, d)
    if dur < 180 then -- short_calls thresholds: 20, 60, 180 s (cumulative)
        short_calls:inc(c, u, U, d, "180")
        if dur < 60 then
            short_calls:inc(c, u, U, d, "60")
            if dur < 20 then
                short_calls:inc(c, u, U, d, "20")
            end
        end
    end
    spd:observe(c, u, U, d, dur)
    local s = stats_of(call_stats, c, u, d, new_call_stats)
    s.completed = s.completed + 1
    touch(s)
end

-- The outcome of an initial INVITE transaction: code, 0 for a timeout.
local function outcome(c, u, d, code)
    local s = stats_of(call_stats, c, u, d, new_call_stats)
    if code == 200 then
        invite_200:inc(c, u, U, d, U, U, U, U)
        s.n200 = s.n200 + 1
    end
    if code >= 200 and code < 300 then
        s.n2xx = s.n2xx + 1
    elseif code >= 300 and code < 400 then
        invite_3xx:inc(c, u, U, d)
        s.n3xx = s.n3xx + 1
    end
    if EFFECTIVE[code] then
        s.eff = s.eff + 1
    end
    if INEFFECTIVE[code] then
        iss:inc(c, u, U, d)
        s.ineff = s.ineff + 1
    elseif code == 0 then
        s.ineff = s.ineff + 1
    end
    touch(s)
end

local function register_final(c, u, d, code)
    local s = stats_of(reg_stats, c, u, d, new_reg_stats)
    if code == 200 then
        reg_ok:inc(c, u, U, d)
        s.ok = s.ok + 1
    elseif code >= 300 then
        reg_fail:inc(c, u, U, d, code)
        if code >= 400 and code ~= 401 and code ~= 407 then
            s.fail = s.fail + 1
        end
    end
    touch(s)
end

-- AoR -> {n = bindings, c, u, d}: registered AoRs, with the labels they were counted under.
local aors = {}

-- Hooks ----------------------------------------------------------------------------------------

local function on_request(m)
    local method = m.method
    local by_method = BY_METHOD[method]
    if by_method ~= nil then
        by_method:inc(mc, mu, U, md)
        return
    end
    if method ~= "INVITE" or m.retransmission then
        return
    end
    local dlg = m.dialog
    if m.initial then
        invites:inc(mc, mu, U, md, U, U, U, U)
        local s = stats_of(call_stats, mc, mu, md, new_call_stats)
        s.att = s.att + 1
        touch(s)
        if dlg ~= nil then
            -- This INVITE's transaction: its outcome (on_transaction_end), TTR and PDD.
            local v = dlg.vars
            v.pending = (v.pending or 0) + 1
            v.cseq, v.time, v.got_1xx, v.got_180 = m.cseq, m.time, false, false
        end
    elseif dlg ~= nil then
        reinvites:inc(mc, mu, U, md)
    end
end

local function on_response(m)
    local status = m.status
    local by_code = BY_CODE[status]
    if by_code ~= nil then
        by_code:inc(mc, mu, U, md)
    end
    if m.retransmission then
        return
    end
    local cseq_method = m.cseq_method
    if cseq_method == "INVITE" then
        if status >= 200 then
            return
        end
        local dlg = m.dialog
        if dlg == nil then
            return
        end
        local v = dlg.vars
        if v.time == nil or v.cseq ~= m.cseq then
            return -- not the initial INVITE's transaction
        end
        local ms = (m.time - v.time) * 1000
        if not v.got_1xx then
            v.got_1xx = true
            ttr:observe(mc, mu, U, md, ms)
        end
        if status == 180 and not v.got_180 then
            v.got_180 = true
            pdd:observe(mc, mu, U, md, ms)
        end
    elseif cseq_method == "REGISTER" then
        if status >= 200 then
            register_final(mc, mu, md, status)
        end
    elseif cseq_method == "BYE" and status == 200 then
        local dlg = m.dialog
        if dlg ~= nil then
            local answered = dlg.answer_time
            if answered ~= nil then
                local dur = m.time - answered
                completed(mc, mu, md, dur > 0 and dur or 0)
            end
        end
    end
end

return {
    -- One hook for requests and responses: a dispatch costs more than the work it carries.
    on_message = function(m)
        mc, mu, md = labels(m)
        if m.is_request then
            if m.retransmission and m.method == "INVITE" then
                retrans:inc(mc, mu, U, md, "INVITE")
                return
            end
            packets:inc(mc, mu, U, md)
            on_request(m)
        else
            packets:inc(mc, mu, U, md)
            on_response(m)
        end
    end,
    on_transaction_end = function(t)
        local method = t.method
        if method == "INVITE" then
            local dlg = t.dialog
            if dlg == nil then
                return
            end
            local v = dlg.vars
            local pending = v.pending
            if pending == nil or pending == 0 then
                return -- a re-INVITE's
            end
            v.pending = pending - 1
            local c, u, d = labels(t)
            outcome(c, u, d, t.code)
            return
        end
        local code = t.code
        local h
        if method == "REGISTER" then
            if code == 200 then
                h = rrd
            elseif code >= 300 and code < 400 then
                h = lrd
            end
        elseif method == "OPTIONS" then
            if code ~= 0 then
                h = ord
            end
        elseif method == "BYE" and code == 200 then
            h = pbd
        end
        if h ~= nil then
            local c, u, d = labels(t)
            h:observe(c, u, U, d, t.response_time * 1000)
        end
    end,
    on_dialog_answer = function(dlg)
        local c, u, d = labels(dlg)
        sessions:inc(c, u, U, d)
    end,
    on_dialog_end = function(dlg)
        if dlg.answer_time == nil then
            return
        end
        local c, u, d = labels(dlg)
        sessions:dec(c, u, U, d)
        if dlg.end_reason == "expired" then
            completed(c, u, d, dlg.duration or 0)
        end
    end,
    on_register = function(r)
        local change = r.change
        if change == "refreshed" then
            return
        end
        local aor = r.aor
        local e = aors[aor]
        if change == "added" then
            if e == nil then
                local c, u, d = labels(r)
                e = {n = 0, c = c, u = u, d = d}
                aors[aor] = e
                active_regs:inc(c, u, U, d)
            end
            e.n = e.n + 1
        elseif e ~= nil then -- removed, expired, evicted
            e.n = e.n - 1
            if e.n <= 0 then
                aors[aor] = nil
                active_regs:dec(e.c, e.u, U, e.d)
            end
        end
    end,
    on_tick = function()
        build_info:set(sip.version, 1)
        if n_dirty > 0 then
            flush()
        end
    end,
}
