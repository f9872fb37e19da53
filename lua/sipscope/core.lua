-- sipscope.core: the trusted half of the rule API. core/lua_bridge.c loads it into each rules
-- state and calls init(); it runs the rule files in sandboxes, keeps their hooks and runs them
-- for each event through protected calls, counting and containing failures. Rules never see
-- this module, ffi, the mailbox or the native functions: they get the `sipscope` API table
-- built by public_api() below.
local ffi = require "ffi"

local M = {}

-- The mailbox and the FFI functions; mirrors the structs of core/lua_bridge.c, whose sizes
-- init() checks.
ffi.cdef [[
struct lb_slice { const char *p; size_t len; };
struct lb_box {
    uint32_t seq, in_lua, in_rule, mem_fail;
    double gen;
    int32_t type, flags, code, reason, method, status;
    uint64_t time;
    double delay;
    const uint16_t *labels;
    uint16_t *labels_out;
    const void *msg, *pkt;
    int32_t cseq_method, l4, sport, dport;
    uint32_t cseq, pad0;
    const void *dialog;
    double d_key;
    uint64_t d_start, d_answer, d_end;
    int32_t d_gen, d_state, d_end_reason, d_final_code, d_has_outcome, pad1;
    const void *txn;
    int32_t t_method, t_code;
    const void *binding;
    int32_t b_change;
    uint32_t b_expires;
};
struct lb_api {
    void *bridge;
    int (*msg_str)(const struct lb_box *box, int field, struct lb_slice *out);
    int (*msg_header)(const struct lb_box *box, const char *name, size_t len, int nth,
                      struct lb_slice *out);
    int (*msg_addr)(const struct lb_box *box, int dst, char *buf, size_t len);
    int (*dialog_str)(const struct lb_box *box, int field, struct lb_slice *out);
    int (*binding_str)(const struct lb_box *box, int field, struct lb_slice *out);
    int (*label_text)(void *bridge, int idx, int id, struct lb_slice *out);
    int (*label_value)(void *bridge, int idx, const char *s, size_t len);
    void *(*series)(void *bridge, void *fam, const char **vals, const size_t *lens, int n,
                    int *cacheable);
    void (*counter_add)(void *series, double v);
    void (*gauge_set)(void *series, double v);
    void (*gauge_add)(void *series, double v);
    void (*observe)(void *series, double v);
    double (*now)(void);
    int32_t (*cidr_lookup_text)(const void *set, const char *p, size_t len);
    int32_t (*cidr_lookup_msg)(const void *set, const struct lb_box *box, int dst);
    int32_t (*classify_lookup)(const void *c, const char *p, size_t len);
    uint64_t (*window_add)(void *w, const char *key, size_t len, uint64_t now_ns, uint32_t n);
    uint64_t (*window_count)(const void *w, const char *key, size_t len, uint64_t now_ns);
};
]]

-- After the cdef: these modules use its types.
local handles = require "sipscope.handles"
local helpers = require "sipscope.helpers"
local json = require "sipscope.json"
local metric = require "sipscope.metric"
local sandbox = require "sipscope.sandbox"

local HOOKS = {
    "on_message", "on_request", "on_response", "on_dialog_start", "on_dialog_answer",
    "on_dialog_end", "on_transaction_end", "on_register", "on_tick",
}
local IS_HOOK = {}
for _, h in ipairs(HOOKS) do
    IS_HOOK[h] = true
end

-- track_event_type values (core/track_event.h).
local EV_MESSAGE, EV_TXN_END, EV_CALL_START, EV_CALL_ANSWER, EV_CALL_END, EV_REG_BINDING =
    0, 1, 2, 7, 9, 14

local SAMPLE_EVERY = 64 -- one dispatch in 64 is timed into sipscope_rule_seconds
local LOG_LIMIT = 100 -- sip.log lines per rule and load

local box, api, native, TIMEOUT, cfg
local rules = {} -- in load order
local by_name = {}
-- labels[idx + 1] = {name, default, from, rule, ids = {value -> id}, text = {id -> value}}
local labels = {}
local label_index = {} -- name -> idx
local phase = "setup" -- "load" while a rule file's top level runs, then "run" after commit
local current -- the rule whose code runs
local lists = {} -- hook -> {{fn, rule, hook, timing}...}
local cdr_store = {} -- dialog key -> {g = slot generation, t = fields, p = proxy}
local sample = 0

-- Errors ------------------------------------------------------------------------------------

local function classify(err)
    if err == TIMEOUT then
        return "timeout"
    end
    if box.mem_fail ~= 0 then
        return "memory"
    end
    if type(err) == "string" and err:find("sipscope: ", 1, true) then
        return "api"
    end
    return "runtime"
end

local function message_of(err)
    if err == TIMEOUT then
        return "ran past the rule budget"
    end
    if type(err) == "string" then
        return err
    end
    return "(error object is a " .. type(err) .. ")"
end

local rebuild -- defined below

local function disable(r, why)
    if r.disabled then
        return
    end
    r.disabled = true
    native.set_disabled(r.name, 1)
    native.log(1, "rule " .. r.name .. " is disabled until the next reload: " .. why)
    rebuild()
end

-- A failed call of rule r's hook: counted, logged once per (hook, kind), and the breaker.
local function failed(r, hook, err)
    local kind = classify(err)
    box.mem_fail = 0
    native.count_error(r.name, hook, kind)
    local key = hook .. "/" .. kind
    if not r.logged[key] then
        r.logged[key] = true
        native.log(1, "rule " .. r.name .. ", " .. hook .. ": " .. message_of(err) .. " [" ..
            kind .. "; more errors of this kind are only counted]")
    end
    if kind == "memory" then
        -- Quarantine: drop everything the rule holds so that a collection frees it.
        r.hooks, r.vars, r.env = {}, {}, nil
        for _, l in ipairs(labels) do
            if l.rule == r then
                l.from = nil
            end
        end
        disable(r, "it ran out of Lua memory (--lua-memory)")
        collectgarbage("collect")
        return
    end
    r.fails = r.fails + 1
    if kind == "timeout" then
        r.timeouts = r.timeouts + 1
        if cfg.breaker_timeouts > 0 and r.timeouts >= cfg.breaker_timeouts then
            disable(r, r.timeouts .. " calls ran past the rule budget")
        end
    end
    if cfg.breaker_errors > 0 and r.fails >= cfg.breaker_errors then
        disable(r, r.fails .. " calls in a row failed")
    end
end

-- Dispatch ----------------------------------------------------------------------------------

local function call(e, a, b)
    local r = e.rule
    if r.disabled then
        return
    end
    box.seq = box.seq + 1
    current = r
    box.in_rule = 1
    local ok, err = pcall(e.fn, a, b)
    box.in_rule = 0
    if ok then
        if r.fails ~= 0 then
            r.fails = 0
        end
    else
        failed(r, e.hook, err)
    end
end

local function call_timed(e, a, b)
    local t0 = api.now()
    call(e, a, b)
    if e.timing ~= nil then
        api.observe(e.timing, api.now() - t0)
    end
end

local function run(list, a, b)
    local n = list.n
    if n == 0 then
        return
    end
    sample = sample + 1
    if sample < SAMPLE_EVERY then
        for i = 1, n do
            call(list[i], a, b)
        end
    else
        sample = 0
        for i = 1, n do
            call_timed(list[i], a, b)
        end
    end
end

local Msg, Dlg, Txn, Reg -- handle constructors

-- Calls that ended: their vars are freed after the next message dispatch, so that the BYE (or
-- the final response) that ended a call still finds them in on_request / on_response: the
-- tracker reports the end before the message itself.
local ended, n_ended = {}, 0

local function free_ended()
    for i = 1, n_ended do
        local key = ended[i]
        ended[i] = nil
        for j = 1, #rules do
            local v = rules[j].vars
            if v[key] ~= nil then
                v[key] = nil
            end
        end
    end
    n_ended = 0
end

function M.dispatch_message()
    local m = Msg(box.gen)
    run(lists.on_message, m)
    if box.status == 0 then
        run(lists.on_request, m)
    else
        run(lists.on_response, m)
    end
    if n_ended ~= 0 then
        free_ended()
    end
end

local function message_or_nil()
    if box.msg ~= nil then
        return Msg(box.gen)
    end
    return nil
end

function M.dispatch_dialog_start()
    run(lists.on_dialog_start, Dlg(box.gen), message_or_nil())
end

function M.dispatch_dialog_answer()
    run(lists.on_dialog_answer, Dlg(box.gen), message_or_nil())
end

-- The call ends: its CDR fields go to the events file now, its vars after the next message.
function M.dispatch_dialog_end()
    run(lists.on_dialog_end, Dlg(box.gen), message_or_nil())
    local key = box.d_key
    if n_ended >= 64 then
        free_ended() -- no message dispatch for a while (timers, or no message hooks)
    end
    n_ended = n_ended + 1
    ended[n_ended] = key
    local c = cdr_store[key]
    if c ~= nil then
        cdr_store[key] = nil
        if cfg.event_fields and c.g == box.d_gen then
            native.event_fields(json.members(c.t))
        end
    end
end

function M.dispatch_txn_end()
    run(lists.on_transaction_end, Txn(box.gen), message_or_nil())
end

function M.dispatch_register()
    run(lists.on_register, Reg(box.gen), message_or_nil())
    local fields = handles.take_event_fields()
    if fields ~= nil and cfg.event_fields then
        native.event_fields(json.members(fields))
    end
end

function M.dispatch_tick()
    run(lists.on_tick, handles.seconds(box.time))
end

-- Operator labels: from(m) of each declared label, for a request that creates a call or a
-- transaction. The id goes straight into the tracker's label array.
function M.dispatch_label()
    local m = Msg(box.gen)
    local out = box.labels_out
    for i = 1, #labels do
        local l = labels[i]
        local from = l.from
        local r = l.rule
        if from ~= nil and not r.disabled then
            box.seq = box.seq + 1
            current = r
            box.in_rule = 1
            local ok, v = pcall(from, m)
            box.in_rule = 0
            if ok and v ~= nil then
                local t = type(v)
                if t == "number" then
                    v = tostring(v)
                elseif t ~= "string" then
                    ok, v = false, "sipscope: label '" .. l.name .. "': from() returned a " .. t ..
                        " (return a string, or nil for the default)"
                end
                if ok then
                    local id = l.ids[v]
                    if id == nil then
                        id = api.label_value(api.bridge, i - 1, v, #v)
                        if id ~= 0 then
                            l.ids[v] = id -- overflowed values are not cached: each is counted
                        end
                    end
                    out[i - 1] = id
                end
            end
            if ok then
                if r.fails ~= 0 then
                    r.fails = 0
                end
            else
                failed(r, "label", v)
            end
        end
    end
end

-- Rule lists and routes ---------------------------------------------------------------------

rebuild = function()
    local new = {}
    for _, h in ipairs(HOOKS) do
        new[h] = {n = 0}
    end
    for _, r in ipairs(rules) do
        if not r.disabled then
            for _, h in ipairs(HOOKS) do
                local fn = r.hooks[h]
                if fn ~= nil then
                    local l = new[h]
                    l[#l + 1] = {fn = fn, rule = r, hook = h, timing = r.timing[h]}
                    l.n = #l -- read per dispatch: a field is cheaper than # on the hot path
                end
            end
        end
    end
    lists = new
    local msg = #new.on_message + #new.on_request + #new.on_response > 0
    -- A call's end is dispatched whenever a hook could have reached the call (its vars and
    -- CDR fields must go with it).
    local sees_dialogs = msg or #new.on_dialog_start + #new.on_dialog_answer +
        #new.on_dialog_end + #new.on_transaction_end > 0
    local routes = {}
    routes[EV_MESSAGE] = msg
    routes[EV_CALL_START] = #new.on_dialog_start > 0
    routes[EV_CALL_ANSWER] = #new.on_dialog_answer > 0
    routes[EV_CALL_END] = sees_dialogs
    routes[EV_TXN_END] = #new.on_transaction_end > 0
    routes[EV_REG_BINDING] = #new.on_register > 0
    routes[cfg.tick_route] = #new.on_tick > 0
    native.set_routes(routes)
end

-- The API rules get --------------------------------------------------------------------------

local function check_keys(what, spec, allowed)
    for k in pairs(spec) do
        if not allowed[k] then
            error("sipscope: " .. what .. ": unknown field '" .. tostring(k) .. "'", 3)
        end
    end
end

local LABEL_KEYS = {name = true, default = true, max_values = true, from = true}

local function declare_label(rule, spec)
    if phase ~= "load" then
        error("sipscope: sip.label must be called at the top level of a rule file", 2)
    end
    if type(spec) ~= "table" then
        error("sipscope: sip.label takes a table: sip.label{name = ..., default = ..., " ..
            "max_values = ..., from = function(m) ... end}", 2)
    end
    check_keys("sip.label", spec, LABEL_KEYS)
    local name, default, maxv, from = spec.name, spec.default, spec.max_values or 64, spec.from
    if type(name) ~= "string" then
        error("sipscope: sip.label: name must be a string", 2)
    end
    if type(default) ~= "string" then
        error("sipscope: sip.label '" .. name .. "': default must be a string", 2)
    end
    if type(maxv) ~= "number" then
        error("sipscope: sip.label '" .. name .. "': max_values must be a number", 2)
    end
    if type(from) ~= "function" then
        error("sipscope: sip.label '" .. name .. "': from must be a function(m)", 2)
    end
    local idx, why = native.declare_label(name, default, maxv)
    if not idx then
        error("sipscope: sip.label: " .. why, 2)
    end
    labels[idx + 1] = {name = name, default = default, from = from, rule = rule,
                       ids = {[default] = 0}, text = {[0] = default}}
    label_index[name] = idx
    rule.labels[#rule.labels + 1] = name
end

local function public_api(rule)
    local sip = {version = cfg.version}
    function sip.label(spec)
        return declare_label(rule, spec)
    end
    function sip.counter(spec)
        return metric.declare(rule, "counter", spec)
    end
    function sip.gauge(spec)
        return metric.declare(rule, "gauge", spec)
    end
    function sip.histogram(spec)
        return metric.declare(rule, "histogram", spec)
    end
    -- sip.log(fmt, ...): an info line, at most LOG_LIMIT per rule until the next reload.
    function sip.log(fmt, ...)
        if rule.logs >= LOG_LIMIT then
            return
        end
        rule.logs = rule.logs + 1
        local ok, text = pcall(string.format, tostring(fmt), ...)
        if not ok then
            error("sipscope: sip.log: " .. text, 2)
        end
        if rule.logs == LOG_LIMIT then
            text = text .. " (log limit reached: further sip.log lines are dropped)"
        end
        native.log(2, "rule " .. rule.name .. ": " .. text)
    end
    -- Helpers implemented in C (core/cidr.c, core/classify.c, core/window.c).
    sip.cidr_set = helpers.cidr_set
    sip.classifier = helpers.classifier
    sip.window = helpers.window
    return setmetatable({}, {
        __index = sip,
        __newindex = function(_, k)
            error("sipscope: the sipscope module is read-only (tried to set '" .. tostring(k) ..
                "')", 2)
        end,
        __metatable = false,
    })
end

-- Trace events of rule code, when cfg.jit_log is set (lua_bridge_jit_log).
local jit_events = {}

local function watch_jit()
    local util = require "jit.util"
    local status = jit.status()
    jit_events[1] = "jit " .. (status and "on" or "off")
    jit.attach(function(what, _, func, pc, reason)
        if what ~= "stop" and what ~= "abort" then
            return
        end
        local info = util.funcinfo(func, pc)
        local src = info and info.source or "?"
        if src:sub(1, 1) ~= "@" then
            return -- the sipscope modules themselves
        end
        if #jit_events >= 256 then
            table.remove(jit_events, 2)
        end
        jit_events[#jit_events + 1] = what .. " " .. src:sub(2) .. ":" ..
            tostring(info.currentline) .. (what == "abort" and (" " .. tostring(reason)) or "")
    end, "trace")
end

function M.jit_log()
    return table.concat(jit_events, "\n")
end

-- Entry points called by core/lua_bridge.c ----------------------------------------------------

function M.init(box_ud, api_ud, native_fns, timeout, config)
    box = ffi.cast("struct lb_box *", box_ud)
    api = ffi.cast("struct lb_api *", api_ud)
    native, TIMEOUT, cfg = native_fns, timeout, config
    assert(ffi.sizeof("struct lb_box") == cfg.box_size, "lb_box differs between C and Lua")
    assert(ffi.sizeof("struct lb_api") == cfg.api_size, "lb_api differs between C and Lua")
    local names = native.names()
    local ctx = {
        box = box,
        api = api,
        names = names,
        labels = labels,
        label_index = label_index,
        current = function()
            return current
        end,
        cdr_store = cdr_store,
    }
    Msg, Dlg, Txn, Reg = handles.setup(ctx)
    local function get_phase()
        return phase
    end
    metric.setup({api = api, native = native, cfg = cfg, phase = get_phase})
    helpers.setup({api = api, native = native, box = box, phase = get_phase, Msg = Msg})
    local cjson_new
    local open = package.loadlib(cfg.cjson_path, "luaopen_cjson")
    if open then
        local ok, cjson = pcall(open)
        if ok and type(cjson) == "table" then
            cjson_new = cjson.new
        end
    end
    sandbox.setup({box = box, timeout = TIMEOUT, cjson_new = cjson_new})
    if cfg.jit_log then
        watch_jit()
    end
end

-- Loads one rule file: chunk is the compiled file, run in its own environment.
function M.add_rule(name, chunk, path)
    if by_name[name] then
        error(path .. ": another rule is also named '" .. name .. "'", 0)
    end
    local r = {name = name, path = path, index = #rules + 1, hooks = {}, vars = {}, fails = 0,
               timeouts = 0, disabled = false, logged = {}, logs = 0, labels = {}, timing = {}}
    rules[#rules + 1] = r
    by_name[name] = r
    r.env = sandbox.env(public_api(r))
    setfenv(chunk, r.env)
    phase, current = "load", r
    box.in_rule = 1
    local ok, res = pcall(chunk)
    box.in_rule = 0
    phase = "setup"
    if not ok then
        local kind = classify(res)
        box.mem_fail = 0
        if kind == "timeout" then
            error(path .. ": its top-level code ran past the rule budget", 0)
        elseif kind == "memory" then
            error(path .. ": its top-level code ran out of Lua memory (--lua-memory)", 0)
        end
        local msg = message_of(res)
        if not msg:find(path, 1, true) then
            msg = path .. ": " .. msg
        end
        error(msg, 0)
    end
    if type(res) ~= "table" then
        error(path .. ": a rule file must return a table of hooks (it returned " .. type(res) ..
            ")", 0)
    end
    for k, v in pairs(res) do
        if not IS_HOOK[k] then
            error(path .. ": '" .. tostring(k) .. "' is not a hook (hooks: " ..
                table.concat(HOOKS, ", ") .. ")", 0)
        end
        if type(v) ~= "function" then
            error(path .. ": hook " .. k .. " must be a function", 0)
        end
        r.hooks[k] = v
    end
end

function M.finish_load()
    rebuild()
end

-- Creates the rule families (after the built-in ones exist) and the timing series.
function M.commit()
    metric.commit()
    for _, r in ipairs(rules) do
        for h in pairs(r.hooks) do
            r.timing[h] = ffi.cast("void *", native.rule_seconds(r.name, h))
        end
        native.set_disabled(r.name, 0)
    end
    phase = "run"
    rebuild()
end

function M.describe()
    local out = {}
    for _, r in ipairs(rules) do
        local hooks = {}
        for _, h in ipairs(HOOKS) do
            if r.hooks[h] then
                hooks[#hooks + 1] = h
            end
        end
        local line = r.name .. " (" .. r.path .. "): hooks " ..
            (#hooks > 0 and table.concat(hooks, ",") or "none")
        if #r.labels > 0 then
            line = line .. "; labels " .. table.concat(r.labels, ",")
        end
        local ms = metric.describe(r)
        if ms ~= "" then
            line = line .. "; metrics " .. ms
        end
        out[#out + 1] = line
    end
    return table.concat(out, "\n") .. (#out > 0 and "\n" or "")
end

return M
