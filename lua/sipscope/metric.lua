-- sipscope.metric: rule metrics (sip.counter, sip.gauge, sip.histogram). Declared while a rule
-- file loads, created in the registry at commit (after the built-in families, so collisions are
-- refused), then updated from hooks:
--   c:inc(v1, ..., vk)        add 1          c:inc(v1, ..., vk, n)   add n (finite, >= 0)
--   g:set(v1, ..., vk, x)     set            g:inc(...[, n]) / g:dec(...[, n])
--   h:observe(v1, ..., vk, x)
-- Every amount, value and observation is finite, and so is every result (a value, a sum): an
-- update that breaks this raises (kind "api") and leaves the series as it was.
-- v1..vk are the label values in the declared order (strings, or numbers written as tostring
-- does). The table form c:inc({label = value, ...}[, n]) does the same by label name, at the
-- cost of a table per call. Series are cached per value; past the family's series cap new
-- label values go to the overflow series, counted each time, and are never cached.
local ffi = require "ffi"

local M = {}

local ctx -- api, native, cfg, phase()
local declared = {} -- in declaration order: {rule, kind, name, help, labels, buckets, cap, st}
local by_name = {}

local vals = ffi.new("const char *[12]")
local lens = ffi.new("size_t[12]")
local cacheable = ffi.new("int[1]")

local DEFAULT_BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
local MAX_FAMILIES = 1024 -- rule families per load: a rule cannot flood the registry
local MAX_LABELS, MAX_BUCKETS = 12, 24
local KEYS = {name = true, help = true, labels = true, buckets = true, max_series = true}

local function fail(msg, level)
    error("sipscope: " .. msg, level + 1)
end

local function label_string(st, v, i)
    local t = type(v)
    if t == "string" then
        return v
    elseif t == "number" and v == v then
        return tostring(v)
    end
    fail(st.kind .. " '" .. st.name .. "': label '" .. tostring(st.labels[i]) ..
        "' needs a string value, got " .. (t == "number" and "NaN" or t), 4)
end

-- The series for label values ... (raw: strings or numbers), through the C side; cached under
-- the raw values unless it is the overflow series.
local function miss(st, ...)
    local n = st.n
    if st.fam == nil then
        fail(st.kind .. " '" .. st.name .. "' can only be updated from hooks", 4)
    end
    -- Anchors the strings vals[] points to until C has read them. miss() runs interpreted
    -- (jit.off below), so the JIT cannot sink this table away.
    local keep = {} -- luacheck: ignore keep
    for i = 1, n do
        local s = label_string(st, (select(i, ...)), i)
        keep[i] = s
        vals[i - 1] = s
        lens[i - 1] = #s
    end
    local series = ctx.api.series(ctx.api.bridge, st.fam, vals, lens, n, cacheable)
    if cacheable[0] ~= 0 then
        if n == 0 then
            st.series0 = series
        else
            local node = st.cache
            for i = 1, n - 1 do
                local k = select(i, ...)
                local nxt = node[k]
                if nxt == nil then
                    nxt = {}
                    node[k] = nxt
                end
                node = nxt
            end
            node[(select(n, ...))] = series
        end
    end
    return series
end

jit.off(miss)

-- For 3 and more labels: a fixed-arity resolver generated once per label count. A loop over
-- select(i, ...) would leave the compiled trace at every call (measured in a hook: about 600 ns
-- for a 4-label update, against 60 ns for this).
local wide = {}
local function wide_resolver(n)
    local f = wide[n]
    if f == nil then
        local args = {}
        for i = 1, n do
            args[i] = "a" .. i
        end
        local list = table.concat(args, ", ")
        local src = {"local cache, miss, st = ...", "return function(" .. list .. ")",
                     "local t = cache[a1]"}
        for i = 2, n do
            src[#src + 1] = "if t == nil then return miss(st, " .. list .. ") end"
            src[#src + 1] = "t = t[a" .. i .. "]"
        end
        src[#src + 1] = "if t == nil then return miss(st, " .. list .. ") end"
        src[#src + 1] = "return t end"
        f = assert(loadstring(table.concat(src, "\n"), "=sipscope.metric.resolve" .. n))
        wide[n] = f
    end
    return f
end

-- resolve(...) -> the series for these label values; specialised for the common label counts
-- so that the hot path is one or two table lookups.
local function resolver(st)
    local n, cache = st.n, st.cache
    if n == 0 then
        return function()
            local s = st.series0
            if s == nil then
                s = miss(st)
            end
            return s
        end
    elseif n == 1 then
        return function(a)
            local s = cache[a]
            if s == nil then
                s = miss(st, a)
            end
            return s
        end
    elseif n == 2 then
        return function(a, b)
            local t = cache[a]
            local s = t and t[b]
            if s == nil then
                s = miss(st, a, b)
            end
            return s
        end
    end
    return wide_resolver(n)(cache, miss, st)
end

-- Label values by name, in declaration order.
local function from_table(st, t)
    local v = {}
    for k in pairs(t) do
        if st.index[k] == nil then
            fail(st.kind .. " '" .. st.name .. "' has no label '" .. tostring(k) .. "'", 4)
        end
    end
    for i, name in ipairs(st.labels) do
        v[i] = t[name]
        if v[i] == nil then
            fail(st.kind .. " '" .. st.name .. "': no value for label '" .. name .. "'", 4)
        end
    end
    return unpack(v, 1, st.n)
end

-- (labels..., [value]) or ({label = value...}, [value]) -> value, labels...
local function split(st, optional, ...)
    local n = st.n
    local c = select("#", ...)
    if n > 0 and type((...)) == "table" and c <= 2 then
        return (select(2, ...)), from_table(st, (...))
    end
    if c == n + 1 then
        return (select(n + 1, ...)), ...
    elseif c == n and optional then
        return nil, ...
    end
    fail(st.kind .. " '" .. st.name .. "' takes " .. n .. " label value" ..
        (n == 1 and "" or "s") .. (optional and " and an optional amount" or " and a value") ..
        ", got " .. c .. " argument" .. (c == 1 and "" or "s"), 3)
end

-- Finite: a counter at +Inf stays there for good, and a gauge or a histogram's sum at +Inf and
-- then -Inf is NaN (the C side refuses them too, and a result past the largest double).
local HUGE = math.huge

local function amount(st, v, what, nonneg)
    if type(v) ~= "number" or not (v > -HUGE and v < HUGE) or (nonneg and v < 0) then
        fail(st.kind .. " '" .. st.name .. "': " .. what .. " must be a finite " ..
            (nonneg and "number >= 0" or "number") .. ", got " ..
            (type(v) == "number" and tostring(v) or type(v)), 4)
    end
    return v
end

-- The positional update methods, generated once per (label count, amount optional, amount
-- >= 0): obj:m(v1, ..., vn[, x]) with n fixed parameters, so that no vararg is read on the fast
-- path (LuaJIT cannot compile VARG in a trace that starts inside the method, and a loop over
-- select(i, ...) leaves the trace: either made a 4-label update cost about 600 ns instead of
-- 60). The plain case (own object, string or number labels, a finite number, or no amount when
-- it is optional) goes straight to fn(series, sign * x); anything else goes, trailing nils
-- trimmed, to the general method, which raises the errors. So does an update fn refused (its
-- result would not be finite): the general method's fn refuses it again and raises.
local fast_chunks = {}
local function fast(obj, st, fn, sign, default, nonneg, general)
    local n, optional = st.n, default ~= nil
    local key = n .. (optional and "o" or "") .. (nonneg and "p" or "")
    local chunk = fast_chunks[key]
    if chunk == nil then
        local args = {}
        for i = 1, n do
            args[i] = "a" .. i
        end
        local labels = table.concat(args, ", ")
        local sep = n > 0 and ", " or ""
        local src = {"local obj, fn, sign, default, general, resolve, HUGE = ...",
                     "return function(self" .. sep .. labels .. ", v, extra)",
                     "if self == obj and extra == nil" ..
                         (n > 0 and " and type(a1) ~= 'table'" or "") .. " then",
                     "if v == nil then"}
        if optional then
            src[#src + 1] = (n > 0 and ("if a" .. n .. " ~= nil then ") or "") ..
                "if fn(resolve(" .. labels .. "), sign * default) == 0 then return end " ..
                "return general(self" .. sep .. labels .. ")" .. (n > 0 and " end" or "")
        end
        src[#src + 1] = "elseif type(v) == 'number' and v " .. (nonneg and ">= 0" or "> -HUGE") ..
            " and v < HUGE then if fn(resolve(" .. labels .. "), sign * v) == 0 then return end " ..
            "return general(self" .. sep .. labels .. ", v) end"
        src[#src + 1] = "end"
        src[#src + 1] = "if extra ~= nil then return general(self" .. sep .. labels ..
            ", v, extra) end"
        src[#src + 1] = "if v ~= nil then return general(self" .. sep .. labels .. ", v) end"
        for i = n, 1, -1 do
            src[#src + 1] = "if a" .. i .. " ~= nil then return general(self, " ..
                table.concat(args, ", ", 1, i) .. ") end"
        end
        src[#src + 1] = "return general(self) end"
        chunk = assert(loadstring(table.concat(src, "\n"), "=sipscope.metric.update" .. key))
        fast_chunks[key] = chunk
    end
    return chunk(obj, fn, sign, default, general, st.resolve, HUGE)
end

-- Builds obj's methods. Every method checks that it was called with ':' on its own object.
local function methods(obj, st)
    local api = ctx.api
    local resolve = resolver(st)
    st.resolve = resolve
    local m = {}

    local function wrong_self()
        fail("call " .. st.kind .. " methods with ':' (" .. st.name .. ":...)", 3)
    end

    -- update(fn, sign, optional): a method applying fn(series, sign * value) after parsing.
    local function slow(fn, sign, optional, default, nonneg, what)
        local function apply(v, ...)
            if v == nil and optional then
                v = default
            end
            local series = resolve(...)
            if fn(series, sign * amount(st, v, what, nonneg)) ~= 0 then
                fail(st.kind .. " '" .. st.name .. "': " .. what .. " " .. tostring(v) ..
                    " would make its " .. (st.kind == "histogram" and "sum" or "value") ..
                    " infinite; left as it was", 3)
            end
        end
        return function(self, ...)
            if self ~= obj then
                wrong_self()
            end
            apply(split(st, optional, ...))
        end
    end

    if st.kind == "counter" then
        m.inc = fast(obj, st, api.counter_add, 1, 1, true,
            slow(api.counter_add, 1, true, 1, true, "the amount"))
    elseif st.kind == "gauge" then
        m.set = fast(obj, st, api.gauge_set, 1, nil, false,
            slow(api.gauge_set, 1, false, nil, false, "the value"))
        m.inc = fast(obj, st, api.gauge_add, 1, 1, false,
            slow(api.gauge_add, 1, true, 1, false, "the amount"))
        m.dec = fast(obj, st, api.gauge_add, -1, 1, false,
            slow(api.gauge_add, -1, true, 1, false, "the amount"))
    else
        m.observe = fast(obj, st, api.observe, 1, nil, false,
            slow(api.observe, 1, false, nil, false, "the observation"))
    end
    return m
end

local function valid_name(s, first, rest)
    return type(s) == "string" and s:find("^[" .. first .. "][" .. rest .. "]*$") ~= nil
end

-- The registry's caps (core/metrics.h: names and help are printed on every scrape), checked
-- here too so that the error points at the declaration. A text too long to print is cut.
local function too_long(what, s, max)
    if type(s) == "string" and #s > max then
        return ("%s '%s...' is %d bytes, more than %d"):format(what, s:sub(1, 40), #s, max)
    end
end

-- sip.counter{...} and friends, while a rule file loads.
function M.declare(rule, kind, spec)
    if ctx.phase() ~= "load" then
        fail("sip." .. kind .. " must be called at the top level of a rule file", 3)
    end
    if type(spec) ~= "table" then
        fail("sip." .. kind .. " takes a table: sip." .. kind ..
            "{name = ..., help = ..., labels = {...}}", 3)
    end
    for k in pairs(spec) do
        if not KEYS[k] or (k == "buckets" and kind ~= "histogram") then
            fail("sip." .. kind .. ": unknown field '" .. tostring(k) .. "'", 3)
        end
    end
    local name = spec.name
    local long = too_long("the name", name, ctx.cfg.max_name_len)
    if long then
        fail("sip." .. kind .. ": " .. long, 3)
    end
    if not valid_name(name, "a-zA-Z_:", "a-zA-Z0-9_:") then
        fail("sip." .. kind .. ": name must match [a-zA-Z_:][a-zA-Z0-9_:]*, got " ..
            tostring(name), 3)
    end
    if name:find("^sipscope_") or name:find("^process_") then
        fail("metric '" .. name .. "': the sipscope_ and process_ prefixes are the engine's", 3)
    end
    if by_name[name] then
        fail("metric '" .. name .. "' is declared twice (first by rule " ..
            by_name[name].rule.name .. ")", 3)
    end
    if #declared >= MAX_FAMILIES then
        fail("more than " .. MAX_FAMILIES .. " rule metric families", 3)
    end
    if spec.help ~= nil and type(spec.help) ~= "string" then
        fail("metric '" .. name .. "': help must be a string", 3)
    end
    if spec.help and #spec.help > ctx.cfg.max_help_len then
        fail(("metric '%s': the help is %d bytes, more than %d"):format(name, #spec.help,
            ctx.cfg.max_help_len), 3)
    end
    local labels = spec.labels or {}
    if type(labels) ~= "table" or #labels > MAX_LABELS then
        fail("metric '" .. name .. "': labels must be a list of at most " .. MAX_LABELS ..
            " names", 3)
    end
    local index = {}
    for i, l in ipairs(labels) do
        long = too_long("the label name", l, ctx.cfg.max_label_name_len)
        if long then
            fail("metric '" .. name .. "': " .. long, 3)
        end
        if not valid_name(l, "a-zA-Z_", "a-zA-Z0-9_") or l:find("^__") then
            fail("metric '" .. name .. "': invalid label name " .. tostring(l), 3)
        end
        if index[l] or (kind == "histogram" and l == "le") then
            fail("metric '" .. name .. "': label '" .. l .. "' is " ..
                (index[l] and "listed twice" or "reserved for histogram buckets"), 3)
        end
        index[l] = i
    end
    local buckets = {}
    if kind == "histogram" then
        local b = spec.buckets or DEFAULT_BUCKETS
        if type(b) ~= "table" or #b > MAX_BUCKETS then
            fail("histogram '" .. name .. "': buckets must be a list of at most " ..
                MAX_BUCKETS .. " numbers", 3)
        end
        for i, v in ipairs(b) do
            if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge or
                (i > 1 and v <= b[i - 1]) then
                fail("histogram '" .. name .. "': buckets must be finite and increasing", 3)
            end
            buckets[i] = v
        end
    end
    local cap = spec.max_series or ctx.cfg.max_series
    if type(cap) ~= "number" or cap < 1 or cap > 1000000 or cap ~= math.floor(cap) then
        fail("metric '" .. name .. "': max_series must be a whole number from 1 to 1000000", 3)
    end
    local list = {}
    for i, l in ipairs(labels) do
        list[i] = l
    end
    local st = {kind = kind, name = name, help = spec.help or "", labels = list, index = index,
                n = #list, buckets = buckets, cap = cap, cache = {}, rule = rule}
    local obj = {}
    local m = methods(obj, st)
    st.obj = obj
    declared[#declared + 1] = st
    by_name[name] = st
    return setmetatable(obj, {
        __index = m,
        __newindex = function()
            fail(kind .. " '" .. name .. "' is read-only", 2)
        end,
        __tostring = function()
            return "sipscope " .. kind .. " " .. name
        end,
        __metatable = false,
    })
end

-- The names a family's samples print under.
local function sample_names(st)
    if st.kind == "histogram" then
        return {st.name .. "_bucket", st.name .. "_sum", st.name .. "_count"}
    end
    return {st.name}
end

-- Creates every declared family; raises "path: reason" for the first one refused. All are
-- checked before any is created: a refused one leaves the registry as it was (a failed reload
-- keeps the old rules, and must not leave the new ones' families behind, exported and holding
-- their names until restart).
function M.commit()
    local samples = {}
    for _, st in ipairs(declared) do
        local ok, why = ctx.native.family_check(st.name, st.help, st.kind, st.labels, st.buckets,
                                                st.cap)
        if not ok then
            error(st.rule.path .. ": " .. why, 0)
        end
        for _, sample in ipairs(sample_names(st)) do
            local other = samples[sample]
            if other then
                error(st.rule.path .. ": metric '" .. st.name .. "' collides with '" ..
                    other.name .. "' of " .. other.rule.path .. " (their samples would share " ..
                    "the name " .. sample .. ")", 0)
            end
            samples[sample] = st
        end
    end
    for _, st in ipairs(declared) do
        local fam, why = ctx.native.family(st.name, st.help, st.kind, st.labels, st.buckets, st.cap)
        if not fam then
            error(st.rule.path .. ": " .. why, 0)
        end
        st.fam = ffi.cast("void *", fam)
    end
end

-- Empties the series caches of rule's families (quarantine: a rule that ran out of memory may
-- hold most of it there, label values by the thousand). In place: the resolvers hold the
-- cache tables. The families stay; a cache refills only if the rule runs again.
function M.drop_caches(rule)
    local clear = require "table.clear"
    for _, st in ipairs(declared) do
        if st.rule == rule then
            clear(st.cache)
        end
    end
end

function M.describe(rule)
    local out = {}
    for _, st in ipairs(declared) do
        if st.rule == rule then
            out[#out + 1] = st.name .. "(" .. st.kind ..
                (st.n > 0 and (":" .. table.concat(st.labels, ",")) or "") .. ")"
        end
    end
    return table.concat(out, ",")
end

function M.setup(c)
    ctx = c
end

return M
