-- sipscope.sdp: a small SDP reader (RFC 8866) for m:sdp(), run only when a rule asks. It keeps
-- what rules use: origin, session name, connection, and per media its port, protocol, formats,
-- codecs (rtpmap, or the static payload types of RFC 3551), direction and attributes. Lines it
-- does not know are skipped; it never fails on a bad body, it returns what it could read.
-- part(body, content_type) finds the SDP in a multipart body.
--
-- parse(body) -> {
--   version = 0, origin = {username, session_id, session_version, nettype, addrtype, address},
--   session_name = "-", connection = {nettype, addrtype, address} or nil,
--   attributes = {{name = "group", value = "BUNDLE 0"}...}, direction = "sendrecv" or nil,
--   media = {{media = "audio", port = 49172, proto = "RTP/AVP", formats = {"0", "8"},
--             connection = ..., codecs = {{pt = 0, name = "PCMU", rate = 8000}...},
--             direction = "sendrecv", ptime = 20, attributes = {...}}...}
-- }
local M = {}

local find, sub, byte = string.find, string.sub, string.byte

-- RFC 3551 table 4 and 5: static payload types.
local STATIC = {
    [0] = {"PCMU", 8000}, [3] = {"GSM", 8000}, [4] = {"G723", 8000}, [5] = {"DVI4", 8000},
    [6] = {"DVI4", 16000}, [7] = {"LPC", 8000}, [8] = {"PCMA", 8000}, [9] = {"G722", 8000},
    [10] = {"L16", 44100}, [11] = {"L16", 44100}, [12] = {"QCELP", 8000}, [13] = {"CN", 8000},
    [14] = {"MPA", 90000}, [15] = {"G728", 8000}, [16] = {"DVI4", 11025},
    [17] = {"DVI4", 22050}, [18] = {"G729", 8000}, [26] = {"JPEG", 90000},
    [31] = {"H261", 90000}, [32] = {"MPV", 90000}, [34] = {"H263", 90000},
}

local DIRECTIONS = {sendrecv = true, sendonly = true, recvonly = true, inactive = true}

local function words(s)
    local list, pos = {}, 1
    while true do
        local a, b = find(s, "[^ \t]+", pos)
        if not a then
            return list
        end
        list[#list + 1] = sub(s, a, b)
        pos = b + 1
    end
end

local function connection(v)
    local w = words(v)
    -- "IN IP4 203.0.113.1/127" (a multicast TTL) keeps only the address
    local addr = w[3] and (w[3]:match("^([^/]+)") or w[3])
    return {nettype = w[1], addrtype = w[2], address = addr}
end

local function attribute(target, v)
    local colon = find(v, ":", 1, true)
    local name, value = v, nil
    if colon then
        name, value = sub(v, 1, colon - 1), sub(v, colon + 1)
    end
    target.attributes[#target.attributes + 1] = {name = name, value = value}
    if DIRECTIONS[name] then
        target.direction = name
    elseif target.codecs and name == "rtpmap" and value then
        local pt, enc, rate, ch = value:match("^(%d+)%s+([^/%s]+)/(%d+)/?(%d*)")
        if pt then
            local c = target.by_pt[tonumber(pt)]
            if c then
                c.name, c.rate, c.channels = enc, tonumber(rate), tonumber(ch)
            end
        end
    elseif target.codecs and name == "fmtp" and value then
        local pt, params = value:match("^(%d+)%s+(.*)$")
        local c = pt and target.by_pt[tonumber(pt)]
        if c then
            c.fmtp = params
        end
    elseif name == "ptime" and value then
        target.ptime = tonumber(value)
    end
end

-- The content of the first application/sdp part of a multipart body (RFC 2046 5.1), ct being
-- the body's Content-Type ("multipart/mixed;boundary=b1"), or nil. Carriers' SIP-I/SIP-T
-- INVITEs (RFC 3204) carry the SDP beside the ISUP message this way. A part without headers is
-- text/plain; a nested multipart part is looked into, depth levels deep.
function M.part(body, ct, depth)
    local lct = ct:lower()
    -- boundary's value, from ct itself: a boundary is case-sensitive
    local at = find(lct, ";%s*boundary%s*=")
    if not at then
        return nil
    end
    local _, e = find(lct, "=%s*", at)
    local boundary
    if byte(ct, e + 1) == 34 then -- '"'
        boundary = ct:match('^"([^"]*)"', e + 1)
    else
        boundary = ct:match("^[^;%s]+", e + 1)
    end
    if boundary == nil or boundary == "" then
        return nil
    end
    local delim = "--" .. boundary
    -- delimiters start a line: at the body's start, or after a line break
    local i = sub(body, 1, #delim) == delim and 1 or nil
    if i == nil then
        local a = find(body, "\n" .. delim, 1, true)
        i = a and a + 1
    end
    while i do
        local after = i + #delim
        if sub(body, after, after + 1) == "--" then
            return nil -- the closing delimiter
        end
        local eol = find(body, "\n", after, true)
        if eol == nil then
            return nil
        end
        local nexti = find(body, "\n" .. delim, eol, true)
        local part = sub(body, eol + 1, nexti and nexti - 1 or #body)
        if nexti and byte(part, -1) == 13 then
            part = sub(part, 1, -2) -- the CR of the line break before the next delimiter
        end
        -- headers up to the first empty line; none (the part starts with one): text/plain
        local hb, he = find(part, "\r?\n\r?\n")
        if hb and not find(part, "^\r?\n") then
            local hdr = "\n" .. sub(part, 1, hb)
            local _, b = find(hdr:lower(), "\ncontent%-type%s*:%s*")
            local pct = b and hdr:match("^[^\r\n]*", b + 1)
            local lpct = pct and pct:lower()
            if lpct and find(lpct, "application/sdp", 1, true) then
                return sub(part, he + 1)
            elseif lpct and find(lpct, "^multipart/") and (depth or 0) < 3 then
                local inner = M.part(sub(part, he + 1), pct, (depth or 0) + 1)
                if inner then
                    return inner
                end
            end
        end
        i = nexti and nexti + 1
    end
    return nil
end

function M.parse(body)
    local s = {attributes = {}, media = {}}
    local cur = s
    local pos, n = 1, #body
    while pos <= n do
        local e = find(body, "\n", pos, true) or n + 1
        local line = sub(body, pos, e - 1)
        pos = e + 1
        if byte(line, -1) == 13 then
            line = sub(line, 1, -2)
        end
        if byte(line, 2) == 61 then -- "x="
            local t, v = sub(line, 1, 1), sub(line, 3)
            if t == "v" then
                s.version = tonumber(v)
            elseif t == "o" then
                local w = words(v)
                s.origin = {username = w[1], session_id = w[2], session_version = w[3],
                            nettype = w[4], addrtype = w[5], address = w[6]}
            elseif t == "s" then
                s.session_name = v
            elseif t == "c" then
                cur.connection = connection(v)
            elseif t == "m" then
                local w = words(v)
                local media = {media = w[1], port = tonumber((w[2] or ""):match("^(%d+)")),
                               proto = w[3], formats = {}, codecs = {}, by_pt = {},
                               attributes = {}}
                for i = 4, #w do
                    media.formats[#media.formats + 1] = w[i]
                    local pt = tonumber(w[i])
                    if pt then
                        local st = STATIC[pt]
                        local c = {pt = pt, name = st and st[1], rate = st and st[2]}
                        media.codecs[#media.codecs + 1] = c
                        media.by_pt[pt] = c
                    end
                end
                s.media[#s.media + 1] = media
                cur = media
            elseif t == "a" then
                attribute(cur, v)
            end
        end
    end
    for _, m in ipairs(s.media) do
        m.by_pt = nil
        m.connection = m.connection or s.connection
        m.direction = m.direction or s.direction or "sendrecv"
    end
    return s
end

return M
