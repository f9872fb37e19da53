-- sipscope.json: the few JSON pieces the rule side writes (event fields added by rules). Flat
-- values only: strings (invalid UTF-8 replaced by U+FFFD), finite numbers, booleans.
local M = {}

local byte, find, sub = string.byte, string.find, string.sub
local sort = table.sort
local string_buffer = require "string.buffer"

local REPLACEMENT = "\239\191\189" -- U+FFFD

-- Length of the well-formed UTF-8 sequence starting at i (RFC 3629), or 0.
local function utf8_len(s, i, n)
    local c = byte(s, i)
    local len
    local lo, hi = 0x80, 0xBF
    if c < 0x80 then
        return 1
    elseif c >= 0xC2 and c <= 0xDF then
        len = 2
    elseif c >= 0xE0 and c <= 0xEF then
        len = 3
        if c == 0xE0 then
            lo = 0xA0
        elseif c == 0xED then
            hi = 0x9F
        end
    elseif c >= 0xF0 and c <= 0xF4 then
        len = 4
        if c == 0xF0 then
            lo = 0x90
        elseif c == 0xF4 then
            hi = 0x8F
        end
    else
        return 0
    end
    if i + len - 1 > n then
        return 0
    end
    local c2 = byte(s, i + 1)
    if c2 < lo or c2 > hi then
        return 0
    end
    for j = i + 2, i + len - 1 do
        local cj = byte(s, j)
        if cj < 0x80 or cj > 0xBF then
            return 0
        end
    end
    return len
end

-- Any byte that put_string() must escape or check: control characters, '"', '\\' and every byte
-- of a multi-byte sequence. Most values (addresses, codecs, user agents) have none and go whole.
local SPECIAL = "[%z\1-\31\127-\255\"\\]"

-- Appends s to buf as a JSON string.
local function put_string(buf, s)
    if not find(s, SPECIAL) then
        buf:put('"', s, '"')
        return
    end
    buf:put('"')
    local i, n = 1, #s
    while i <= n do
        local c = byte(s, i)
        if c == 34 then
            buf:put('\\"')
            i = i + 1
        elseif c == 92 then
            buf:put("\\\\")
            i = i + 1
        elseif c < 32 or c == 127 then
            buf:putf("\\u%04x", c)
            i = i + 1
        else
            local len = utf8_len(s, i, n)
            if len == 0 then
                buf:put(REPLACEMENT)
                i = i + 1
            else
                buf:put(sub(s, i, i + len - 1))
                i = i + len
            end
        end
    end
    buf:put('"')
end

-- Appends v to buf as a JSON value: null for what JSON cannot hold.
local function put_value(buf, v)
    local t = type(v)
    if t == "string" then
        put_string(buf, v)
    elseif t == "boolean" then
        buf:put(v and "true" or "false")
    elseif t == "number" and v == v and v ~= math.huge and v ~= -math.huge then
        if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
            buf:putf("%d", v)
        else
            buf:putf("%.17g", v)
        end
    else
        buf:put("null")
    end
end

local out = string_buffer.new() -- reused: one string made per call of members()
local keys, n_keys = {}, 0 -- reused too; entries past n_keys are cleared

-- "\"a\":1,\"b\":\"x\"": the members of a flat table, keys sorted so output is stable.
function M.members(t)
    local n = 0
    for k in pairs(t) do
        if type(k) == "string" then
            n = n + 1
            keys[n] = k
        end
    end
    for i = n + 1, n_keys do
        keys[i] = nil
    end
    n_keys = n
    sort(keys)
    out:reset()
    for i = 1, n do
        if i > 1 then
            out:put(",")
        end
        put_string(out, keys[i])
        out:put(":")
        put_value(out, t[keys[i]])
    end
    return out:tostring()
end

return M
