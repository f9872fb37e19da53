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
struct lb_field { const char *p; size_t len; double num; int32_t boolean; };
struct lb_copy { const char *name; size_t name_len; int32_t kind, arg; const char *header;
                 size_t header_len; int64_t max; };
struct lb_box {
    uint32_t seq, in_lua, in_rule, mem_fail, stopped;
    double gen;
    int32_t type, flags, code, reason, method, status;
    uint64_t time;
    double delay;
    const uint16_t *labels;
    uint16_t *labels_out;
    const void *msg, *pkt;
    int32_t cseq_method, l4, sport, dport;
    uint32_t cseq;
    int32_t ipv;
    uint32_t src4, dst4;
    const void *dialog;
    uint64_t d_start, d_answer, d_end, d_ringing;
    int32_t d_gen, d_state, d_end_reason, d_final_code, d_has_outcome, d_slot, d_ended_by;
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
    int (*counter_add)(void *series, double v);
    int (*gauge_set)(void *series, double v);
    int (*gauge_add)(void *series, double v);
    int (*observe)(void *series, double v);
    double (*now)(void);
    int32_t (*cidr_lookup_text)(const void *set, const char *p, size_t len);
    int32_t (*cidr_lookup_msg)(const void *set, const struct lb_box *box, int dst);
    int32_t (*classify_lookup)(const void *c, const char *p, size_t len);
    uint64_t (*window_add)(void *w, const char *key, size_t len, uint64_t now_ns, uint32_t n);
    uint64_t (*window_count)(const void *w, const char *key, size_t len, uint64_t now_ns);
    int32_t (*dialog_slot)(void *bridge, const struct lb_box *box, int create);
    void (*dialog_slot_free)(void *bridge, int32_t slot);
    int32_t (*header_id)(const char *name, size_t len);
    int (*msg_header_id)(const struct lb_box *box, int32_t id, int nth, struct lb_slice *out);
    uint64_t (*window_msg)(void *bridge, void *w, int dst, int with, int64_t n);
    int32_t (*classify_header)(void *c, const struct lb_box *box, int32_t id,
                               const char *name, size_t len);
    int (*call_field_set)(void *bridge, int32_t slot, const char *name, size_t len, int type,
                          const char *str, size_t str_len, double num);
    int (*call_field_get)(void *bridge, int32_t slot, const char *name, size_t len,
                          struct lb_field *out);
    void (*call_fields_take)(void *bridge, int32_t slot);
    int (*msg_ruri_param)(const struct lb_box *box, const char *name, size_t len,
                          struct lb_slice *out);
    int (*call_fields_copy)(void *bridge, int32_t slot, const struct lb_copy *fields, int32_t n);
};
]]

-- The mailbox and the FFI functions, fixed for the state's life (core/lua_bridge.c puts their
-- addresses in package.loaded before this module loads): module constants, which compiled code
-- addresses directly. sipscope.handles reads them the same way.
local mailbox = require "sipscope.mailbox"
local box = ffi.cast("struct lb_box *", mailbox.box)
local api = ffi.cast("struct lb_api *", mailbox.api)

-- After the cdef: these modules use its types.
local handles = require "sipscope.handles"
local helpers = require "sipscope.helpers"
local metric = require "sipscope.metric"
local sandbox = require "sipscope.sandbox"

local HOOKS = {
    "on_message", "on_request", "on_response", "on_dialog_start", "on_dialog_ringing",
    "on_dialog_answer",
    "on_dialog_end", "on_transaction_end", "on_register", "on_tick",
}
local IS_HOOK = {}
for _, h in ipairs(HOOKS) do
    IS_HOOK[h] = true
end

-- track_event_type values (core/track_event.h).
local EV_MESSAGE, EV_TXN_END, EV_CALL_START, EV_CALL_RINGING, EV_CALL_ANSWER, EV_CALL_END,
      EV_REG_BINDING = 0, 1, 2, 5, 7, 9, 14

local SAMPLE_EVERY = 64 -- one dispatch in 64 is timed into sipscope_rule_seconds
local LOG_LIMIT = 100 -- sip.log lines per rule and load
local LOG_TEXT = 1024 -- bytes of a sip.log line's text; log.c escapes what it writes

local native, TIMEOUT, cfg
local rules = {} -- in load order
local by_name = {}
-- labels[idx + 1] = {name, default, from, rule, ids = {value -> id}, text = {id -> value}}
local labels = {}
local label_index = {} -- name -> idx
local phase = "setup" -- "load" while a rule file's top level runs, then "run" after commit

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

-- Text from a rule fit for one log line: an error() or a sip.log can carry megabytes, which
-- made one log line as long (and the concatenation could run out of memory in trusted code).
-- Cut here, before it is joined to anything; the log escapes what could break the line.
local MAX_MESSAGE = 1024

local function cut(text, max)
    if #text > max then
        return text:sub(1, max) .. "... [cut, " .. #text .. " bytes]"
    end
    return text
end

local function message_of(err)
    if err == TIMEOUT then
        return "ran past the rule budget"
    end
    if type(err) == "string" then
        return cut(err, MAX_MESSAGE)
    end
    return "(error object is a " .. type(err) .. ")"
end

local rebuild, drop_vars -- defined below

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
        r.hooks, r.env = {}, nil
        drop_vars(r.index)
        metric.drop_caches(r)
        for _, l in ipairs(labels) do
            if l.rule == r then
                l.from = nil
            end
        end
        disable(r, "it ran out of Lua memory (--lua-memory)")
        -- Compiled code still reaches the rule: traces that start in the dispatch code link
        -- to the hook's traces, which hold its functions as constants, and through their
        -- upvalues everything the rule filled the heap with. Left alone, the heap stayed at
        -- the cap and every later entry ran a full collection of it (lua_bridge.c, enter):
        -- tens of ms a message. A quarantine happens once per rule and load; the traces are
        -- compiled again.
        jit.flush()
        collectgarbage("collect")
        collectgarbage("stop") -- the engine paces the collector (lua_bridge.c, gc_pace)
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
--
-- Each hook's rules are called by a function generated for that list (rebuild() below): the
-- calls are written out one after the other, without a loop over the list. LuaJIT then records
-- a whole dispatch, the hooks inlined, as one trace from the entry C calls; a loop over rules
-- would start traces inside the hooks that cannot return into the pcall frame below them
-- ("NYI: return to lower frame") and leave the hooks to the interpreter.

-- Shared with the generated functions and sipscope.handles: the rule whose code runs, and the
-- dispatch count for timing samples.
local S = {current = nil, sample = 0}

local Msg, Dlg, Txn, Reg -- handle constructors

-- One call of a rule's hook, written into the generated runners. $ is the entry number.
local CALL = [[
if not r$.disabled then
box.seq = box.seq + 1
S.current = r$
box.in_rule = 1
local ok, err = pcall(f$, a, b)
box.in_rule = 0
if box.stopped ~= 0 then box.stopped = 0 ok, err = false, TIMEOUT end
if not ok then failed(r$, HOOK, err) elseif r$.fails ~= 0 then r$.fails = 0 end
end
]]

-- The same, timed into sipscope_rule_seconds.
local CALL_TIMED = [[
if not r$.disabled then
local t0 = now()
box.seq = box.seq + 1
S.current = r$
box.in_rule = 1
local ok, err = pcall(f$, a, b)
box.in_rule = 0
if box.stopped ~= 0 then box.stopped = 0 ok, err = false, TIMEOUT end
if not ok then failed(r$, HOOK, err) elseif r$.fails ~= 0 then r$.fails = 0 end
if t$ ~= nil then observe(t$, now() - t0) end
end
]]

-- An entry whose hook is a table (on_request by method, on_response by status) calls the
-- function under the message's key, if any.
local function call_code(snippet, i, filtered)
    local code = snippet:gsub("%$", tostring(i))
    if filtered then
        code = "local f" .. i .. " = F" .. i .. "[key] if f" .. i .. " ~= nil then " .. code ..
            " end"
    end
    return "do " .. code .. " end"
end

-- A function(a, b, key) calling each entry's hook, or nil for an empty list; key is the
-- message's method name or status, for entries with a filter table. One dispatch in
-- SAMPLE_EVERY (over all lists) is timed.
local function compile_list(hook, list)
    local n = #list
    if n == 0 then
        return nil
    end
    local src = {"local S, box, pcall, failed, now, observe, E, HOOK, TIMEOUT = ..."}
    for i = 1, n do
        src[#src + 1] = ("local r%d, f%d, F%d, t%d = E[%d].rule, E[%d].fn, E[%d].filter, " ..
            "E[%d].timing"):format(i, i, i, i, i, i, i, i)
    end
    src[#src + 1] = "return function(a, b, key)"
    src[#src + 1] = "local s = S.sample + 1"
    src[#src + 1] = "if s < " .. SAMPLE_EVERY .. " then"
    src[#src + 1] = "S.sample = s"
    for i = 1, n do
        src[#src + 1] = call_code(CALL, i, list[i].filter ~= nil)
    end
    src[#src + 1] = "else"
    src[#src + 1] = "S.sample = 0"
    for i = 1, n do
        src[#src + 1] = call_code(CALL_TIMED, i, list[i].filter ~= nil)
    end
    src[#src + 1] = "end"
    src[#src + 1] = "end"
    local chunk = assert(loadstring(table.concat(src, "\n"), "=sipscope.dispatch." .. hook))
    return chunk(S, box, pcall, failed, api.now, api.observe, list, hook, TIMEOUT)
end

-- Method names and ids (enum sip_method), from C at init.
local method_ids -- method name -> id (0: another method)
local method_names -- id -> method name

-- The runners of the hook lists (nil: no enabled rule has the hook), set by rebuild().
local request_keyed -- some on_request hook is a table by method
local txn_keyed -- some on_transaction_end hook is a table by method
local run_message, run_request, run_response, run_dialog_start, run_dialog_ringing
local run_dialog_answer, run_dialog_end, run_txn_end, run_register, run_tick, run_labels

-- Calls' vars: each rule's r.var_slots[call slot (api.dialog_slot)] = that rule's table for the
-- call. A call's vars are dropped after the message dispatch that follows its end, so that the
-- BYE (or the final response) that ended a call still finds them in on_request / on_response:
-- the tracker reports the end before the message itself. One message ends at most one call,
-- and calls that end without a message (timers) need no grace: one pending slot is enough. A
-- slot number is the call's until freed here, so the tables need no generation check.
local pending_end = 0
local free_vars -- function(slot): every rule's vars of that slot dropped (finish_load)

-- Writes out free_vars for the loaded rules: one store per rule, no loop.
local function compile_free_vars()
    local src = {"local R = ...", "return function(slot)"}
    for i = 1, #rules do
        src[#src + 1] = ("R[%d].var_slots[slot] = nil"):format(i)
    end
    src[#src + 1] = "end"
    local chunk = assert(loadstring(table.concat(src, "\n"), "=sipscope.dispatch.free_vars"))
    free_vars = chunk(rules)
end

local function free_slot(slot)
    handles.end_call_fields(slot) -- d.cdr written after the call's end: dropped (with the slot)
    free_vars(slot)
    api.dialog_slot_free(api.bridge, slot)
end

function M.dispatch_message()
    local m = Msg(box.gen)
    local f = run_message
    if f ~= nil then
        f(m)
    end
    if box.status == 0 then
        f = run_request
        if f ~= nil then
            local key
            if request_keyed then
                key = handles.method_name()
            end
            f(m, nil, key)
        end
    else
        f = run_response
        if f ~= nil then
            f(m, nil, box.status)
        end
    end
    local slot = pending_end
    if slot ~= 0 then
        pending_end = 0
        free_slot(slot)
    end
end

local function message_or_nil()
    if box.msg ~= nil then
        return Msg(box.gen)
    end
    return nil
end

function M.dispatch_dialog_start()
    local f = run_dialog_start
    if f ~= nil then
        f(Dlg(box.gen), message_or_nil())
    end
end

function M.dispatch_dialog_ringing()
    local f = run_dialog_ringing
    if f ~= nil then
        f(Dlg(box.gen), message_or_nil())
    end
end

function M.dispatch_dialog_answer()
    local f = run_dialog_answer
    if f ~= nil then
        f(Dlg(box.gen), message_or_nil())
    end
end

-- The call ends: its CDR fields go to the events file now, its vars after the next message.
function M.dispatch_dialog_end()
    local f = run_dialog_end
    if f ~= nil then
        f(Dlg(box.gen), message_or_nil())
    end
    local slot = box.d_slot
    if slot < 0 then
        slot = api.dialog_slot(api.bridge, box, 0)
    end
    if slot == 0 then
        return
    end
    -- The slot is pending before anything below can fail, and the previous one no longer is
    -- when it is freed: a failure here can neither leak a slot nor free one twice.
    local prev = pending_end
    pending_end = slot
    if prev ~= 0 and prev ~= slot then
        free_slot(prev) -- no message dispatch since (timers, or no message hooks)
    end
    -- Its fields are encoded for the call's line (events file). Taken even when no hook of these
    -- rules wrote them: a call that was going on at a reload has the fields of the rules before.
    handles.end_call_fields(slot)
    api.call_fields_take(api.bridge, slot)
end

-- A reload hands the calls' slots and fields to the new rules (lua_bridge_reload): the call whose
-- end is pending (its vars kept for the message that ended it) is released first. Between two
-- frames that message's dispatch is over.
function M.release_pending()
    local slot = pending_end
    if slot ~= 0 then
        pending_end = 0
        free_slot(slot)
    end
end

function M.dispatch_txn_end()
    local f = run_txn_end
    if f ~= nil then
        local key
        if txn_keyed then
            key = method_names[box.t_method]
        end
        f(Txn(box.gen), message_or_nil(), key)
    end
end

function M.dispatch_register()
    local f = run_register
    if f ~= nil then
        f(Reg(box.gen), message_or_nil())
    end
    local fields = handles.take_event_fields()
    if fields ~= nil and cfg.event_fields then
        native.event_fields(fields)
    end
end

function M.dispatch_tick()
    local f = run_tick
    if f ~= nil then
        f(handles.seconds(box.time))
    end
end

-- A label value v (not nil) that from() of label l (index i, 0-based) returned: its id, or
-- nil and an error.
local function label_id(l, i, v)
    local t = type(v)
    if t == "number" then
        v = tostring(v)
    elseif t ~= "string" then
        return nil, "sipscope: label '" .. l.name .. "': from() returned a " .. t ..
            " (return a string, or nil for the default)"
    end
    local id = l.ids[v]
    if id == nil then
        id = api.label_value(api.bridge, i, v, #v)
        if id ~= 0 then
            l.ids[v] = id -- overflowed values are not cached: each is counted
        end
    end
    return id
end

-- One label's from(m), written into the generated label runner. $ is the label number.
local LABEL = [[
if f$ ~= nil and not r$.disabled then
box.seq = box.seq + 1
S.current = r$
box.in_rule = 1
local ok, v = pcall(f$, m)
box.in_rule = 0
if box.stopped ~= 0 then box.stopped = 0 ok, v = false, TIMEOUT end
if ok and v ~= nil then
local id = ids$[v]
if id == nil then id, v = label_id(l$, $ - 1, v) end
if id ~= nil then out[$ - 1] = id else ok = false end
end
if not ok then failed(r$, "label", v) elseif r$.fails ~= 0 then r$.fails = 0 end
end
]]

local function compile_labels()
    local n = #labels
    if n == 0 then
        return nil
    end
    local src = {"local S, box, pcall, failed, label_id, L, TIMEOUT = ..."}
    for i = 1, n do
        src[#src + 1] = ("local l%d = L[%d]"):format(i, i)
        src[#src + 1] = ("local f%d, r%d, ids%d = l%d.from, l%d.rule, l%d.ids"):format(i, i, i, i,
            i, i)
    end
    src[#src + 1] = "return function(m)"
    src[#src + 1] = "local out = box.labels_out"
    for i = 1, n do
        src[#src + 1] = "do " .. LABEL:gsub("%$", tostring(i)) .. " end"
    end
    src[#src + 1] = "end"
    local chunk = assert(loadstring(table.concat(src, "\n"), "=sipscope.dispatch.label"))
    return chunk(S, box, pcall, failed, label_id, labels, TIMEOUT)
end

-- Operator labels: from(m) of each declared label, for a request that creates a call or a
-- transaction. The id goes straight into the tracker's label array.
function M.dispatch_label()
    local f = run_labels
    if f ~= nil then
        f(Msg(box.gen))
    end
end

-- Rule lists and routes ---------------------------------------------------------------------

-- The messages a kind of message hook wants: true for all, or {[id] = true} with the ids
-- (method ids, status codes) that its filter tables name.
local function message_routes(all, list, id_of)
    if #all > 0 then
        return true
    end
    local ids = {}
    for _, e in ipairs(list) do
        if e.filter == nil then
            return true
        end
        for k in pairs(e.filter) do
            ids[id_of(k)] = true
        end
    end
    return ids
end

local function method_id(name)
    return method_ids[name] or 0
end

drop_vars = function(index)
    rules[index].var_slots = {}
end

rebuild = function()
    local new = {}
    for _, h in ipairs(HOOKS) do
        new[h] = {}
    end
    for _, r in ipairs(rules) do
        if not r.disabled then
            for _, h in ipairs(HOOKS) do
                local fn = r.hooks[h]
                if fn ~= nil then
                    local l = new[h]
                    local e = {fn = fn, rule = r, timing = r.timing[h]}
                    if type(fn) == "table" then
                        e.fn, e.filter = nil, fn
                    end
                    l[#l + 1] = e
                end
            end
        end
    end
    request_keyed, txn_keyed = false, false
    for _, e in ipairs(new.on_request) do
        request_keyed = request_keyed or e.filter ~= nil
    end
    for _, e in ipairs(new.on_transaction_end) do
        txn_keyed = txn_keyed or e.filter ~= nil
    end
    run_message = compile_list("on_message", new.on_message)
    run_request = compile_list("on_request", new.on_request)
    run_response = compile_list("on_response", new.on_response)
    run_dialog_start = compile_list("on_dialog_start", new.on_dialog_start)
    run_dialog_ringing = compile_list("on_dialog_ringing", new.on_dialog_ringing)
    run_dialog_answer = compile_list("on_dialog_answer", new.on_dialog_answer)
    run_dialog_end = compile_list("on_dialog_end", new.on_dialog_end)
    run_txn_end = compile_list("on_transaction_end", new.on_transaction_end)
    run_register = compile_list("on_register", new.on_register)
    run_tick = compile_list("on_tick", new.on_tick)
    run_labels = compile_labels()
    local msg = #new.on_message + #new.on_request + #new.on_response > 0
    -- A call's end is dispatched whenever a hook could have reached the call (its vars and
    -- CDR fields must go with it). A REGISTER transaction belongs to no call.
    local txn_calls = false
    for _, e in ipairs(new.on_transaction_end) do
        for k in pairs(e.filter or {ANY = true}) do
            txn_calls = txn_calls or k ~= "REGISTER"
        end
    end
    local sees_dialogs = msg or txn_calls or #new.on_dialog_start + #new.on_dialog_ringing +
        #new.on_dialog_answer + #new.on_dialog_end > 0
    local routes = {}
    routes[EV_MESSAGE] = msg
    routes.requests = message_routes(new.on_message, new.on_request, method_id)
    routes.responses = message_routes(new.on_message, new.on_response, function(code)
        return code
    end)
    routes[EV_CALL_START] = #new.on_dialog_start > 0
    routes[EV_CALL_RINGING] = #new.on_dialog_ringing > 0
    routes[EV_CALL_ANSWER] = #new.on_dialog_answer > 0
    routes[EV_CALL_END] = sees_dialogs
    routes[EV_TXN_END] = #new.on_transaction_end > 0
    -- Hooks by method: the transactions of other methods stay out of Lua (fraud's REGISTER
    -- scan is not entered for every INVITE, BYE and OPTIONS).
    routes.transactions = message_routes({}, new.on_transaction_end, method_id)
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
    -- native.declare_label refuses a name past the cap; cut in the messages before it
    local shown = #name > cfg.max_label_name_len and name:sub(1, 40) .. "..." or name
    if type(default) ~= "string" then
        error("sipscope: sip.label '" .. shown .. "': default must be a string", 2)
    end
    if type(maxv) ~= "number" then
        error("sipscope: sip.label '" .. shown .. "': max_values must be a number", 2)
    end
    if type(from) ~= "function" then
        error("sipscope: sip.label '" .. shown .. "': from must be a function(m)", 2)
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
    -- events: whether call and registration lines are written (--events), so that a rule whose
    -- only output is d.cdr / r.event fields can skip its work without them.
    local sip = {version = cfg.version, events = cfg.event_fields and true or false}
    function sip.label(spec)
        return declare_label(rule, spec)
    end
    -- Not tail calls: metric.declare's errors point at the rule's line, two levels up.
    function sip.counter(spec)
        local m = metric.declare(rule, "counter", spec)
        return m
    end
    function sip.gauge(spec)
        local m = metric.declare(rule, "gauge", spec)
        return m
    end
    function sip.histogram(spec)
        local m = metric.declare(rule, "histogram", spec)
        return m
    end
    -- sip.log(fmt, ...): an info line, at most LOG_LIMIT per rule until the next reload, of at
    -- most LOG_TEXT bytes of text, escaped by the log (core/log.h) so that it stays one line.
    function sip.log(fmt, ...)
        if rule.logs >= LOG_LIMIT then
            return
        end
        rule.logs = rule.logs + 1
        local ok, text = pcall(string.format, tostring(fmt), ...)
        if not ok then
            if text == TIMEOUT or box.mem_fail ~= 0 then -- a __tostring the budget stopped
                error(text, 0)
            end
            error("sipscope: sip.log: " .. tostring(text), 2)
        end
        text = cut(text, LOG_TEXT)
        if rule.logs == LOG_LIMIT then
            text = text .. " (log limit reached: further sip.log lines are dropped)"
        end
        native.log(2, "rule " .. rule.name .. ": " .. text)
    end
    -- Helpers implemented in C (core/cidr.c, core/classify.c, core/window.c, and the field
    -- copier in core/lua_bridge.c).
    sip.cidr_set = helpers.cidr_set
    sip.classifier = helpers.classifier
    sip.window = helpers.window
    sip.field_copier = helpers.field_copier
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

-- Runs a rule file's top level: ok, result, with TIMEOUT for a stop, whether or not the code
-- swallowed it. Compiled with a dispatcher's chunk name, like the hook runners: a stop that
-- lands just after the file's last C call returned (a long string.rep in tail position) is left
-- to the flag (lua_bridge.c, in_dispatcher) instead of raised here, outside the file, where
-- it failed the load without naming the file and stayed set for the next rule's call.
local run_top_level

local function make_run_top_level()
    local src = [[
local box, pcall, TIMEOUT = ...
return function(chunk)
  box.in_rule = 1
  local ok, res = pcall(chunk)
  box.in_rule = 0
  if box.stopped ~= 0 then box.stopped = 0 ok, res = false, TIMEOUT end
  return ok, res
end]]
    return assert(loadstring(src, "=sipscope.dispatch.load"))(box, pcall, TIMEOUT)
end

function M.init(box_ud, api_ud, native_fns, timeout, config)
    -- Room for traces that cover a whole dispatch, every rule's hook inlined (the defaults
    -- are sized for loops in one function): longer traces, more side traces and snapshots,
    -- and more unrolling of the short loops and tail calls of the API's field getters.
    jit.opt.start("maxtrace=4000", "maxrecord=16000", "maxirconst=2000", "maxside=400",
        "maxsnap=2000", "loopunroll=40", "sizemcode=256", "maxmcode=8192")
    assert(ffi.cast("void *", box) == ffi.cast("void *", box_ud) and
        ffi.cast("void *", api) == ffi.cast("void *", api_ud), "the mailbox moved")
    native, TIMEOUT, cfg = native_fns, timeout, config
    assert(ffi.sizeof("struct lb_box") == cfg.box_size, "lb_box differs between C and Lua")
    assert(ffi.sizeof("struct lb_api") == cfg.api_size, "lb_api differs between C and Lua")
    assert(ffi.sizeof("struct lb_copy") == cfg.copy_size, "lb_copy differs between C and Lua")
    local names = native.names()
    method_ids, method_names = {}, names.methods
    for id, name in pairs(names.methods) do
        if id ~= 0 then
            method_ids[name] = id
        end
    end
    local ctx = {
        box = box,
        api = api,
        names = names,
        labels = labels,
        label_index = label_index,
        state = S,
        engine_fields = cfg.engine_fields,
    }
    Msg, Dlg, Txn, Reg = handles.setup(ctx)
    local function get_phase()
        return phase
    end
    metric.setup({api = api, native = native, cfg = cfg, phase = get_phase})
    helpers.setup({api = api, native = native, box = box, phase = get_phase,
                   is_message = handles.is_current_message, header_id = handles.header_id,
                   key_fields = handles.key_fields, check_field_name = handles.check_field_name,
                   copy_fields = handles.copy_fields,
                   engine_field_among = handles.engine_field_among})
    local cjson_new
    local open = package.loadlib(cfg.cjson_path, "luaopen_cjson")
    if open then
        local ok, cjson = pcall(open)
        if ok and type(cjson) == "table" then
            cjson_new = cjson.new
        end
    end
    sandbox.setup({box = box, timeout = TIMEOUT, cjson_new = cjson_new,
                   memory_limit = cfg.memory_limit, json_encode = native.json_encode})
    run_top_level = make_run_top_level()
    if cfg.jit_log then
        watch_jit()
    end
end

-- The hooks that may be a table of functions, and what their keys are.
local KEYED = {
    on_request = "method names",
    on_response = "status codes 100..699",
    on_transaction_end = "the methods sipscope tracks (INVITE, BYE, REGISTER, OPTIONS...)",
}

-- A rule-supplied key as text for an error message, without calling anything of the rule's:
-- tostring on a table with a __tostring would run the rule's code outside its budget.
local function key_text(k)
    local t = type(k)
    if t == "string" or t == "number" or t == "boolean" then
        return tostring(k)
    end
    return "a " .. t
end

-- A copy of an on_request / on_response / on_transaction_end table: method names (tokens as
-- written, "INVITE") or status codes (100..699) to functions. A transaction's method is known
-- by its id only, so on_transaction_end takes the methods sipscope has an id for.
local function filter_table(path, hook, t)
    local copy = {}
    for k, f in pairs(t) do
        local ok
        if hook == "on_request" then
            ok = type(k) == "string" and k ~= "" and not k:find("[%s%c]")
        elseif hook == "on_transaction_end" then
            ok = type(k) == "string" and method_ids[k] ~= nil and k ~= "ACK"
        else
            ok = type(k) == "number" and k >= 100 and k <= 699 and k == math.floor(k)
        end
        if not ok then
            error(path .. ": " .. hook .. " table keys are " .. KEYED[hook] .. ", got " ..
                key_text(k), 0)
        end
        if type(f) ~= "function" then
            error(path .. ": " .. hook .. "[" .. key_text(k) .. "] must be a function", 0)
        end
        copy[k] = f
    end
    return copy
end

-- Loads one rule file: chunk is the compiled file, run in its own environment.
function M.add_rule(name, chunk, path)
    if by_name[name] then
        error(path .. ": another rule is also named '" .. name .. "'", 0)
    end
    local r = {name = name, path = path, index = #rules + 1, hooks = {}, var_slots = {}, fails = 0,
               timeouts = 0, disabled = false, logged = {}, logs = 0, labels = {}, timing = {}}
    rules[#rules + 1] = r
    by_name[name] = r
    r.env = sandbox.env(public_api(r))
    setfenv(chunk, r.env)
    phase, S.current = "load", r
    local ok, res = run_top_level(chunk)
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
            error(path .. ": '" .. key_text(k) .. "' is not a hook (hooks: " ..
                table.concat(HOOKS, ", ") .. ")", 0)
        end
        if type(v) == "table" and KEYED[k] then
            v = filter_table(path, k, v)
        elseif type(v) ~= "function" then
            error(path .. ": hook " .. k .. " must be a function" ..
                (KEYED[k] and " or a table of functions" or ""), 0)
        end
        r.hooks[k] = v
    end
end

function M.finish_load()
    compile_free_vars()
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
