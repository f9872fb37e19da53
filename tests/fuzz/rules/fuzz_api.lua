-- fuzz_api: the rule fuzz_pipeline_rules loads (tests/fuzz/fuzz_pipeline.c, FUZZ_RULES_DIR).
-- Every hook reads every field of its handles and calls every method and helper on what the
-- fuzzer's messages carry, so that the C half of the API (core/lua_bridge.c, cidr, classify,
-- window, the field copier, the call fields) runs on hostile input under ASan and UBSan. It
-- is written to never fail: the API promises nil, not an error, for what a message lacks, so
-- any error counted for this rule is a bug, and the fuzz target aborts on it.
local sip = require "sipscope"

-- Values from messages become label values: the series caps and the label cap are reached.
sip.label{name = "fz", default = "none", max_values = 4, from = function(m)
    return m:header("X-Fz") or m:ruri_param("tgrp")
end}

local by_ua = sip.counter{name = "fz_msgs_total", labels = {"ua", "method"}, max_series = 16,
                          help = "Messages by User-Agent and method (fuzz)"}
local delays = sip.histogram{name = "fz_delay_seconds", labels = {"kind"}, buckets = {0.1, 1},
                             help = "Delays (fuzz)"}
local level = sip.gauge{name = "fz_level", labels = {"k"}, help = "Levels (fuzz)"}

local nets = sip.cidr_set{["10.0.0.0/8"] = "ten", ["192.0.2.0/24"] = "doc",
                          ["2001:db8::/32"] = "doc6", ["::ffff:10.0.0.0/104"] = "mapped"}
local classes = sip.classifier{
    {"prefix", "Asterisk", "asterisk"},
    {"contains", "yealink", "yealink", nocase = true},
    {kind = "glob", pattern = "*/1?.*", class = "v1x"},
    {"suffix", "\0", "nul"},
}
local win = sip.window{seconds = 2, buckets = 4, max_keys = 8}
local copier = sip.field_copier{fz_src = "src_ip", fz_sport = "src_port", fz_dst = "dst_ip",
                                fz_tr = "transport", fz_cid = "call_id", fz_ftag = "from_tag",
                                fz_to = "to", fz_br = "branch",
                                fz_ua = {header = "User-Agent", max_bytes = 7}}

local MSG_FIELDS = {"method", "status", "reason", "is_request", "call_id", "from_tag", "to_tag",
                    "from", "to", "ruri", "cseq", "cseq_method", "branch", "src_ip", "dst_ip",
                    "src_port", "dst_port", "transport", "time", "retransmission", "initial",
                    "orphan", "late_final"}
local HEADERS = {"Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m",
                 "Content-Length", "l", "Content-Type", "c", "User-Agent", "Server", "Reason",
                 "X-Fz", "Expires", "Supported", "k", "Subject", "s", "P-Asserted-Identity"}
local PARAMS = {"tgrp", "user", "transport", "lr", "trunk-context", "x"}

local n = 0 -- everything read is folded into it, so that no read is optimised away

local function touch(v)
    if v ~= nil then
        n = n + 1
    end
end

local function read_sdp(s)
    if s == nil then
        return
    end
    touch(s.version)
    touch(s.origin and s.origin.address)
    touch(s.connection and s.connection.address)
    for _, a in ipairs(s.attributes or {}) do
        touch(a.name)
    end
    for _, md in ipairs(s.media or {}) do
        touch(md.port)
        touch(md.direction)
        touch(md.ptime)
        for _, c in ipairs(md.codecs or {}) do
            touch(c.name)
            touch(c.rate)
        end
    end
end

local function read_message(m)
    if m == nil then
        return
    end
    for _, f in ipairs(MSG_FIELDS) do
        touch(m[f])
    end
    for _, h in ipairs(HEADERS) do
        touch(m:header(h))
        touch(#m:headers(h))
    end
    for _, p in ipairs(PARAMS) do
        touch(m:ruri_param(p))
    end
    touch(m:body())
    touch(m:raw())
    read_sdp(m:sdp())
    touch(m:label("fz"))
    touch(nets:src(m))
    touch(nets:dst(m))
    touch(nets:lookup(m.src_ip))
    local class, present = classes:classify_header(m, "User-Agent", "Server")
    touch(class)
    touch(present)
    touch(classes:classify(m:header("Server")))
    touch(win:src(m))
    touch(win:dst(m, 1, "to"))
    touch(win:count_src(m))
    touch(win:count_dst(m, "call_id"))
    touch(win:add(m.call_id))
    by_ua:inc(m:header("User-Agent") or "", m.method or tostring(m.status))
    local d = m.dialog
    if d ~= nil then
        touch(d.state)
    end
end

local function read_dialog(d)
    touch(d.call_id)
    touch(d.from)
    touch(d.to)
    touch(d.state)
    touch(d.start_time)
    touch(d.answer_time)
    touch(d.ringing_time)
    touch(d.end_time)
    touch(d.duration)
    touch(d.final_code)
    touch(d.end_reason)
    touch(d.ended_by)
    touch(d:label("fz"))
    local delay = d.setup_delay
    if delay ~= nil then
        delays:observe("setup", delay)
    end
    if d.state ~= "ended" then -- an ended call's d.vars refuses writes (lua/README.md)
        local v = d.vars
        v.seen = (v.seen or 0) + 1
        level:set(d.state or "none", v.seen)
    end
end

local function write_cdr(d, m)
    if not sip.events then
        return
    end
    local c = d.cdr
    if m ~= nil then
        copier:copy(m, c)
        m:copy_to(c, "fz_ruri", "ruri")
        m:copy_header_to(c, "fz_reason", "Reason", 5)
    end
    c.fz_n = n
    c.fz_state = d.state
    touch(c.fz_ua)
end

-- Every call event: the dialog, its fields for the events file, the message (nil for a timer).
local function on_dialog(d, m)
    read_dialog(d)
    write_cdr(d, m)
    read_message(m)
end

return {
    on_message = read_message,
    on_dialog_start = on_dialog,
    on_dialog_ringing = on_dialog,
    on_dialog_answer = on_dialog,
    on_dialog_end = on_dialog,
    on_transaction_end = function(t, m)
        touch(t.method)
        touch(t.code)
        touch(t.timeout)
        touch(t.time)
        touch(t:label("fz"))
        delays:observe("response", t.response_time)
        local d = t.dialog
        if d ~= nil then
            read_dialog(d)
        end
        read_message(m)
    end,
    on_register = function(r, m)
        touch(r.aor)
        touch(r.contact)
        touch(r.expires)
        touch(r.change)
        touch(r.time)
        touch(r:label("fz"))
        if sip.events then
            r.event.fz_aor = r.aor
            if m ~= nil then
                copier:copy(m, r.event)
            end
        end
        read_message(m)
    end,
    on_tick = function(now)
        level:set("tick", now % 60)
    end,
}
