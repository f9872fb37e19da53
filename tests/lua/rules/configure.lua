-- configure: writes a copy of a bundled rule (rules/NAME.lua) with its configuration table
-- changed, as an operator would edit it. Every bundled rule keeps its settings in one table
-- that starts with the line `local config = {` and ends with the first line `}`; the fields
-- given here replace the shipped ones (whole values: a nested table is replaced, not merged).
-- Used by the rule specs, the offline end-to-end test and the benchmark.
--
--   local configure = dofile("tests/lua/rules/configure.lua")
--   configure.text("rules/carrier.lua", {enabled = true, carriers = {...}})  --> rule text
--   configure.write("rules/carrier.lua", {...}, DIR)   --> path of DIR/carrier.lua
--
-- As a script (trusted, run by sipscope --lua-script):
--   sipscope --lua-script tests/lua/rules/configure.lua RULE.lua OUTDIR '{enabled = true}'
local M = {}

local function serialize(v, indent)
    local t = type(v)
    if t == "string" then
        return ("%q"):format(v)
    elseif t == "number" then
        if v == math.floor(v) and math.abs(v) < 2 ^ 53 then
            return ("%d"):format(v)
        end
        return ("%.17g"):format(v)
    elseif t == "boolean" then
        return tostring(v)
    elseif t ~= "table" then
        error("configure: cannot write a " .. t)
    end
    local inner = indent .. "    "
    local parts = {}
    local n = #v
    for i = 1, n do
        parts[#parts + 1] = inner .. serialize(v[i], inner) .. ","
    end
    local keys = {}
    for k in pairs(v) do
        if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then
            keys[#keys + 1] = k
        end
    end
    table.sort(keys, function(a, b)
        return tostring(a) < tostring(b)
    end)
    for _, k in ipairs(keys) do
        local key
        if type(k) == "string" and k:match("^[%a_][%w_]*$") then
            key = k
        else
            key = "[" .. serialize(k, inner) .. "]"
        end
        parts[#parts + 1] = inner .. key .. " = " .. serialize(v[k], inner) .. ","
    end
    if #parts == 0 then
        return "{}"
    end
    return "{\n" .. table.concat(parts, "\n") .. "\n" .. indent .. "}"
end
M.serialize = serialize

local function read(path)
    local f = assert(io.open(path, "rb"))
    local text = f:read("*a")
    f:close()
    return text
end

-- The rule text split around its configuration table: before, the table's text, after.
local function split(text, path)
    local s, e = text:find("\nlocal config = {\n", 1, true)
    if not s then
        error("configure: " .. path .. " has no line `local config = {`")
    end
    local close = text:find("\n}\n", e, true)
    if not close then
        error("configure: " .. path .. ": the configuration table does not end with `}`")
    end
    return text:sub(1, s), text:sub(s + #"\nlocal config = ", close + 1), text:sub(close + 3)
end

-- The shipped configuration of a rule file, as a table.
function M.defaults(path)
    local _, block = split(read(path), path)
    return assert(loadstring("return " .. block, "=" .. path))()
end

-- The rule's text with the fields of overrides replacing the shipped ones.
function M.text(path, overrides)
    local text = read(path)
    local before, block, after = split(text, path)
    local config = assert(loadstring("return " .. block, "=" .. path))()
    for k, v in pairs(overrides or {}) do
        config[k] = v
    end
    return before .. "local config = " .. serialize(config, "") .. "\n" .. after
end

-- Writes the configured copy to dir (same file name); returns its path.
function M.write(path, overrides, dir)
    local out = dir .. "/" .. path:match("([^/]+)$")
    local f = assert(io.open(out, "wb"))
    f:write(M.text(path, overrides))
    f:close()
    return out
end

if arg and arg[0] and arg[0]:match("configure%.lua$") and arg[1] then
    local overrides = assert(loadstring("return " .. (arg[3] or "{}"), "=overrides"))()
    io.write(M.write(arg[1], overrides, assert(arg[2], "usage: configure.lua RULE OUTDIR [TABLE]")),
        "\n")
end

return M
