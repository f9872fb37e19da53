-- cdr_enrich: adds fields to each call's line in the events file (--events): the signalling
-- addresses and transport of its first INVITE, the caller's User-Agent and the answering
-- side's Server, the post-dial delay, the answered codec, who hung up and the Q.850 cause of
-- the BYE or CANCEL. Without --events its fields would go nowhere: it then defines no hook.
-- It adds no metric and no label. Documentation: rules/README.md.

-- Configuration. Edit, then reload (SIGHUP): this rule declares no label.
local config = {
    -- false: this file declares nothing and costs nothing.
    enabled = false,
    -- The fields to add (true) or leave out (false). A field is absent from a line when the
    -- call never had it (no 18x: no pdd; no SDP in the 2xx: no codec...).
    fields = {
        src_ip = true,     -- first INVITE's source address ("192.0.2.1")
        src_port = true,   -- and port (number)
        dst_ip = true,     -- its destination address
        dst_port = true,   -- and port
        transport = true,  -- "udp", "tcp" or "ws"
        user_agent = true, -- the INVITE's User-Agent header
        server = true,     -- the 2xx's Server header (User-Agent when absent); for a call
                           -- not answered, the final response's
        pdd = true,        -- post-dial delay: seconds from the first INVITE to the first
                           -- 180 or 183 (milliseconds precision)
        codec = true,      -- first codec of the first audio stream in the 2xx's SDP ("PCMA")
        hangup = true,     -- "caller" or "callee": who sent the BYE (by its dialog tags)
        q850 = true,       -- cause number from "Reason: Q.850;cause=N" of the BYE or CANCEL
    },
    -- Header values are cut to this many bytes (at a UTF-8 character boundary).
    max_text = 128,
}

local sip = require "sipscope"

if not config.enabled or not sip.events then
    return {}
end

local F = config.fields
local max_text = config.max_text
local sub = string.sub
local find = string.find
local lower = string.lower
local byte = string.byte
local floor = math.floor

-- Header values go from the packet straight into the call's fields (m:copy_header_to), cut at
-- max_text bytes without splitting a UTF-8 character: no Lua string is made for them.
local function copy_server(m, c)
    if not m:copy_header_to(c, "server", "Server", max_text) then
        m:copy_header_to(c, "server", "User-Agent", max_text)
    end
end

local function is_digit(b)
    return b >= 48 and b <= 57
end

local function is_space(b)
    return b == 32 or b == 9
end

-- 16 from "Q.850;cause=16;text=...", or nil. Plain finds only (no Lua patterns, no loops:
-- see rules/README.md, Cost). The header comes from the wire: the cause must be one to three
-- digits (Q.850's are 1 to 127), so that "cause=nan", "cause=1e999" or a hex number gives no
-- field instead of an error that would count against the rule. Parameter names are
-- case-insensitive (RFC 3261 §7.3.1): "Cause=" is looked for in lower case, once the usual
-- spelling was not found.
local function cause_of(r)
    local p = find(r, "Q.850", 1, true) or find(r, "q.850", 1, true)
    if p == nil then
        return nil
    end
    local c = find(r, "cause=", p, true)
    if c == nil then
        r = lower(r)
        c = find(r, "cause=", p, true)
        if c == nil then
            return nil
        end
    end
    local e = #r
    local semi, comma = find(r, ";", c, true), find(r, ",", c, true)
    if semi ~= nil then
        e = semi - 1
    end
    if comma ~= nil and comma <= e then
        e = comma - 1
    end
    if is_space(byte(r, e)) then -- "cause=16 ;text=...": SWS before the semicolon
        e = e - 1
        if is_space(byte(r, e)) then
            e = e - 1
        end
    end
    if e < c + 6 or e > c + 8 then
        return nil
    end
    local b1, b2, b3 = byte(r, c + 6, e)
    if not is_digit(b1) or (b2 and not is_digit(b2)) or (b3 and not is_digit(b3)) then
        return nil
    end
    return tonumber(sub(r, c + 6, e))
end

-- The Q.850 cause among the Reason headers (RFC 3326): usually the first or only one.
local function q850_of(m)
    local first = m:header("Reason")
    if first == nil then
        return nil
    end
    local cause = cause_of(first)
    if cause ~= nil then
        return cause
    end
    local all = m:headers("Reason") -- "Reason: SIP;cause=200" first, Q.850 after: rare
    for i = 2, #all do
        cause = cause_of(all[i])
        if cause ~= nil then
            return cause
        end
    end
    return nil
end

local function codec_of(m)
    local sdp = m:sdp()
    if sdp == nil then
        return nil
    end
    for _, media in ipairs(sdp.media or {}) do
        if media.media == "audio" then
            local c = media.codecs and media.codecs[1]
            if c ~= nil then
                return c.name or tostring(c.pt)
            end
            return nil
        end
    end
    return nil
end

local hooks = {}

-- The first INVITE's fields, copied in one call to C (sip.field_copier): one m:copy_to or
-- m:copy_header_to per field cost several times more, in the rule's compiled code.
local from_invite = {}
for _, k in ipairs({"src_ip", "src_port", "dst_ip", "dst_port", "transport"}) do
    if F[k] then
        from_invite[k] = k
    end
end
if F.user_agent then
    from_invite.user_agent = {header = "User-Agent", max_bytes = max_text}
end
if next(from_invite) ~= nil then
    local copier = sip.field_copier(from_invite)
    hooks.on_dialog_start = function(d, m)
        copier:copy(m, d.cdr)
    end
end

-- The cause of a CANCEL, which comes before the 487 that ends the call. A table hook: no other
-- message reaches this rule.
if F.q850 then
    hooks.on_request = {
        CANCEL = function(m)
            local d = m.dialog
            if d and d.end_reason == nil then
                d.cdr.q850 = q850_of(m)
            end
        end,
    }
end

if F.server or F.codec then
    hooks.on_dialog_answer = function(d, m)
        local c = d.cdr
        if F.server then
            copy_server(m, c)
        end
        if F.codec then
            c.codec = codec_of(m)
        end
    end
end

-- The post-dial delay: from the first INVITE to the first 180 or 183, which the tracker keeps
-- (d.ringing_time; re-INVITEs' provisionals do not count).
local pdd = F.pdd

hooks.on_dialog_end = function(d, m)
    local c = d.cdr
    if pdd then
        local ringing = d.ringing_time
        if ringing then
            c.pdd = floor((ringing - d.start_time) * 1000 + 0.5) / 1000
        end
    end
    if not m then
        return -- a timer ended it
    end
    if not m.is_request then
        if F.server and d.answer_time == nil then
            copy_server(m, c)
        end
        return
    end
    local method = m.method
    if F.hangup then
        c.hangup = d.ended_by -- by the dialog tags of the BYE; nil when no BYE ended the call
    end
    if F.q850 and (method == "BYE" or method == "CANCEL") then
        c.q850 = q850_of(m)
    end
end

return hooks
