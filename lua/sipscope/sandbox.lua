-- sipscope.sandbox: the environment each rule file runs in (DESIGN.md §6). An allowlist: copies
-- of string, table, math and bit (a rule cannot change another's), the safe base functions,
-- os.time and os.clock, and a require that knows only "sipscope" and "cjson". Everything else
-- a rule might reach for (io, ffi, debug, load...) raises a clear error, counted as kind=api.
local M = {}

local ctx -- box, timeout token, cjson_new, memory_limit, json_encode (native)

local FORBIDDEN = {
    io = true, ffi = true, jit = true, debug = true, package = true, module = true,
    load = true, loadstring = true, loadfile = true, dofile = true, setfenv = true,
    getfenv = true, newproxy = true, coroutine = true, print = true, gcinfo = true,
}

local BASE = {
    "assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring", "type",
    "unpack", "rawequal", "rawget", "rawset", "setmetatable",
}

local function forbid(prefix, allowed)
    return function(_, k)
        error("sipscope: " .. prefix .. tostring(k) .. " is not available to rules" ..
            (allowed and (" (" .. allowed .. ")") or ""), 2)
    end
end

local function copy(lib, except, prefix)
    local t = {}
    for k, v in pairs(lib) do
        if not except[k] then
            t[k] = v
        end
    end
    return setmetatable(t, {__index = forbid(prefix)})
end

-- A budget stop or a memory failure must not be swallowed by the rule's own pcall. box.stopped
-- says a stop was raised in this rule call, also when the error that came back is another
-- (LuaJIT turns an error inside an xpcall handler into "error in error handling").
local function rethrow(ok, ...)
    if not ok then
        local e = ...
        if e == ctx.timeout or ctx.box.stopped ~= 0 then
            error(ctx.timeout, 0)
        elseif ctx.box.mem_fail ~= 0 then
            error(e, 0)
        end
    end
    return ok, ...
end

local function safe_pcall(f, ...)
    return rethrow(pcall(f, ...))
end

-- The rule's handler runs protected: a stop that hits it comes back as the error value,
-- which rethrow hands on, instead of "error in error handling" that the rule could catch in
-- a loop forever. A handler that fails returns its own error (Lua says "error in error
-- handling"), which is more use.
local function safe_xpcall(f, handler)
    return rethrow(xpcall(f, function(e)
        if e == ctx.timeout or ctx.box.mem_fail ~= 0 then
            return e
        end
        local _, r = pcall(handler, e)
        return r
    end))
end

local function safe_getmetatable(o)
    if type(o) == "string" then
        return nil -- the string metatable would reach the shared string library
    end
    return getmetatable(o)
end

-- string.gsub with a function replacement, or a table one (through its __index), calls back
-- into Lua from C; a replacement that calls gsub again, and so on, used up the C stack and
-- crashed the process (LuaJIT counts no C call depth there). Past MAX_GSUB_DEPTH nested calls
-- it is an error instead. The depth is counted per rule call (box.seq), so that a call stopped
-- by its budget mid-way leaves nothing behind.
local MAX_GSUB_DEPTH = 32
local raw_gsub = string.gsub
local gsub_depth, gsub_seq = 0, -1

local function gsub_done(ok, ...)
    gsub_depth = gsub_depth - 1
    if not ok then
        error((...), 0)
    end
    return ...
end

local function guarded_gsub(s, pattern, repl, n)
    local t = type(repl)
    if t == "string" or t == "number" then -- no call back into Lua (a table's __index can)
        return raw_gsub(s, pattern, repl, n)
    end
    local seq = ctx.box.seq
    if gsub_seq ~= seq then
        gsub_seq, gsub_depth = seq, 0
    end
    if gsub_depth >= MAX_GSUB_DEPTH then
        error("sipscope: string.gsub nested more than " .. MAX_GSUB_DEPTH ..
            " deep in its replacement functions", 2)
    end
    gsub_depth = gsub_depth + 1
    return gsub_done(pcall(raw_gsub, s, pattern, repl, n))
end

local function safe_collectgarbage(opt)
    if opt == "count" then
        return collectgarbage("count")
    end
    error("sipscope: collectgarbage(" .. tostring(opt) .. ") is not available to rules " ..
        "(only \"count\")", 2)
end

-- cjson's buffers are plain malloc, outside the Lua heap and its cap. encode first bounds the
-- text a value makes: every byte of a string escaped as \u00XX is six, every hole of an array
-- a "null," (cjson writes holes up to the highest index unless the array is "excessively
-- sparse" by the instance's settings); a text that the --lua-memory heap could not hold as a
-- string is an error before cjson builds it (a table of 2,200 references to one 1 MB string
-- made 2.2 GB there, past every limit, and cjson spins past 2 GiB). The walk is Lua, under the
-- budget; past cjson's depth limit it is an error too, as cjson would raise one, but only
-- after writing everything before the deep part.
local JSON_DEPTH = 1000 -- cjson's default encode_max_depth, which rules cannot raise here

-- sparse: the instance's encode_sparse_array settings {convert, ratio, safe}.
local function json_bound(v, depth, sparse)
    local t = type(v)
    if t == "string" then
        return 6 * #v + 2
    elseif t ~= "table" then
        return 32 -- numbers, booleans, null
    elseif depth > JSON_DEPTH then
        return nil
    end
    local n, items, max, array = 2, 0, 0, true
    for k, x in next, v do
        local b = json_bound(x, depth + 1, sparse)
        if b == nil then
            return nil
        end
        items = items + 1
        if type(k) == "number" and k >= 1 and k == math.floor(k) then
            if k > max then
                max = k
            end
        else
            array = false
        end
        n = n + b + (type(k) == "string" and 6 * #k + 4 or 34)
    end
    local excessive = sparse.ratio > 0 and max > items * sparse.ratio and max > sparse.safe
    if array and max > items and not excessive then
        n = n + 5 * (max - items) -- the holes, as null
    end
    return n
end

-- A rule's cjson: its own instance, without what escapes the heap's cap. No new() (each
-- instance keeps a buffer), no encode_keep_buffer (the buffer stays between calls; it is off),
-- no encode_max_depth (cjson's recursion is C's stack); encode_sparse_array only with the
-- sparseness check on (ratio 0, or a huge "safe" index, turned {[2^31] = x} into 2^31 nulls).
local JSON_HIDDEN = {new = true, encode_keep_buffer = true, encode_max_depth = true}
local JSON_SAFE_MAX = 10000

local function rule_cjson()
    local inst = ctx.cjson_new()
    inst.encode_keep_buffer(false)
    local raw_encode, raw_sparse = inst.encode, inst.encode_sparse_array
    local sparse = {}
    sparse.convert, sparse.ratio, sparse.safe = raw_sparse()
    local t = {}
    for k, v in pairs(inst) do
        if not JSON_HIDDEN[k] then
            t[k] = v
        end
    end
    t.encode_sparse_array = function(convert, ratio, safe)
        if (ratio ~= nil and not (tonumber(ratio) and ratio >= 1)) or
            (safe ~= nil and not (tonumber(safe) and safe <= JSON_SAFE_MAX)) then
            error("sipscope: cjson.encode_sparse_array: a ratio below 1 or a safe index above " ..
                JSON_SAFE_MAX .. " is not available to rules (it lets one sparse key make " ..
                "billions of nulls)", 2)
        end
        sparse.convert, sparse.ratio, sparse.safe = raw_sparse(convert, ratio, safe)
        return sparse.convert, sparse.ratio, sparse.safe
    end
    -- The text must fit in what the heap has left, not only in the cap: cjson builds it in a
    -- malloc'd buffer that a failed push to Lua leaks (json_encode in core/lua_bridge.c runs
    -- it, and refuses first when the bound passes the room left).
    t.encode = function(v)
        local n = json_bound(v, 1, sparse)
        if n == nil then
            error("sipscope: cjson.encode: nested deeper than " .. JSON_DEPTH, 2)
        elseif n > ctx.memory_limit then
            error(("sipscope: cjson.encode: the text could take %d bytes, more than " ..
                "--lua-memory (%d)"):format(n, ctx.memory_limit), 2)
        end
        local text, why = ctx.json_encode(raw_encode, v, n)
        if text == nil then
            error("sipscope: cjson.encode: " .. why, 2)
        end
        return text
    end
    return setmetatable(t, {__index = forbid("cjson.")})
end

-- sip: the rule's sipscope module. Returns the rule's environment (its _G).
function M.env(sip)
    local env = {}
    for _, k in ipairs(BASE) do
        env[k] = _G[k]
    end
    env._G = env
    env._VERSION = _VERSION
    env.pcall = safe_pcall
    env.xpcall = safe_xpcall
    env.getmetatable = safe_getmetatable
    env.collectgarbage = safe_collectgarbage
    env.string = copy(string, {dump = true}, "string.")
    env.table = copy(table, {}, "table.")
    env.math = copy(math, {randomseed = true}, "math.") -- one generator, shared by all rules
    env.bit = copy(require "bit", {}, "bit.")
    env.os = setmetatable({time = os.time, clock = os.clock},
        {__index = forbid("os.", "only os.time and os.clock")})
    local cjson
    env.require = function(name)
        if name == "sipscope" then
            return sip
        elseif name == "cjson" then
            if not ctx.cjson_new then
                error("sipscope: cjson is not installed (Debian package lua-cjson)", 2)
            end
            cjson = cjson or rule_cjson() -- one instance per rule: its settings are its own
            return cjson
        end
        error("sipscope: require \"" .. tostring(name) .. "\" is not allowed in rules (only " ..
            "\"sipscope\" and \"cjson\")", 2)
    end
    return setmetatable(env, {
        __index = function(_, k)
            if FORBIDDEN[k] then
                error("sipscope: " .. tostring(k) .. " is not available to rules", 2)
            end
            return nil
        end,
        __metatable = false,
    })
end

-- Also changes the string library itself, which every string's methods reach ("x":dump()):
-- no string.dump (bytecode), and the guarded gsub.
function M.setup(c)
    ctx = c
    string.dump = nil -- luacheck: ignore 122 (the point: the shared library changes)
    string.gsub = guarded_gsub -- luacheck: ignore 122
end

return M
