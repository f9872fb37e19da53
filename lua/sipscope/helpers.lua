-- sipscope.helpers: sip.cidr_set, sip.classifier and sip.window, the rule helpers implemented in
-- C (core/cidr.h, core/classify.h, core/window.h) for what Lua would do slowly per message.
-- They are built while a rule file loads; lookups run in hooks and never allocate in C. The C
-- objects belong to the rules state and are freed with it (at reload or exit).
--
--   local carriers = sip.cidr_set{["10.0.0.0/8"] = "acme", ["2001:db8::/32"] = "blue"}
--   carriers:lookup("10.1.2.3")  --> "acme"       (nil when no prefix matches)
--   carriers:src(m), carriers:dst(m)  -- the message's source / destination address, no text
--   local trusted = sip.cidr_set{"192.0.2.0/24", "198.51.100.7"}   -- a list: values are true
--
--   local ua = sip.classifier{
--       {"prefix", "Asterisk", "asterisk"},                -- kind, pattern, class
--       {"contains", "yealink", "yealink", nocase = true},
--       {kind = "glob", pattern = "Cisco-*/1?.*", class = "cisco"},
--   }
--   ua:classify(m:header("User-Agent"))  --> the class of the first matching rule, or nil
--   ua:classify_header(m, "User-Agent", "Server")  --> the same without making the text (the
--       Server header when there is no User-Agent), and whether m has either header
-- A lookup looks at a value's first 1,024 bytes, and a classifier whose worst case passes a
-- work bound is refused at load (core/classify.h, CLASSIFY_MAX_VALUE and CLASSIFY_MAX_COST):
-- a lookup is one C call that the rule budget cannot stop, on values a packet may carry.
--
--   local invites = sip.window{seconds = 10, buckets = 10, max_keys = 10000}
--   invites:add(m.src_ip [, n])  --> events of that key in the last 10 s, these included
--   invites:count(key)           --> the same without adding
--   invites:src(m [, n]), invites:dst(m [, n])  -- add(m.src_ip [, n]) without making the text
-- Window time is the packet time of the event being handled (the engine clock).
--
--   local start = sip.field_copier{src_ip = "src_ip", src_port = "src_port",
--                                  user_agent = {header = "User-Agent", max_bytes = 128}}
--   start:copy(m, d.cdr)  -- m:copy_to / m:copy_header_to for each field, in one call to C
local ffi = require "ffi"
local table_clear = require "table.clear"

local M = {}

local MEMO = 256 -- classifier results remembered per classifier
local NO_CLASS = {}
local NO_HEADER = -2 -- api.classify_header: the message has no such header (LB_NO_HEADER)

local ctx -- api, native, box, phase(), is_message(m), header_id(name), key_fields,
-- check_field_name(name, level), copy_fields(m, c, entries, n, list, clash),
-- engine_field_among(sorted names)

local function at_load(name)
    if ctx.phase() ~= "load" then
        error("sipscope: sip." .. name .. " must be called at the top level of a rule file", 3)
    end
end

local function readonly(name, methods)
    return setmetatable({}, {
        __index = methods,
        __newindex = function()
            error("sipscope: a " .. name .. " is read-only", 2)
        end,
        __tostring = function()
            return "sipscope " .. name
        end,
        __metatable = false,
    })
end

-- CIDR sets ----------------------------------------------------------------------------------

function M.cidr_set(spec)
    at_load("cidr_set")
    if type(spec) ~= "table" then
        error("sipscope: sip.cidr_set takes a table: {[\"10.0.0.0/8\"] = value, ...} or a " ..
            "list of prefixes", 2)
    end
    local prefixes, n = {}, 0
    for k, v in pairs(spec) do
        local prefix, value = k, v
        if type(k) == "number" then
            prefix, value = v, true -- list form: membership
        end
        if type(prefix) ~= "string" then
            error("sipscope: sip.cidr_set: prefixes are strings like \"10.0.0.0/8\", got " ..
                type(prefix), 2)
        end
        if prefixes[prefix] == nil then
            n = n + 1
        end
        prefixes[prefix] = value
    end
    local ud, why = ctx.native.cidr_new(math.max(n, 1))
    if not ud then
        error("sipscope: sip.cidr_set: " .. why, 2)
    end
    -- Values are kept here; C maps prefixes to their index. Sorted so that ids are stable.
    local sorted = {}
    for prefix in pairs(prefixes) do
        sorted[#sorted + 1] = prefix
    end
    table.sort(sorted)
    local values, ids = {}, {}
    for _, prefix in ipairs(sorted) do
        local v = prefixes[prefix]
        local id = ids[v]
        if id == nil then
            values[#values + 1] = v
            id = #values - 1
            ids[v] = id
        end
        local ok, reason = ctx.native.cidr_add(ud, prefix, id)
        if not ok then
            error("sipscope: sip.cidr_set: " .. reason, 2)
        end
    end
    local set = ffi.cast("const void *", ud)
    local api, box, is_message = ctx.api, ctx.box, ctx.is_message

    local function of_message(m, dst, what)
        if not is_message(m) then
            error("sipscope: set:" .. what .. "(m) takes the message of the running hook", 3)
        end
        local id = api.cidr_lookup_msg(set, box, dst)
        if id >= 0 then
            return values[id + 1]
        end
        return nil
    end

    return readonly("CIDR set", {
        lookup = function(_, ip)
            if type(ip) ~= "string" then
                if ip == nil then
                    return nil
                end
                error("sipscope: set:lookup(ip) takes an address as text, got " .. type(ip), 2)
            end
            local id = api.cidr_lookup_text(set, ip, #ip)
            if id >= 0 then
                return values[id + 1]
            end
            return nil
        end,
        src = function(_, m)
            return (of_message(m, 0, "src"))
        end,
        dst = function(_, m)
            return (of_message(m, 1, "dst"))
        end,
        size = function()
            return n
        end,
    })
end

-- Classifiers --------------------------------------------------------------------------------

-- The fields of a classifier rule: {kind, pattern, class} or by name, and nocase.
local RULE_KEYS = {true, true, true, kind = true, pattern = true, class = true, nocase = true}

function M.classifier(rules)
    at_load("classifier")
    if type(rules) ~= "table" or #rules == 0 then
        error("sipscope: sip.classifier takes a list of rules: {{\"prefix\", \"Asterisk\", " ..
            "\"asterisk\"}, ...}", 2)
    end
    local ud, why = ctx.native.classify_new(#rules)
    if not ud then
        error("sipscope: sip.classifier: " .. why, 2)
    end
    local classes, ids = {}, {}
    for i, r in ipairs(rules) do
        if type(r) ~= "table" then
            error("sipscope: sip.classifier: rule " .. i .. " is not a table", 2)
        end
        local kind, pattern, class = r.kind or r[1], r.pattern or r[2], r.class
        if class == nil then
            class = r[3]
        end
        if type(kind) ~= "string" or type(pattern) ~= "string" or class == nil then
            error("sipscope: sip.classifier: rule " .. i .. " needs a kind, a pattern and a " ..
                "class", 2)
        end
        -- A misspelt field (no_case = true) was ignored: the rule then matched with case.
        for k in pairs(r) do
            if not RULE_KEYS[k] then
                error("sipscope: sip.classifier: rule " .. i .. ": unknown field '" ..
                    tostring(k) .. "' (kind, pattern, class, nocase)", 2)
            end
        end
        if r.nocase ~= nil and type(r.nocase) ~= "boolean" then
            error("sipscope: sip.classifier: rule " .. i .. ": nocase is true or false, got " ..
                type(r.nocase), 2)
        end
        local id = ids[class]
        if id == nil then
            classes[#classes + 1] = class
            id = #classes - 1
            ids[class] = id
        end
        local ok, reason = ctx.native.classify_add(ud, kind, pattern, r.nocase and true or false,
            id)
        if not ok then
            error("sipscope: sip.classifier: rule " .. i .. ": " .. reason, 2)
        end
    end
    local c = ffi.cast("void *", ud) -- not const: classify_header writes the classifier's memo
    local api, box, is_message, header_id = ctx.api, ctx.box, ctx.is_message, ctx.header_id
    -- The results for the last MEMO distinct values (NO_CLASS: none matched): header values
    -- such as User-Agent repeat, and a table lookup costs less than the C matcher.
    local memo, n_memo = {}, 0
    return readonly("classifier", {
        classify = function(_, value)
            if type(value) ~= "string" then
                if value == nil then
                    return nil
                end
                error("sipscope: classifier:classify(value) takes a string, got " ..
                    type(value), 2)
            end
            local class = memo[value]
            if class == nil then
                local id = api.classify_lookup(c, value, #value)
                if id >= 0 then
                    class = classes[id + 1]
                else
                    class = NO_CLASS
                end
                if n_memo >= MEMO then
                    table_clear(memo)
                    n_memo = 0
                end
                memo[value] = class
                n_memo = n_memo + 1
            end
            if class == NO_CLASS then
                return nil
            end
            return class
        end,
        -- The class of m's first `name` header (the `fallback` header's when m has none),
        -- matched in C where the parser found it: no Lua string is made. Returns the class or
        -- nil, and whether m has either header.
        classify_header = function(_, m, name, fallback)
            if not is_message(m) then
                error("sipscope: classifier:classify_header(m, name[, fallback]) takes the " ..
                    "message of the running hook", 2)
            end
            if type(name) ~= "string" or (fallback ~= nil and type(fallback) ~= "string") then
                error("sipscope: classifier:classify_header(m, name[, fallback]): header " ..
                    "names are strings", 2)
            end
            local id = api.classify_header(c, box, header_id(name), name, #name)
            if id == NO_HEADER and fallback ~= nil then
                id = api.classify_header(c, box, header_id(fallback), fallback, #fallback)
            end
            if id >= 0 then
                return classes[id + 1], true
            end
            return nil, id ~= NO_HEADER
        end,
    })
end

-- Sliding windows ----------------------------------------------------------------------------

local WINDOW_KEYS = {seconds = true, buckets = true, max_keys = true}

function M.window(spec)
    at_load("window")
    if type(spec) ~= "table" then
        error("sipscope: sip.window takes a table: {seconds = 10, buckets = 10, " ..
            "max_keys = 10000}", 2)
    end
    for k in pairs(spec) do
        if not WINDOW_KEYS[k] then
            error("sipscope: sip.window: unknown field '" .. tostring(k) .. "'", 2)
        end
    end
    local seconds, buckets, keys = spec.seconds, spec.buckets or 10, spec.max_keys or 10000
    if type(seconds) ~= "number" or type(buckets) ~= "number" or type(keys) ~= "number" then
        error("sipscope: sip.window: seconds, buckets and max_keys are numbers", 2)
    end
    -- C takes whole counts: buckets = 2.5 was a window of 2 buckets, said nowhere.
    if buckets ~= math.floor(buckets) or keys ~= math.floor(keys) then
        error("sipscope: sip.window: buckets and max_keys are whole numbers, got " ..
            tostring(buckets) .. " and " .. tostring(keys), 2)
    end
    local ud, why = ctx.native.window_new(seconds, buckets, keys)
    if not ud then
        error("sipscope: sip.window: " .. why, 2)
    end
    local w = ffi.cast("void *", ud)
    local api, box = ctx.api, ctx.box

    local function key_of(key, what)
        if box.gen == 0 then
            error("sipscope: window:" .. what .. " can only be used in hooks", 3)
        end
        local t = type(key)
        if t == "number" then
            return tostring(key)
        elseif t ~= "string" then
            error("sipscope: window:" .. what .. "(key) takes a string, got " .. t, 3)
        end
        return key
    end

    local is_message, key_fields = ctx.is_message, ctx.key_fields

    -- Keyed by the message's address text and optionally one of its fields, made in C (see
    -- api_window_msg): n events added, or with n == nil for the count methods, counted only.
    local function of_message(m, n, dst, with, what)
        if not is_message(m) then
            error("sipscope: window:" .. what .. "(m) takes the message of the running hook", 3)
        end
        local field = -1
        if with ~= nil then
            field = key_fields[with]
            if field == nil then
                error("sipscope: window:" .. what .. ": the key can carry call_id, from, " ..
                    "from_tag, to, to_tag or branch after the address, not " .. tostring(with), 3)
            end
        end
        local c = api.window_msg(api.bridge, w, dst, field, n or -1)
        if c == 0xffffffffffffffffULL then
            return nil -- no address (not IP)
        elseif c == 0xfffffffffffffffeULL then
            error("sipscope: window:" .. what .. ": out of memory for the key", 3)
        end
        return (tonumber(c))
    end

    -- The n of add(key, n), src(m, n) and dst(m, n): 1 when nil. what names the method and its
    -- arguments in the error.
    local function amount(n, what)
        if n == nil then
            return 1
        elseif type(n) ~= "number" or n < 0 or n > 4294967295 or n ~= math.floor(n) then
            error("sipscope: window:" .. what .. ": n is a whole number >= 0", 3)
        end
        return n
    end

    return readonly("window", {
        add = function(_, key, n)
            key = key_of(key, "add")
            n = amount(n, "add(key, n)")
            return (tonumber(api.window_add(w, key, #key, box.time, n)))
        end,
        count = function(_, key)
            key = key_of(key, "count")
            return (tonumber(api.window_count(w, key, #key, box.time)))
        end,
        src = function(_, m, n, with)
            return (of_message(m, amount(n, "src(m, n)"), 0, with, "src"))
        end,
        dst = function(_, m, n, with)
            return (of_message(m, amount(n, "dst(m, n)"), 1, with, "dst"))
        end,
        count_src = function(_, m, with)
            return (of_message(m, nil, 0, with, "count_src"))
        end,
        count_dst = function(_, m, with)
            return (of_message(m, nil, 1, with, "count_dst"))
        end,
    })
end

-- Field copiers --------------------------------------------------------------------------------

-- What a copier copies from a message (enum lb_copy_kind, core/lua_bridge.c), besides
-- ctx.key_fields (call_id, from, from_tag, to, to_tag, branch) and headers.
local COPY_ADDR, COPY_PORT, COPY_TRANSPORT, COPY_STR, COPY_HEADER = 0, 1, 2, 3, 4
local COPY_FROM = {src_ip = {COPY_ADDR, 0}, dst_ip = {COPY_ADDR, 1}, src_port = {COPY_PORT, 0},
                   dst_port = {COPY_PORT, 1}, transport = {COPY_TRANSPORT, 0}}
local COPY_HEADER_KEYS = {header = true, max_bytes = true}

function M.field_copier(spec)
    at_load("field_copier")
    if type(spec) ~= "table" then
        error("sipscope: sip.field_copier takes a table: {name = \"src_ip\", " ..
            "name2 = {header = \"User-Agent\", max_bytes = 128}, ...}", 2)
    end
    local names = {}
    for name in pairs(spec) do
        ctx.check_field_name(name, 3)
        names[#names + 1] = name
    end
    table.sort(names)
    local n = #names
    local clash = ctx.engine_field_among(names) -- copying it into d.cdr is an error
    local entries = ffi.new("struct lb_copy[?]", math.max(n, 1))
    local list = {} -- the same fields for r.event; its strings also keep entries' pointers alive
    for i, name in ipairs(names) do
        local what, e, f = spec[name], entries[i - 1], {name = name}
        e.name, e.name_len, e.max = name, #name, -1
        if type(what) == "string" then
            local from = COPY_FROM[what]
            if from == nil and ctx.key_fields[what] ~= nil then
                from = {COPY_STR, ctx.key_fields[what]}
            end
            if from == nil then
                error("sipscope: sip.field_copier: " .. name .. " = '" .. what .. "': a copier " ..
                    "copies src_ip, dst_ip, src_port, dst_port, transport, call_id, from, " ..
                    "from_tag, to, to_tag, branch or {header = name}; m:copy_to the rest", 2)
            end
            e.kind, e.arg = from[1], from[2]
            f.what = what
        elseif type(what) == "table" then
            for k in pairs(what) do
                if not COPY_HEADER_KEYS[k] then
                    error("sipscope: sip.field_copier: " .. name .. ": unknown field '" ..
                        tostring(k) .. "' (header, max_bytes)", 2)
                end
            end
            local header, max = what.header, what.max_bytes
            if type(header) ~= "string" or header == "" then
                error("sipscope: sip.field_copier: " .. name .. ": header is a header name", 2)
            end
            if max ~= nil and (type(max) ~= "number" or max < 0 or max ~= math.floor(max)) then
                error("sipscope: sip.field_copier: " .. name .. ": max_bytes is a whole " ..
                    "number of bytes, 0 or more", 2)
            end
            e.kind, e.arg, e.header, e.header_len = COPY_HEADER, ctx.header_id(header), header,
                #header
            e.max = max or -1
            f.header, f.max = header, max
        else
            error("sipscope: sip.field_copier: " .. name .. " takes a message field's name or " ..
                "{header = name[, max_bytes = n]}, got " .. type(what), 2)
        end
        list[i] = f
    end
    local copy_fields = ctx.copy_fields
    return readonly("field copier", {
        copy = function(_, m, c)
            copy_fields(m, c, entries, n, list, clash)
        end,
        size = function()
            return n
        end,
    })
end

function M.setup(c)
    ctx = c
end

return M
