-- sipscope.json: the few JSON pieces the rule side writes (event fields added by rules). Flat
-- values only: strings (invalid UTF-8 replaced by U+FFFD), finite numbers, booleans.
local M = {}

local byte, find, format, sub = string.byte, string.find, string.format, string.sub
local concat, sort = table.concat, table.sort

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

-- Any byte that quote() must escape or check: control characters, '"', '\\' and every byte of a
-- multi-byte sequence. Most values (addresses, codecs, user agents) have none and are quoted whole.
local SPECIAL = "[%z\1-\31\127-\255\"\\]"

function M.quote(s)
    if not find(s, SPECIAL) then
        return '"' .. s .. '"'
    end
    local out = {'"'}
    local i, n = 1, #s
    while i <= n do
        local c = byte(s, i)
        if c == 34 then
            out[#out + 1] = '\\"'
            i = i + 1
        elseif c == 92 then
            out[#out + 1] = "\\\\"
            i = i + 1
        elseif c < 32 or c == 127 then
            out[#out + 1] = format("\\u%04x", c)
            i = i + 1
        else
            local len = utf8_len(s, i, n)
            if len == 0 then
                out[#out + 1] = REPLACEMENT
                i = i + 1
            else
                out[#out + 1] = sub(s, i, i + len - 1)
                i = i + len
            end
        end
    end
    out[#out + 1] = '"'
    return concat(out)
end

function M.value(v)
    local t = type(v)
    if t == "string" then
        return M.quote(v)
    elseif t == "boolean" then
        return v and "true" or "false"
    elseif t == "number" and v == v and v ~= math.huge and v ~= -math.huge then
        if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
            return format("%d", v)
        end
        return format("%.17g", v)
    end
    return "null"
end

-- "\"a\":1,\"b\":\"x\"": the members of a flat table, keys sorted so output is stable.
function M.members(t)
    local keys = {}
    for k in pairs(t) do
        if type(k) == "string" then
            keys[#keys + 1] = k
        end
    end
    sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do
        parts[i] = M.quote(k) .. ":" .. M.value(t[k])
    end
    return concat(parts, ",")
end

return M
