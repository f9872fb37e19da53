-- sipscope.handles: the message, dialog, transaction and registration objects hooks receive.
-- A handle is a pointer cdata whose value is the generation of the dispatch that made it (to an
-- incomplete struct: nothing can be read through it, added to it or indexed in it); its fields
-- are read from the mailbox C filled for that dispatch, lazily (a string is made only when a
-- rule reads it). Once the hook returns, the mailbox moves on and the handle raises an error
-- instead of reading anything. Handles are read-only, except the contents of d.vars, d.cdr and
-- r.event.
local ffi = require "ffi"
local bit = require "bit"
local sdp = require "sipscope.sdp"

local band = bit.band
local ffi_string = ffi.string

local M = {}

ffi.cdef [[
struct sipscope_message;
struct sipscope_dialog;
struct sipscope_transaction;
struct sipscope_registration;
]]

-- The generation a handle carries. A value, not memory: a compiled hook that makes a handle and
-- checks it needs no allocation (the JIT sinks it) and no load.
local ffi_cast = ffi.cast
local uintptr = ffi.typeof("uintptr_t")
local function gen_of(h)
    return tonumber(ffi_cast(uintptr, h))
end

-- enum lb_msg_field of core/lua_bridge.c
local F_CALL_ID, F_FROM_TAG, F_TO_TAG, F_RURI, F_REASON, F_METHOD, F_CSEQ_METHOD, F_FROM_URI,
      F_TO_URI, F_BODY, F_RAW, F_VIA_BRANCH = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
local F_RETRANSMISSION, F_ORPHAN, F_LATE_FINAL, F_INITIAL = 1, 2, 4, 8 -- enum track_flag
local EV_TXN_END = 1
local DIALOG_ENDED = 3

-- CDR and event field names the events writer already uses.
local RESERVED_FIELDS = {
    type = true, call_id = true, from = true, to = true, start = true, answer = true,
    ["end"] = true, setup_delay = true, duration = true, outcome = true, end_reason = true,
    labels = true, aor = true, contact = true, change = true, expires = true, time = true,
}
-- The engine's own call fields that --events-fields turns on (core/call_cdr.h), from setup.
-- A rule's write of one into d.cdr is an error when it runs (not at load: a rule file from
-- before the engine wrote them then only loses those writes, counted, and its rule may be
-- disabled by its breaker); r.event may use the names, registration lines do not carry them.
local ENGINE_FIELDS = {}

local function engine_field_error(k, level)
    error("sipscope: call field '" .. k .. "' is written by sipscope itself " ..
        "(--events-fields: leave it out there for a rule to set it)", level)
end

-- The first of a sorted list of names that the engine writes on call lines, or nil.
function M.engine_field_among(names)
    for _, name in ipairs(names) do
        if ENGINE_FIELDS[name] then
            return name
        end
    end
    return nil
end

local mailbox = require "sipscope.mailbox"
local box = ffi.cast("struct lb_box *", mailbox.box)
local api = ffi.cast("struct lb_api *", mailbox.api)
local ctx, S, METHODS, STATES, ENDS, CHANGES
local out = ffi.new("struct lb_slice[1]")
local addrbuf = ffi.new("char[64]")
local Msg, Dlg, Txn, Reg
-- The message handles' type, the one handle_type("message") makes. Never reassigned, so that
-- compiled code checks a handle against a constant.
local MSG_PTR = ffi.typeof("struct sipscope_message *")

-- ns since the epoch (uint64) to seconds, whole and fraction converted apart so both stay
-- exact (1.7e18 ns as one double would round to 256 ns).
local function seconds(ns)
    return tonumber(ns / 1000000000ULL) + tonumber(ns % 1000000000ULL) / 1e9
end
M.seconds = seconds

local function slice_string()
    return (ffi_string(out[0].p, out[0].len))
end

local function mstr(field)
    if api.msg_str(box, field, out) ~= 0 then
        return (slice_string())
    end
    return nil
end

local function check(h, what)
    if gen_of(h) ~= box.gen then
        error("sipscope: " .. what .. " handle used after its hook returned", 3)
    end
end

local function label_of(name, level)
    local idx = ctx.label_index[name]
    if idx == nil then
        error("sipscope: no label named '" .. tostring(name) .. "' is declared", level)
    end
    local id = 0
    local ids = box.labels
    if ids ~= nil then
        id = ids[idx]
    end
    local l = ctx.labels[idx + 1]
    local text = l.text[id]
    if text == nil then
        api.label_text(api.bridge, idx, id, out)
        text = slice_string()
        l.text[id] = text
    end
    return text
end

-- Fields rules may add to an event line: flat, JSON-friendly, checked on write. A call's fields
-- are kept in C by the call's slot (core/call_fields.h: a slot number is one call's until
-- freed), off the Lua heap: as a Lua table per call they were tens of thousands of live tables
-- for the collector to traverse, and a table walk to encode. A registration change's are the
-- plain table reg_fields, for the dispatch generation reg_gen. Rules write through a small
-- cdata proxy holding (slot, 0) or (REG_KEY, generation), which writes only while it is still
-- current (no closure, no weak map, no Lua pattern). A call's proxy is kept in cdr_proxies
-- (d.cdr is read in most of a call's hooks): it is current while it is its slot's, that very
-- object (rawequal: a later call's proxy of the same slot has the same value).
local byte = string.byte
local new_table = require "table.new"
local table_clear = require "table.clear"

-- The proxy is a pointer to an incomplete struct, as the handles are, whose value encodes (key,
-- gen): it has no members, so that every name goes to __index and __newindex. It was a struct
-- of two const doubles, key and gen, which FFI reads and writes before any metamethod: d.cdr.key
-- read the call's slot, and d.cdr.key = x raised LuaJIT's "attempt to write to constant
-- location", which names no field.
ffi.cdef [[
struct sipscope_fields;
]]
local FIELDS_PTR = ffi.typeof("struct sipscope_fields *")
local REG_KEY, DEAD_KEY = -1, -2 -- proxy keys of r.event and of writes that go nowhere

-- A proxy's value: 4 * slot for a call's fields (slot > 0), 4 * gen + 2 for r.event's, 3 for
-- writes that go nowhere (never 0: a NULL pointer cdata compares equal to nil).
local function Fields(key, gen)
    local v = 3
    if key > 0 then
        v = key * 4
    elseif key == REG_KEY then
        v = gen * 4 + 2
    end
    return (ffi_cast(FIELDS_PTR, v))
end

-- The (key, gen) of proxy p.
local function proxy_key(p)
    local v = tonumber(ffi_cast(uintptr, p))
    local tag = v % 4
    if tag == 0 then
        return v / 4, 0
    elseif tag == 2 then
        return REG_KEY, (v - 2) / 4
    end
    return DEAD_KEY, 0
end
local reg_fields, reg_gen -- the fields of the registration change being dispatched
local cdr_proxies = {} -- call slot -> the proxy of its fields
-- enum event_field_type (core/call_fields.h)
local FIELD_NONE, FIELD_STRING, FIELD_NUMBER, FIELD_BOOLEAN = 0, 1, 2, 3
local field_out = ffi.new("struct lb_field[1]")

-- Longest event field name (call_fields.h, CALL_FIELDS_MAX_NAME).
local MAX_FIELD_NAME = 65535

-- Names longer than this are not remembered by the caches below (identifiers, header_ids),
-- which all rules share and which never forget: a rule asking for long names would otherwise
-- keep their memory for ever, under the cap that every rule shares (another rule would then
-- run out). Real names are short.
local MAX_CACHED_NAME = 64

-- [A-Za-z_][A-Za-z0-9_]*, at most MAX_FIELD_NAME bytes. Names already accepted are remembered
-- (the first 256), so that a write does not run this loop: a hot loop here would start traces
-- that cannot return into the rule's hook ("NYI: return to lower frame"), leaving the hook to
-- the interpreter.
local identifiers, n_identifiers = {}, 0

local function identifier(k)
    if identifiers[k] then
        return true
    end
    local n = #k
    if n == 0 or n > MAX_FIELD_NAME then
        return false
    end
    for i = 1, n do
        local c = byte(k, i)
        local alpha = (c >= 97 and c <= 122) or (c >= 65 and c <= 90) or c == 95
        if not alpha and (i == 1 or c < 48 or c > 57) then
            return false
        end
    end
    if n_identifiers < 256 and n <= MAX_CACHED_NAME then
        identifiers[k] = true
        n_identifiers = n_identifiers + 1
    end
    return true
end

-- Raises the rule's error (at level) unless k may name an event field.
local function check_field_name(k, level)
    if type(k) ~= "string" or not identifier(k) then
        if type(k) == "string" and #k > MAX_FIELD_NAME then
            error("sipscope: event field names are at most " .. MAX_FIELD_NAME ..
                " bytes, got " .. #k, level)
        end
        error("sipscope: event field names are identifiers, got " .. tostring(k), level)
    end
    if RESERVED_FIELDS[k] then
        error("sipscope: event field '" .. k .. "' is written by sipscope itself", level)
    end
end

-- Raises the rule's error (at level) when a call field write found no room.
local function check_stored(rc, level)
    if rc ~= 0 then
        error("not enough memory for the call's event fields (--lua-memory)", level)
    end
end

-- Sets field k of the call whose fields proxy p is (key: the call's slot) in the C store, if p
-- is still current: type, and the value as ptr[0..n) or num (call_field_set's arguments).
local function store_call_field(p, key, k, ty, ptr, n, num, level)
    if ENGINE_FIELDS[k] then
        engine_field_error(k, level + 1)
    end
    if rawequal(cdr_proxies[key], p) then
        check_stored(api.call_field_set(api.bridge, key, k, #k, ty, ptr, n, num), level + 1)
    end
end

-- p[k] = v, k already checked. Errors are raised at level (error()'s, from here).
local function set_field(p, k, v, level)
    local tv = type(v)
    if tv == "number" then
        if v ~= v or v == math.huge or v == -math.huge then
            error("sipscope: event field '" .. k .. "' must be a finite number", level)
        end
    elseif v ~= nil and tv ~= "string" and tv ~= "boolean" then
        error("sipscope: event field '" .. k .. "' must be a string, number or " ..
            "boolean, got a " .. tv, level)
    end
    local key, gen = proxy_key(p)
    if key > 0 then
        if tv == "string" then
            store_call_field(p, key, k, FIELD_STRING, v, #v, 0, level + 1)
        elseif tv == "number" then
            store_call_field(p, key, k, FIELD_NUMBER, nil, 0, v, level + 1)
        elseif tv == "boolean" then
            store_call_field(p, key, k, FIELD_BOOLEAN, nil, 0, v and 1 or 0, level + 1)
        else
            store_call_field(p, key, k, FIELD_NONE, nil, 0, 0, level + 1)
        end
    elseif key == REG_KEY and reg_gen == gen then
        reg_fields[k] = v
    end
end

ffi.metatype("struct sipscope_fields", {
    __index = function(p, k)
        if type(k) ~= "string" then
            return nil
        end
        local key, gen = proxy_key(p)
        if key > 0 then
            if not rawequal(cdr_proxies[key], p) then
                return nil
            end
            local ty = api.call_field_get(api.bridge, key, k, #k, field_out)
            if ty == FIELD_STRING then
                return (ffi_string(field_out[0].p, field_out[0].len))
            elseif ty == FIELD_NUMBER then
                return field_out[0].num
            elseif ty == FIELD_BOOLEAN then
                return field_out[0].boolean ~= 0
            end
        elseif key == REG_KEY and reg_gen == gen then
            return reg_fields[k]
        end
        return nil
    end,
    __newindex = function(p, k, v)
        check_field_name(k, 3)
        set_field(p, k, v, 3)
    end,
    __tostring = function()
        return "sipscope event fields"
    end,
})

-- p[k] = the text ptr[0..n), or nil when ptr is nil, k already checked: for a call's fields
-- (d.cdr) the bytes go from C memory to the store with no Lua string made; r.event's fields are
-- a Lua table, which gets the string. Errors are raised at level (error()'s, from here).
local function set_field_text(p, k, ptr, n, level)
    local key, gen = proxy_key(p)
    if key > 0 then
        if ptr ~= nil then
            store_call_field(p, key, k, FIELD_STRING, ptr, n, 0, level + 1)
        else
            store_call_field(p, key, k, FIELD_NONE, nil, 0, 0, level + 1)
        end
    elseif key == REG_KEY and reg_gen == gen then
        reg_fields[k] = ptr ~= nil and ffi_string(ptr, n) or nil
    end
end

local function check_fields_arg(c, method)
    if not ffi.istype(FIELDS_PTR, c) then
        error("sipscope: m:" .. method .. " takes d.cdr or r.event first", 3)
    end
end

local function handle_type(name, getters, methods)
    local mt = {
        __index = function(h, k)
            if gen_of(h) ~= box.gen then
                error("sipscope: " .. name .. " handle used after its hook returned", 2)
            end
            local g = getters[k]
            if g ~= nil then
                return (g(h))
            end
            local f = methods[k]
            if f ~= nil then
                return f
            end
            error("sipscope: a " .. name .. " has no field '" .. tostring(k) .. "'", 2)
        end,
        __newindex = function(_, k)
            error("sipscope: " .. name .. " handles are read-only (tried to set '" ..
                tostring(k) .. "')", 2)
        end,
        __tostring = function(h)
            return "sipscope " .. name .. (gen_of(h) == box.gen and "" or " (expired)")
        end,
    }
    ffi.metatype("struct sipscope_" .. name, mt)
    local ptr = ffi.typeof("struct sipscope_" .. name .. " *")
    return function(gen)
        return (ffi_cast(ptr, gen))
    end, ptr
end

-- Message ------------------------------------------------------------------------------------

local MSG, MSG_M = {}, {}

function MSG.method()
    if box.status ~= 0 then
        return nil
    end
    local m = box.method
    if m ~= 0 then
        return METHODS[m]
    end
    return (mstr(F_METHOD))
end
-- The method name of the request being dispatched.
function M.method_name()
    local m = box.method
    if m ~= 0 then
        return METHODS[m]
    end
    return (mstr(F_METHOD))
end

function MSG.status()
    local s = box.status
    if s ~= 0 then
        return s
    end
    return nil
end
function MSG.reason()
    if box.status == 0 then
        return nil
    end
    return mstr(F_REASON) or ""
end
function MSG.is_request()
    return box.status == 0
end
function MSG.call_id()
    return (mstr(F_CALL_ID))
end
function MSG.from_tag()
    return (mstr(F_FROM_TAG))
end
function MSG.to_tag()
    return (mstr(F_TO_TAG))
end
function MSG.from()
    return (mstr(F_FROM_URI))
end
function MSG.to()
    return (mstr(F_TO_URI))
end
function MSG.ruri()
    if box.status ~= 0 then
        return nil
    end
    return (mstr(F_RURI))
end
function MSG.cseq()
    return box.cseq
end
function MSG.cseq_method()
    local m = box.cseq_method
    if m ~= 0 then
        return METHODS[m]
    end
    return (mstr(F_CSEQ_METHOD))
end
function MSG.branch()
    return (mstr(F_VIA_BRANCH))
end
-- Address text, made by C. IPv4 addresses are also remembered by value (the last
-- ADDR_CACHE of them): a rule reading m.src_ip per call from a few peers makes no string.
local ADDR_CACHE = 1024
local addr_text, n_addr_text = {}, 0 -- IPv4 address (as box.src4 reads) -> text

local function addr(dst)
    local n = api.msg_addr(box, dst, addrbuf, 64)
    if n > 0 then
        return (ffi_string(addrbuf, n))
    end
    return nil
end

local function addr4(a, dst)
    local s = addr_text[a]
    if s == nil then
        s = addr(dst)
        if n_addr_text >= ADDR_CACHE then
            table_clear(addr_text)
            n_addr_text = 0
        end
        addr_text[a] = s
        n_addr_text = n_addr_text + 1
    end
    return s
end

function MSG.src_ip()
    if box.ipv == 4 then
        return (addr4(box.src4, 0))
    end
    return (addr(0))
end
function MSG.dst_ip()
    if box.ipv == 4 then
        return (addr4(box.dst4, 1))
    end
    return (addr(1))
end
function MSG.src_port()
    return box.sport
end
function MSG.dst_port()
    return box.dport
end
function MSG.transport()
    local l4 = box.l4
    if l4 == 17 then
        return "udp"
    elseif l4 == 6 then
        return "tcp"
    elseif l4 == 256 then -- LB_L4_WS (core/lua_bridge.c): SIP over WebSocket
        return "ws"
    end
    return nil
end
function MSG.time()
    return (seconds(box.time))
end
function MSG.retransmission()
    return band(box.flags, F_RETRANSMISSION) ~= 0
end
function MSG.initial()
    return band(box.flags, F_INITIAL) ~= 0
end
function MSG.orphan()
    return band(box.flags, F_ORPHAN) ~= 0
end
function MSG.late_final()
    return band(box.flags, F_LATE_FINAL) ~= 0
end
function MSG.dialog()
    if box.dialog ~= nil then
        return (Dlg(box.gen))
    end
    return nil
end

-- Header ids (enum sip_hdr, 0 for a header sipscope does not know) by name, for the first 256
-- names rules ask for: a known header is then found by its id, the first straight from the
-- parser's index, without reading the name again.
local header_ids, n_header_ids = {}, 0

local function header_id(name)
    local id = header_ids[name]
    if id == nil then
        id = api.header_id(name, #name)
        if n_header_ids < 256 and #name <= MAX_CACHED_NAME then
            header_ids[name] = id
            n_header_ids = n_header_ids + 1
        end
    end
    return id
end
M.header_id = header_id

-- Message fields a window key can carry after the address (win:src(m, n, with)), as the enum
-- lb_msg_field: the string fields whose m[name] is the field's bytes, nil when empty.
M.key_fields = {call_id = F_CALL_ID, from_tag = F_FROM_TAG, to_tag = F_TO_TAG, from = F_FROM_URI,
                to = F_TO_URI, branch = F_VIA_BRANCH}

local function find_header(name, id, nth)
    if id ~= 0 then
        return api.msg_header_id(box, id, nth, out)
    end
    return api.msg_header(box, name, #name, nth, out)
end

-- m:header(name): the first value of that header (compact forms fold: "i" is Call-ID), or nil.
function MSG_M.header(h, name)
    check(h, "message")
    if type(name) ~= "string" then
        error("sipscope: m:header(name) takes a header name", 2)
    end
    if find_header(name, header_id(name), 0) ~= 0 then
        return (slice_string())
    end
    return nil
end

-- m:ruri_param(name): the value of the Request-URI's parameter `name` (";tgrp=tg1" -> "tg1"),
-- or nil (no such parameter, or a response). Only the value becomes a string.
function MSG_M.ruri_param(h, name)
    check(h, "message")
    if type(name) ~= "string" then
        error("sipscope: m:ruri_param(name) takes a parameter name", 2)
    end
    if api.msg_ruri_param(box, name, #name, out) ~= 0 then
        return (slice_string())
    end
    return nil
end

-- m:copy_to(c, name, what): c[name] = m[what], where c is d.cdr or r.event and what one of the
-- message's fields ("src_ip", "src_port", "transport"...). An address (src_ip, dst_ip) goes
-- from C into a call's fields without becoming a Lua string: from many peers, each call's
-- address was a new string to intern and later collect.
function MSG_M.copy_to(h, c, name, what)
    check(h, "message")
    check_fields_arg(c, "copy_to(c, name, what)")
    check_field_name(name, 3)
    if what == "src_ip" or what == "dst_ip" then
        local n = api.msg_addr(box, what == "dst_ip" and 1 or 0, addrbuf, 64)
        set_field_text(c, name, n > 0 and addrbuf or nil, n, 3)
        return
    end
    local g = MSG[what]
    if g == nil then
        error("sipscope: a message has no field '" .. tostring(what) .. "'", 2)
    end
    set_field(c, name, g(h), 3)
end

-- m is the message handle of the running dispatch (for the helpers' message methods).
local function is_current_message(m)
    return ffi.istype(MSG_PTR, m) and gen_of(m) == box.gen
end
M.is_current_message = is_current_message

-- copier:copy(m, c) of a field copier (sipscope.helpers): entries[0..n) for C, list the same
-- fields as {name, what} or {name, header, max} for r.event, whose fields are a Lua table.
-- Called by the copier's method: errors at level 3 are the rule's.
function M.copy_fields(h, c, entries, n, list, clash)
    if not is_current_message(h) then
        error("sipscope: copier:copy(m, c) takes the message of the running hook", 3)
    end
    if not ffi.istype(FIELDS_PTR, c) then
        error("sipscope: copier:copy(m, c) takes d.cdr or r.event as c", 3)
    end
    local key, gen = proxy_key(c)
    if key > 0 then
        if clash ~= nil then
            engine_field_error(clash, 4)
        end
        if rawequal(cdr_proxies[key], c) then
            check_stored(api.call_fields_copy(api.bridge, key, entries, n), 4)
        end
    elseif key == REG_KEY and reg_gen == gen then
        for i = 1, #list do -- rare (registrations): field by field
            local f = list[i]
            if f.header then
                MSG_M.copy_header_to(h, c, f.name, f.header, f.max)
            else
                MSG_M.copy_to(h, c, f.name, f.what)
            end
        end
    end
end

-- Raises the error of a name that cannot be an event field (at level), for sip.field_copier.
function M.check_field_name(name, level)
    check_field_name(name, level + 1)
end

local u8ptr = ffi.typeof("const uint8_t *")

-- m:copy_header_to(c, name, header[, max_bytes]): c[name] = m:header(header), cut to at most
-- max_bytes bytes without splitting a UTF-8 character, c being d.cdr or r.event. The value goes
-- from the packet into a call's fields without becoming a Lua string. Returns whether the
-- message has the header; when it has not, c[name] is removed.
function MSG_M.copy_header_to(h, c, name, header, max)
    check(h, "message")
    check_fields_arg(c, "copy_header_to(c, name, header[, max_bytes])")
    check_field_name(name, 3)
    if type(header) ~= "string" then
        error("sipscope: m:copy_header_to(c, name, header) takes a header name", 2)
    end
    if max ~= nil and (type(max) ~= "number" or max < 0 or max ~= math.floor(max)) then
        error("sipscope: m:copy_header_to's max_bytes is a whole number of bytes, 0 or more", 2)
    end
    if find_header(header, header_id(header), 0) == 0 then
        set_field_text(c, name, nil, 0, 3)
        return false
    end
    local p, n = out[0].p, tonumber(out[0].len)
    if max ~= nil and n > max then
        local u = ffi_cast(u8ptr, p)
        n = max
        while n > 0 and u[n] >= 0x80 and u[n] < 0xC0 do -- u[n]: the first byte cut off
            n = n - 1
        end
    end
    set_field_text(c, name, p, n, 3)
    return true
end

-- m:headers(name): every value of that header, one per header line, in message order.
function MSG_M.headers(h, name)
    check(h, "message")
    if type(name) ~= "string" then
        error("sipscope: m:headers(name) takes a header name", 2)
    end
    local id = header_id(name)
    local list = {}
    while find_header(name, id, #list) ~= 0 do
        list[#list + 1] = slice_string()
    end
    return list
end

function MSG_M.body(h)
    check(h, "message")
    return (mstr(F_BODY))
end

function MSG_M.raw(h)
    check(h, "message")
    return (mstr(F_RAW))
end

-- m:sdp(): the body parsed as SDP (see sipscope/sdp.lua), or nil without an SDP body; of a
-- multipart body, its application/sdp part.
function MSG_M.sdp(h)
    check(h, "message")
    local body = mstr(F_BODY)
    if body == nil then
        return nil
    end
    if find_header("Content-Type", header_id("Content-Type"), 0) ~= 0 then
        local ct = slice_string()
        local lct = ct:lower()
        if lct:find("^%s*multipart/") then
            body = sdp.part(body, ct)
            if body == nil then
                return nil
            end
        elseif not lct:find("application/sdp", 1, true) then
            return nil
        end
    end
    return sdp.parse(body)
end

function MSG_M.label(h, name)
    check(h, "message")
    return (label_of(name, 3))
end

-- Dialog (a call) ----------------------------------------------------------------------------

local DLG, DLG_M = {}, {}

local function dstr(field)
    if api.dialog_str(box, field, out) ~= 0 then
        return (slice_string())
    end
    return nil
end

function DLG.call_id()
    return (dstr(0))
end
function DLG.from()
    return (dstr(1))
end
function DLG.to()
    return (dstr(2))
end
function DLG.state()
    return STATES[box.d_state]
end
-- b - a in seconds, 0 when b is earlier (a capture out of order).
local function span(a, b)
    if b <= a then
        return 0
    end
    return tonumber(b - a) / 1e9
end

function DLG.start_time()
    return (seconds(box.d_start))
end
function DLG.answer_time()
    local t = box.d_answer
    if t ~= 0 then
        return (seconds(t))
    end
    return nil
end
function DLG.ringing_time()
    local t = box.d_ringing
    if t ~= 0 then
        return (seconds(t))
    end
    return nil
end
function DLG.end_time()
    local t = box.d_end
    if t ~= 0 then
        return (seconds(t))
    end
    return nil
end
function DLG.duration()
    if box.d_answer ~= 0 and box.d_end ~= 0 then
        return (span(box.d_answer, box.d_end))
    end
    return nil
end
function DLG.setup_delay()
    if box.d_answer ~= 0 then
        return (span(box.d_start, box.d_answer))
    end
    return nil
end
function DLG.final_code()
    if box.d_has_outcome ~= 0 then
        return box.d_final_code
    end
    return nil
end
function DLG.end_reason()
    local r = box.d_end_reason
    if r ~= 0 then
        return ENDS[r]
    end
    return nil
end
local ENDED_BY = {"caller", "callee"}
function DLG.ended_by()
    return ENDED_BY[box.d_ended_by]
end
-- The slot of the dispatched call (api.dialog_slot), made if create; 0 for none.
local function call_slot(create)
    local slot = box.d_slot
    if slot < 0 or (slot == 0 and create) then
        slot = api.dialog_slot(api.bridge, box, create and 1 or 0)
        if slot == 0 and create then
            error("sipscope: out of memory for per-call data", 3)
        end
        box.d_slot = slot
    end
    return slot
end

-- The d.vars of a call that has ended and has no slot (its vars were dropped after the message
-- that ended it, or it never had any): nothing would free a slot made now. One empty table per
-- rule that refuses writes, so that a write is an error rather than lost in a new table at each
-- read. A rawset or table.insert still gets in: the table is emptied at each d.vars.
local ENDED_VARS_MT = {
    __newindex = function(_, k)
        error("sipscope: d.vars is read-only once the call has ended (tried to set '" ..
            tostring(k) .. "'): a call's vars live until the message that ends it", 2)
    end,
    __metatable = false,
}
local ended_vars = setmetatable({}, {__mode = "k"}) -- rule -> its table

local function ended_vars_of(rule)
    local t = ended_vars[rule]
    if t == nil then
        t = setmetatable({}, ENDED_VARS_MT)
        ended_vars[rule] = t
    elseif next(t) ~= nil then
        table_clear(t)
    end
    return t
end

-- d.vars: the current rule's scratch table for this call, until the call ends: in the rule's
-- var_slots under the call's slot.
function DLG.vars()
    local store = S.current.var_slots
    local slot = call_slot(false)
    local t
    if slot ~= 0 then
        t = store[slot]
        if t ~= nil then
            return t
        end
    elseif box.d_state == DIALOG_ENDED then
        return (ended_vars_of(S.current))
    end
    slot = call_slot(true)
    t = new_table(0, 4) -- a few fields without growing the table field by field
    store[slot] = t
    return t
end
-- d.cdr: fields added to this call's line in the events file (shared by all rules).
function DLG.cdr()
    local slot = call_slot(false)
    local p = cdr_proxies[slot]
    if p == nil then
        if slot == 0 and box.d_state == DIALOG_ENDED then
            return (Fields(DEAD_KEY, 0)) -- the call has ended: checked, then dropped
        end
        slot = call_slot(true)
        p = Fields(slot, 0)
        cdr_proxies[slot] = p
    end
    return p
end

function DLG_M.label(h, name)
    check(h, "dialog")
    return (label_of(name, 3))
end

-- Transaction ----------------------------------------------------------------------------------

local TXN, TXN_M = {}, {}

function TXN.method()
    return METHODS[box.t_method]
end
function TXN.code()
    return box.t_code
end
function TXN.timeout()
    return box.type == EV_TXN_END and box.code == 0
end
function TXN.response_time()
    return box.delay
end
function TXN.time()
    return (seconds(box.time))
end
TXN.dialog = MSG.dialog

function TXN_M.label(h, name)
    check(h, "transaction")
    return (label_of(name, 3))
end

-- Registration (a binding change) --------------------------------------------------------------

local REG, REG_M = {}, {}

local function bstr(field)
    if api.binding_str(box, field, out) ~= 0 then
        return (slice_string())
    end
    return nil
end

function REG.aor()
    return (bstr(0))
end
function REG.contact()
    return (bstr(1))
end
function REG.expires()
    return box.b_expires
end
function REG.change()
    return CHANGES[box.b_change]
end
function REG.time()
    return (seconds(box.time))
end
-- r.event: fields added to this change's line in the events file.
function REG.event()
    local gen = box.gen
    if reg_fields == nil or reg_gen ~= gen then
        reg_fields, reg_gen = new_table(0, 8), gen -- room for 8 fields before it grows
    end
    return (Fields(REG_KEY, gen))
end

function REG_M.label(h, name)
    check(h, "registration")
    return (label_of(name, 3))
end

-- The fields rules set through r.event in the dispatch that just ran, or nil.
function M.take_event_fields()
    local t = reg_fields
    reg_fields = nil
    if t ~= nil and reg_gen == box.gen and next(t) ~= nil then
        return t
    end
    return nil
end

-- The call in slot has ended, or its slot is being freed: its d.cdr proxy stops writing (a
-- later d.cdr makes a new one, whose writes the slot's free drops). Returns whether it had one.
function M.end_call_fields(slot)
    if cdr_proxies[slot] == nil then
        return false
    end
    cdr_proxies[slot] = nil
    return true
end

-- ctx: box, api, names (from C), labels, label_index, state (.current: the running rule),
-- engine_fields (the names the engine writes on call lines, --events-fields).
-- Returns the four handle constructors: Msg(gen), Dlg(gen), Txn(gen), Reg(gen).
function M.setup(c)
    ctx = c
    S = c.state
    for _, name in ipairs(c.engine_fields or {}) do
        ENGINE_FIELDS[name] = true
    end
    METHODS, STATES, ENDS, CHANGES = c.names.methods, c.names.states, c.names.ends,
        c.names.changes
    Msg = handle_type("message", MSG, MSG_M)
    Dlg = handle_type("dialog", DLG, DLG_M)
    Txn = handle_type("transaction", TXN, TXN_M)
    Reg = handle_type("registration", REG, REG_M)
    return Msg, Dlg, Txn, Reg
end

return M
