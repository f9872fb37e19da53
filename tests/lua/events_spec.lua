-- The --events file: one JSON line per finished call and per registration change, with the
-- operator labels and the fields rules add (d.cdr, r.event).
local t = require "sipscope.testing"

local RULE = [[
local sip = require "sipscope"
sip.label{name = "carrier", default = "other", from = function(m) return m:header("X-Carrier") end}
return {
  on_dialog_end = function(d)
    if d.call_id == "e1" then d.cdr.note = "vip"; d.cdr.score = 3 end
  end,
  on_request = function(m)
    if m.method == "INVITE" and m.dialog then m.dialog.cdr.early = true end
  end,
  on_register = function(r) r.event.note = "hello" end,
}]]

-- The engine's signalling fields (src_ip... q850, cdr_enrich_oracle_spec.lua) are off here
-- unless a case asks for them: these cases are about the lines' own members and rules' fields.
local function new_engine(opts)
    opts.config = opts.config or {}
    if opts.config.events_fields == nil then
        opts.config.events_fields = "none"
    end
    return t.engine(opts)
end

local function engine(config)
    local path = t.write_rule("ev.lua", RULE)
    return new_engine{rules = {path}, events = true, config = config}
end

local function read_lines(e)
    e:events() -- flushes
    local f = assert(io.open(e.events_path, "rb"))
    local lines = {}
    for line in f:lines() do
        lines[#lines + 1] = line
    end
    f:close()
    return lines
end

-- What follows the (empty) labels of a line: the fields rules added, and the closing brace.
-- alice registers at time 200 (User-Agent "café"); on_register runs at the 200 OK, whose
-- message comes from the registrar 192.0.2.1.
local function register_alice(e)
    local reg = {call_id = "r1", from = "sip:alice@a.example", to = "sip:alice@a.example",
                 ruri = "sip:a.example", headers = {"Contact: <sip:alice@192.0.2.10:5060>",
                 "Expires: 600", "User-Agent: caf\195\169"}}
    e:sip(t.request("REGISTER", reg), {time = 200, src = "192.0.2.10:5060"})
    reg.method, reg.to_tag = "REGISTER", "x"
    e:sip(t.response(200, reg), {time = 200.1, src = "192.0.2.1:5060", dst = "192.0.2.10:5060"})
end

local function rule_fields(line)
    return line:sub(line:find('"labels":{},', 1, true) + #'"labels":{},')
end

-- Call id answered: INVITE at time, 200 half a second later, its ACK; and its BYE at time.
local function start_call(e, id, time)
    local c = {call_id = id}
    e:sip(t.request("INVITE", c), {time = time})
    c.method, c.to_tag = "INVITE", "x"
    e:sip(t.response(200, c), {time = time + 0.5})
    c.method, c.branch = nil, "z9hG4bKack" .. id
    e:sip(t.request("ACK", c), {time = time + 0.51})
end

local function bye_call(e, id, time)
    e:sip(t.request("BYE", {call_id = id, to_tag = "x", cseq = 2, branch = "z9hG4bKbye" .. id}),
        {time = time})
end

describe("the events file", function()
    it("has a CDR per finished call, with labels and rule fields", function()
        local e = engine()
        t.call(e, {call_id = "e1", time = 10, setup = 2, duration = 30, headers = {"X-Carrier: blue"}})
        local lines = read_lines(e)
        assert.are.equal(1, #lines)
        assert.are.equal('{"type":"call","call_id":"e1","from":"sip:alice@a.example",' ..
            '"to":"sip:bob@b.example","start":"2023-11-14T22:13:30.000Z",' ..
            '"answer":"2023-11-14T22:13:32.000Z","end":"2023-11-14T22:14:02.000Z",' ..
            '"setup_delay":2,"duration":30,"outcome":200,"end_reason":"bye",' ..
            '"labels":{"carrier":"blue"},"early":true,"note":"vip","score":3}', lines[1])
        assert.are.equal(1, e:metric("sipscope_events_total", {type = "call"}))
        e:close()
    end)

    it("writes null for what a call never had, and timeout outcomes", function()
        local e = engine {t1 = "100ms"}
        -- hung up while ringing: no answer, no outcome yet
        e:sip(t.request("INVITE", {call_id = "early"}), {time = 0.25})
        e:sip(t.response(180, {call_id = "early", to_tag = "x"}), {time = 0.5})
        e:sip(t.request("BYE", {call_id = "early", to_tag = "x", cseq = 2}), {time = 1})
        -- never answered at all: Timer B (6.4 s)
        e:sip(t.request("INVITE", {call_id = "silent"}), {time = 2})
        e:advance(10)
        local ev = e:events()
        assert.are.equal(2, #ev)
        local cjson = require "cjson"
        assert.are.equal("early", ev[1].call_id)
        assert.are.equal("2023-11-14T22:13:20.250Z", ev[1].start)
        assert.are.equal(cjson.null, ev[1].answer)
        assert.are.equal(cjson.null, ev[1].setup_delay)
        assert.are.equal(cjson.null, ev[1].duration)
        assert.are.equal(cjson.null, ev[1].outcome)
        assert.are.equal("bye", ev[1].end_reason)
        assert.are.equal("silent", ev[2].call_id)
        assert.are.equal("timeout", ev[2].outcome)
        assert.are.equal("timeout", ev[2].end_reason)
        assert.are.equal("2023-11-14T22:13:28.400Z", ev[2]["end"])
        assert.are.equal("other", ev[2].labels.carrier)
        e:close()
    end)

    it("has a line per registration change", function()
        local e = engine()
        local reg = {call_id = "r1", from = "sip:alice@a.example", to = "sip:alice@a.example",
                     ruri = "sip:a.example",
                     headers = {"Contact: <sip:alice@192.0.2.10:5060>", "Expires: 600"}}
        e:sip(t.request("REGISTER", reg), {time = 1})
        reg.method, reg.to_tag = "REGISTER", "x"
        e:sip(t.response(200, reg), {time = 1.1})
        local lines = read_lines(e)
        assert.are.equal('{"type":"registration","aor":"sip:alice@a.example",' ..
            '"contact":"sip:alice@192.0.2.10:5060","change":"added","expires":600,' ..
            '"time":"2023-11-14T22:13:21.100Z","labels":{"carrier":"other"},"note":"hello"}',
            lines[1])
        assert.are.equal(1, e:metric("sipscope_events_total", {type = "registration"}))
        e:close()
    end)

    it("writes the engine's signalling fields after the labels, before the rules' fields", function()
        local e = engine({events_fields = "all"})
        t.call(e, {call_id = "e1", time = 10, setup = 2, duration = 30,
                   headers = {"X-Carrier: blue", "User-Agent: Phone \"1\""}})
        local lines = read_lines(e)
        assert.are.equal('{"type":"call","call_id":"e1","from":"sip:alice@a.example",' ..
            '"to":"sip:bob@b.example","start":"2023-11-14T22:13:30.000Z",' ..
            '"answer":"2023-11-14T22:13:32.000Z","end":"2023-11-14T22:14:02.000Z",' ..
            '"setup_delay":2,"duration":30,"outcome":200,"end_reason":"bye",' ..
            '"labels":{"carrier":"blue"},"src_ip":"10.0.0.1","src_port":5060,' ..
            '"dst_ip":"10.0.0.2","dst_port":5060,"transport":"udp",' ..
            '"user_agent":"Phone \\"1\\"","pdd":0.1,"hangup":"caller",' ..
            '"early":true,"note":"vip","score":3}', lines[1])
        e:close()
    end)

    it("keeps the d.cdr fields of calls going on at a reload, not their d.vars", function()
        -- Calls a and b start under v1, whose start hook writes a field and a var. a ends
        -- under v2, whose end hook writes another field and looks for the var; b ends after a
        -- second reload, to rules that hook nothing; c starts and ends under those. The fields
        -- used to go with the old rules' state: a's line had only v2's, b's none.
        local _, dir = t.write_rule("cdr.lua", [[
return {on_dialog_start = function(d) d.cdr.before = "v1"; d.vars.seen = true end}]])
        local e = new_engine{rules_dir = dir, events = true}
        start_call(e, "a", 1)
        start_call(e, "b", 2)
        t.write_rule("cdr.lua", [[
return {on_dialog_end = function(d) d.cdr.after = "v2"; d.cdr.vars_kept = d.vars.seen == true end}]],
            dir)
        assert.is_true(e:reload())
        bye_call(e, "a", 10)
        t.write_rule("cdr.lua", "return {}", dir)
        assert.is_true(e:reload())
        bye_call(e, "b", 11)
        start_call(e, "c", 12)
        bye_call(e, "c", 20)
        local lines = read_lines(e)
        assert.are.equal(3, #lines)
        assert.truthy(lines[1]:find('"call_id":"a"', 1, true), lines[1])
        assert.are.equal('"after":"v2","before":"v1","vars_kept":false}', rule_fields(lines[1]))
        assert.truthy(lines[2]:find('"call_id":"b"', 1, true), lines[2])
        assert.are.equal('"before":"v1"}', rule_fields(lines[2]))
        assert.truthy(lines[3]:find('"call_id":"c"', 1, true), lines[3])
        assert.are.equal('"labels":{}}', lines[3]:sub(-#'"labels":{}}')) -- no field
        assert.are.equal(2, e:metric("sipscope_rules_reloads_total", {result = "success"}))
        e:close()
    end)

    it("drops the calls' fields at a reload when they would crowd the new rules out of memory", function()
        -- 20 calls hold 4 MB of d.cdr fields under an 8 MiB cap, and the new rules keep 4.5 MB
        -- of their own. Handed over, the fields put the new state past its cap for good: every
        -- dispatch then failed (Dlg handles included), the calls' lines lost the new rules'
        -- fields too, and their slots and fields were never freed, reload after reload (a
        -- review's reproducer). Now the fields stay with the old state, and the log says so.
        local _, dir = t.write_rule("cdr.lua", [[
return {on_dialog_start = function(d) d.cdr.big = string.rep("x", 200000) end}]])
        local e = new_engine{rules_dir = dir, events = true, config = {lua_memory = "8MiB"}}
        for i = 1, 20 do
            start_call(e, "c" .. i, i)
        end
        t.write_rule("cdr.lua", [[
local keep = {}
for i = 1, 5 do keep[i] = string.rep(tostring(i), 900000) end
return {on_dialog_end = function(d) d.cdr.after = "v2" end,
        on_request = function(m) local t = {#keep} for i = 1, 100 do t[i] = {i} end end}]], dir)
        assert.is_true(e:reload())
        e:sip(t.request("OPTIONS", {call_id = "o1"}), {time = 50})
        for i = 1, 20 do
            bye_call(e, "c" .. i, 60 + i)
        end
        local ev = e:events()
        assert.are.equal(20, #ev)
        for i = 1, 20 do
            assert.are.equal("c" .. i, ev[i].call_id)
            assert.are.equal("v2", ev[i].after)
            assert.is_nil(ev[i].big)
        end
        assert.is_nil(e:exposition():find("sipscope_rule_errors_total{", 1, true))
        t.write_rule("cdr.lua", "return {}", dir)
        assert.is_true(e:reload())
        -- Nothing of the 20 calls is left (it was 5.3 MB).
        assert.is_true(e:metric("sipscope_lua_memory_bytes") < 1048576)
        e:close()
    end)

    it("escapes what needs escaping", function()
        local e = engine()
        t.call(e, {call_id = 'q"\\\239\191\189x', from = "sip:\255@a.example"})
        local lines = read_lines(e)
        assert.truthy(lines[1]:find('"call_id":"q\\"\\\\\239\191\189x"', 1, true), lines[1])
        assert.truthy(lines[1]:find('"from":"sip:\239\191\189@a.example"', 1, true), lines[1])
        e:close()
    end)

    it("escapes the fields rules add", function()
        local path = t.write_rule("esc.lua", [[
return {on_dialog_end = function(d)
  local c = d.cdr
  c.plain = "10.0.0.1"
  c.quoted = 'a"b\\c'
  c.control = "x\1\127y"
  c.utf8 = "\195\169\226\130\172"
  c.broken = "\255\195"
  c.int = 42
  c.frac = 0.5
  c.yes = true
end}]])
        local e = new_engine{rules = {path}, events = true}
        t.call(e, {call_id = "x1"})
        local line = read_lines(e)[1]
        local tail = rule_fields(line)
        assert.are.equal('"broken":"\239\191\189\239\191\189","control":"x\\u0001\\u007fy",' ..
            '"frac":0.5,"int":42,"plain":"10.0.0.1","quoted":"a\\"b\\\\c",' ..
            '"utf8":"\195\169\226\130\172","yes":true}', tail)
        e:close()
    end)

    it("writes rule numbers in their shortest exact form, keys in byte order past 16 fields", function()
        -- 20 fields (the sort changes method past 16) whose names share their first bytes, and
        -- numbers written as the exposition writes them: 0.1, not 0.10000000000000001.
        local path = t.write_rule("many.lua", [[
return {on_dialog_end = function(d)
  local c = d.cdr
  for i = 20, 1, -1 do c["k" .. i] = i end
  c.tenth = 0.1
  c.third = 1 / 3
  c.big = 2 ^ 53
  c.neg = -2.5
end}]])
        local e = new_engine{rules = {path}, events = true}
        t.call(e, {call_id = "m1"})
        local line = read_lines(e)[1]
        local tail = rule_fields(line)
        local keys = {}
        for i = 1, 20 do keys[#keys + 1] = "k" .. i end
        table.sort(keys)
        local want = {'"big":9007199254740992'}
        for _, k in ipairs(keys) do want[#want + 1] = ('"%s":%s'):format(k, k:sub(2)) end
        want[#want + 1] = '"neg":-2.5'
        want[#want + 1] = '"tenth":0.1'
        want[#want + 1] = '"third":0.3333333333333333'
        assert.are.equal(table.concat(want, ",") .. "}", tail)
        e:close()
    end)

    it("orders a dozen fields bytewise, names that share their first eight bytes too", function()
        local path = t.write_rule("order.lua", [[
local names = {"src_port_b", "b", "src_port", "src_port_a", "a_", "A", "src_por", "src_portZ",
               "_x", "src_ip", "a"}
return {on_dialog_end = function(d)
  for i, k in ipairs(names) do d.cdr[k] = i end
end}]])
        local e = new_engine{rules = {path}, events = true}
        t.call(e, {call_id = "o1"})
        local keys = {}
        for k in rule_fields(read_lines(e)[1]):gmatch('"([%w_]+)":') do
            keys[#keys + 1] = k
        end
        assert.are.same({"A", "_x", "a", "a_", "b", "src_ip", "src_por", "src_port", "src_portZ",
                         "src_port_a", "src_port_b"}, keys)
        e:close()
    end)

    it("keeps every field of a call with thousands of fields", function()
        -- 9,000 fields, more than a C function's Lua stack holds (about 8,000 slots), so an
        -- encoder that kept values on its stack would lose some. Every field must be written
        -- once, in byte order (qsort past 16 fields).
        local path = t.write_rule("huge.lua", [[
return {on_dialog_end = function(d)
  local c = d.cdr
  for i = 1, 9000 do c["f" .. i] = i end
end}]])
        local e = new_engine{rules = {path}, events = true, config = {rule_budget = "2s"}}
        t.call(e, {call_id = "h1"})
        local line = read_lines(e)[1]
        local tail = rule_fields(line)
        local keys, n = {}, 0
        for k, v in tail:gmatch('"(f%d+)":(%d+)') do
            n = n + 1
            assert.are.equal(k:sub(2), v)
            keys[#keys + 1] = k
        end
        assert.are.equal(9000, n)
        local sorted = {}
        for i, k in ipairs(keys) do sorted[i] = k end
        table.sort(sorted)
        assert.are.same(sorted, keys)
        e:close()
    end)

    it("is written without rules too", function()
        local e = new_engine{events = true}
        t.call(e, {call_id = "n1", time = 0.5})
        local ev = e:events()
        assert.are.equal(1, #ev)
        assert.are.equal("n1", ev[1].call_id)
        assert.are.equal(10, ev[1].duration)
        assert.are.same({}, ev[1].labels)
        e:close()
    end)

    it("counts a write error and goes on", function()
        local path = t.write_rule("ev.lua", RULE)
        local e = new_engine{rules = {path}, events = "/dev/full"}
        t.call(e, {call_id = "f1"})
        e:flush() -- fails: no space left on /dev/full
        assert.are.equal(1, e:metric("sipscope_events_errors_total"))
        t.call(e, {call_id = "f2", time = 100})
        assert.are.equal(2, e:metric("sip_dialogs_ended_total", {reason = "bye", carrier = "other"}))
        e:close()
    end)

    it("holds calls' fields within --lua-memory: a write past it fails as a memory error", function()
        -- A 700 KiB field takes a 1 MiB buffer in C. With the rules' heap near 1.5 MiB (state
        -- and string), one such call fits in 3 MiB and two do not. As with any allocation past
        -- the cap, the rule is then disabled: b3 gets no field. b1's buffer goes back when its
        -- line is written.
        local path = t.write_rule("big.lua", [[
local BIG = string.rep("x", 700 * 1024)
return {on_dialog_start = function(d) d.cdr.n = 1; d.cdr.big = BIG end}]])
        local e = new_engine{rules = {path}, events = true,
                           config = {lua_memory = "3MiB", rule_budget = "2s"}}
        e:sip(t.request("INVITE", {call_id = "b1"}), {time = 1})
        e:sip(t.request("INVITE", {call_id = "b2"}), {time = 2})
        e:sip(t.response(486, {call_id = "b1", to_tag = "x"}), {time = 3})
        e:sip(t.response(486, {call_id = "b2", to_tag = "y"}), {time = 4})
        e:sip(t.request("INVITE", {call_id = "b3"}), {time = 5})
        e:sip(t.response(486, {call_id = "b3", to_tag = "z"}), {time = 6})
        assert.are.equal(1, e:metric("sipscope_rule_errors_total",
            {rule = "big", hook = "on_dialog_start", kind = "memory"}))
        local ev = e:events()
        assert.are.equal(3, #ev)
        local by_id = {}
        for _, line in ipairs(ev) do
            by_id[line.call_id] = line
        end
        assert.are.equal(700 * 1024, #by_id.b1.big)
        assert.are.equal(1, by_id.b2.n) -- written before the write that failed
        assert.is_nil(by_id.b2.big)
        assert.are.equal(1, e:metric("sipscope_rule_disabled", {rule = "big"}))
        assert.is_nil(by_id.b3.n)
        assert.is_true(e:metric("sipscope_lua_memory_bytes") < 2 * 1024 * 1024)
        e:close()
    end)

    it("counts each line a failed write loses, and only written lines as written", function()
        local e = new_engine{events = "/dev/full"}
        for i = 1, 3 do
            t.call(e, {call_id = "g" .. i, time = i})
        end
        -- The three lines wait in one batch: nothing is written or lost yet.
        assert.are.equal(0, e:metric("sipscope_events_errors_total"))
        e:flush()
        assert.are.equal(3, e:metric("sipscope_events_errors_total"))
        assert.are.equal(0, e:metric("sipscope_events_total", {type = "call"}))
        e:close()
        local ok = new_engine{events = true}
        for i = 1, 3 do
            t.call(ok, {call_id = "w" .. i, time = i})
        end
        assert.are.equal(0, ok:metric("sipscope_events_total", {type = "call"}))
        ok:flush()
        assert.are.equal(3, ok:metric("sipscope_events_total", {type = "call"}))
        assert.are.equal(0, ok:metric("sipscope_events_errors_total"))
        assert.are.equal(3, #ok:events())
        ok:close()
    end)

    it("takes field names up to 65,535 bytes and says so past that", function()
        local path = t.write_rule("names.lua", [[
return {on_dialog_start = function(d)
  d.cdr[string.rep("a", 65535)] = 1
  d.cdr.e_long = select(2, pcall(function() d.cdr[string.rep("b", 65536)] = 2 end))
end}]])
        local e = new_engine{rules = {path}, events = true}
        t.call(e, {call_id = "n1"})
        local ev = e:events()
        assert.are.equal(1, #ev)
        assert.are.equal(1, ev[1][string.rep("a", 65535)])
        assert.is_nil(ev[1][string.rep("b", 65536)])
        assert.are.equal(path .. ":3: sipscope: event field names are at most 65535 bytes, " ..
            "got 65536", ev[1].e_long)
        e:close()
    end)

    it("drops and counts every line over 1 MiB, whatever lines came before it", function()
        -- A line of 1,000,000 bytes is written and grows the writer's buffer to 2 MiB; the
        -- 1,500,000-byte line after it fits that buffer but is still over the limit. Each size
        -- is the field's; the line adds a few hundred bytes around it.
        local path = t.write_rule("sizes.lua", [[
local size = {l1 = 200000, l2 = 1000000, l3 = 1500000, l4 = 100}
return {on_dialog_start = function(d) d.cdr.big = string.rep("y", size[d.call_id]) end}]])
        local e = new_engine{rules = {path}, events = true, config = {rule_budget = "2s"}}
        for i = 1, 4 do
            t.call(e, {call_id = "l" .. i, time = i})
        end
        local ev = e:events()
        assert.are.equal(3, #ev)
        assert.are.same({"l1", "l2", "l4"}, {ev[1].call_id, ev[2].call_id, ev[3].call_id})
        assert.are.same({200000, 1000000, 100}, {#ev[1].big, #ev[2].big, #ev[3].big})
        assert.are.equal(1, e:metric("sipscope_events_errors_total"))
        assert.are.equal(3, e:metric("sipscope_events_total", {type = "call"}))
        e:close()
    end)

    it("takes message fields and headers straight from C: m:copy_to, m:copy_header_to", function()
        local path = t.write_rule("copy.lua", [[
local first
return {
  on_dialog_start = function(d, m)
    local c = d.cdr
    if d.call_id == "k2" then
      m:copy_to(first, "stale", "src_ip") -- k1's proxy: its call has ended, nothing is written
      m:copy_header_to(first, "stale_ua", "User-Agent")
      m:copy_to(c, "src_ip", "src_ip")
      return
    end
    first = c
    m:copy_to(c, "src_ip", "src_ip")
    m:copy_to(c, "dst_ip", "dst_ip")
    m:copy_to(c, "sport", "src_port")
    m:copy_to(c, "tr", "transport")
    m:copy_to(c, "meth", "method")
    c.ua_found = m:copy_header_to(c, "ua", "User-Agent")
    m:copy_header_to(c, "ua5", "User-Agent", 5) -- "caf\195\169": the 5 bytes hold the whole e-acute
    m:copy_header_to(c, "ua4", "User-Agent", 4) -- the cut would split it: "caf"
    m:copy_header_to(c, "ua0", "User-Agent", 0)
    m:copy_header_to(c, "ua_long", "User-Agent", 1000)
    c.gone = "x"
    c.absent_found = m:copy_header_to(c, "gone", "X-Absent") -- removes gone
    m:copy_header_to(c, "compact", "i") -- a compact form: Call-ID
    m:copy_header_to(c, "custom", "x-CUSTOM") -- an unknown header, by name in any case
    local function where(f) local _, err = pcall(f); return err end
    c.e_target = where(function() m:copy_to({}, "x", "src_ip") end)
    c.e_name = select(2, pcall(m.copy_to, m, c, "no good", "src_ip"))
    c.e_reserved = select(2, pcall(m.copy_header_to, m, c, "call_id", "User-Agent"))
    c.e_what = select(2, pcall(m.copy_to, m, c, "x", "nothing"))
    c.e_type = where(function() m:copy_to(c, "x", "dialog") end)
    c.e_header = select(2, pcall(m.copy_header_to, m, c, "x", 5))
    c.e_max = select(2, pcall(m.copy_header_to, m, c, "x", "User-Agent", 1.5))
    c.e_neg = select(2, pcall(m.copy_header_to, m, c, "x", "User-Agent", -1))
  end,
  on_register = function(r, m)
    m:copy_to(r.event, "src", "src_ip")
    r.event.found = m:copy_header_to(r.event, "ua", "User-Agent", 4)
    m:copy_header_to(r.event, "none", "X-Absent")
  end,
}]])
        local e = new_engine{rules = {path}, events = true}
        t.call(e, {call_id = "k1", time = 1, src = "192.0.2.7:5070", dst = "198.51.100.2:5060",
                   headers = {"User-Agent: caf\195\169-phone/2", "X-Custom: yes"}})
        t.call(e, {call_id = "k2", time = 100, src = "[2001:db8::7]:5060",
                   dst = "[2001:db8::1]:5060", headers = {"User-Agent: other"}})
        register_alice(e)
        local lines = read_lines(e)
        assert.are.equal(3, #lines)
        assert.are.equal('"absent_found":false,"compact":"k1","custom":"yes",' ..
            '"dst_ip":"198.51.100.2",' ..
            '"e_header":"sipscope: m:copy_header_to(c, name, header) takes a header name",' ..
            '"e_max":"sipscope: m:copy_header_to\'s max_bytes is a whole number of bytes, 0 or more",' ..
            '"e_name":"sipscope: event field names are identifiers, got no good",' ..
            '"e_neg":"sipscope: m:copy_header_to\'s max_bytes is a whole number of bytes, 0 or more",' ..
            '"e_reserved":"sipscope: event field \'call_id\' is written by sipscope itself",' ..
            '"e_target":"' .. path .. ':27: sipscope: m:copy_to(c, name, what) takes d.cdr or r.event first",' ..
            '"e_type":"' .. path .. ':31: sipscope: event field \'x\' must be a string, ' ..
            'number or boolean, got a cdata",' ..
            '"e_what":"sipscope: a message has no field \'nothing\'",' ..
            '"meth":"INVITE","sport":5070,"src_ip":"192.0.2.7","tr":"udp",' ..
            '"ua":"caf\195\169-phone/2","ua0":"","ua4":"caf","ua5":"caf\195\169",' ..
            '"ua_found":true,"ua_long":"caf\195\169-phone/2"}', rule_fields(lines[1]))
        assert.are.equal('"src_ip":"2001:db8::7"}', rule_fields(lines[2]))
        assert.truthy(lines[3]:find(',"found":true,"src":"192.0.2.1","ua":"caf"}', 1, true),
            lines[3])
        e:close()
    end)

    it("copies a message's fields into d.cdr and r.event in one call: sip.field_copier", function()
        -- The same fields written by a copier and one by one: the lines must be equal.
        local path = t.write_rule("copier.lua", [[
local sip = require "sipscope"
local copier = sip.field_copier{
  src_ip = "src_ip", dst_ip = "dst_ip", sport = "src_port", dport = "dst_port",
  tr = "transport", ftag = "from_tag", ttag = "to_tag", to_uri = "to",
  ua = {header = "User-Agent"}, ua4 = {header = "User-Agent", max_bytes = 4},
  ua5 = {header = "User-Agent", max_bytes = 5}, ua0 = {header = "User-Agent", max_bytes = 0},
  gone = {header = "X-Absent"}, compact = {header = "i"}, custom = {header = "x-CUSTOM"},
}
local small = sip.field_copier{src = "src_ip", ua = {header = "User-Agent", max_bytes = 4},
                               none = {header = "X-Absent"}}
local function one_by_one(m, c)
  m:copy_to(c, "src_ip", "src_ip") m:copy_to(c, "dst_ip", "dst_ip")
  m:copy_to(c, "sport", "src_port") m:copy_to(c, "dport", "dst_port")
  m:copy_to(c, "tr", "transport") m:copy_to(c, "ftag", "from_tag")
  m:copy_to(c, "ttag", "to_tag") m:copy_to(c, "to_uri", "to")
  m:copy_header_to(c, "ua", "User-Agent") m:copy_header_to(c, "ua4", "User-Agent", 4)
  m:copy_header_to(c, "ua5", "User-Agent", 5) m:copy_header_to(c, "ua0", "User-Agent", 0)
  m:copy_header_to(c, "gone", "X-Absent") m:copy_header_to(c, "compact", "i")
  m:copy_header_to(c, "custom", "x-CUSTOM")
end
return {
  on_dialog_start = function(d, m)
    local c = d.cdr
    c.gone = "x" -- removed by both: the message has no X-Absent
    c.ttag = "x" -- removed by both: the INVITE has no To tag
    if d.call_id:sub(1, 1) == "c" then
      copier:copy(m, c)
    else
      one_by_one(m, c)
    end
    c.size = copier:size()
    c.e_target = select(2, pcall(function() copier:copy(m, {}) end))
    c.e_handle = select(2, pcall(function() copier:copy(d, c) end))
  end,
  on_register = function(r, m)
    small:copy(m, r.event)
  end,
}]])
        local e = new_engine{rules = {path}, events = true}
        for _, id in ipairs({"c1", "o1"}) do
            t.call(e, {call_id = id, from_tag = id .. "-tag", to = "sip:bob@example.com",
                       time = 1, src = "192.0.2.7:5070", dst = "198.51.100.2:5060",
                       headers = {"User-Agent: caf\195\169-phone/2", "X-Custom: yes"}})
        end
        for _, id in ipairs({"c6", "o6"}) do
            t.call(e, {call_id = id, from_tag = id .. "-tag", to = "sip:bob@example.com",
                       time = 2, src = "[2001:db8::7]:5060", dst = "[2001:db8::1]:5060"})
        end
        register_alice(e)
        local lines = read_lines(e)
        assert.are.equal(5, #lines)
        local e_target = '"e_handle":"' .. path .. ':33: sipscope: copier:copy(m, c) takes ' ..
            'the message of the running hook","e_target":"' .. path .. ':32: sipscope: ' ..
            'copier:copy(m, c) takes d.cdr or r.event as c",'
        assert.are.equal('"compact":"c1","custom":"yes","dport":5060,"dst_ip":"198.51.100.2",' ..
            e_target .. '"ftag":"c1-tag","size":15,"sport":5070,"src_ip":"192.0.2.7",' ..
            '"to_uri":"sip:bob@example.com","tr":"udp","ua":"caf\195\169-phone/2","ua0":"",' ..
            '"ua4":"caf","ua5":"caf\195\169"}', rule_fields(lines[1]))
        assert.are.equal(rule_fields(lines[1]):gsub('"c1', '"o1'), rule_fields(lines[2]))
        assert.are.equal('"compact":"c6","dport":5060,"dst_ip":"2001:db8::1",' .. e_target ..
            '"ftag":"c6-tag","size":15,"sport":5060,"src_ip":"2001:db8::7",' ..
            '"to_uri":"sip:bob@example.com","tr":"udp"}', rule_fields(lines[3]))
        assert.are.equal(rule_fields(lines[3]):gsub('"c6', '"o6'), rule_fields(lines[4]))
        assert.truthy(lines[5]:find(',"src":"192.0.2.1","ua":"caf"}', 1, true), lines[5])
        e:close()
    end)

    it("refuses a field copier that cannot be built, at load, naming the file", function()
        local cases = {
            {'{x = "method"}', "sip.field_copier: x = 'method': a copier copies src_ip"},
            {'{x = {header = 5}}', "sip.field_copier: x: header is a header name"},
            {'{x = {header = "A", max_bytes = -1}}', "x: max_bytes is a whole number"},
            {'{x = {header = "A", max = 1}}', "x: unknown field 'max' (header, max_bytes)"},
            {'{x = 5}', "x takes a message field's name or {header = name[, max_bytes = n]}"},
            {'{call_id = "src_ip"}', "event field 'call_id' is written by sipscope itself"},
            {'{["no good"] = "src_ip"}', "event field names are identifiers, got no good"},
            {'"src_ip"', "sip.field_copier takes a table"},
        }
        for i, case in ipairs(cases) do
            local path = t.write_rule("badcopier" .. i .. ".lua",
                'local c = require("sipscope").field_copier(' .. case[1] .. ')\nreturn {}')
            local ok, err = pcall(new_engine, {rules = {path}, events = true})
            assert.is_false(ok)
            assert.truthy(err:find("badcopier" .. i .. ".lua:1: ", 1, true), err)
            -- The API's own "sipscope: " is dropped after the location: the caller says it.
            assert.falsy(err:find(".lua:1: sipscope: ", 1, true), err)
            assert.truthy(err:find(case[2], 1, true), err)
        end
        local late = t.write_rule("latecopier.lua", [[
return {on_message = function(m) require("sipscope").field_copier{x = "src_ip"} end}]])
        local e = new_engine{rules = {late}}
        e:sip(t.request("OPTIONS", {call_id = "l1"}))
        assert.are.equal(1, e:metric("sipscope_rule_errors_total",
                                     {rule = "latecopier", hook = "on_message", kind = "api"}))
        e:close()
    end)

    it("takes key and gen as field names like any other, in d.cdr and r.event", function()
        -- They were the proxy's own const members: reading d.cdr.key gave the call's slot, and
        -- writing it raised "attempt to write to constant location", naming no field.
        local path = t.write_rule("keygen.lua", [[
return {
  on_dialog_start = function(d)
    d.cdr.before = tostring(d.cdr.key) .. "/" .. tostring(d.cdr.gen)
    d.cdr.key = "k1"
    d.cdr.gen = 2
  end,
  on_dialog_end = function(d) d.cdr.back = d.cdr.key .. "/" .. d.cdr.gen end,
  on_register = function(r)
    r.event.key = "rk"
    r.event.gen = 3
    r.event.back = r.event.key .. "/" .. r.event.gen
  end,
}]])
        local e = new_engine{rules = {path}, events = true}
        t.call(e, {call_id = "c1", time = 1})
        register_alice(e)
        local lines = read_lines(e)
        assert.are.equal(2, #lines)
        assert.are.equal('"back":"k1/2","before":"nil/nil","gen":2,"key":"k1"}',
            rule_fields(lines[1]))
        assert.are.equal('"back":"rk/3","gen":3,"key":"rk"}', rule_fields(lines[2]))
        assert.is_nil(e:exposition():find("sipscope_rule_errors_total{", 1, true))
        e:close()
    end)

    it("never gives a call the fields written after another call's end", function()
        -- The 486 ends c1 before on_response runs: its write goes nowhere. c2 then reuses
        -- c1's slot (d.vars takes it first) and must not inherit the write.
        local path = t.write_rule("reuse.lua", [[
return {
  on_request = function(m)
    if m.method == "INVITE" and m.dialog then m.dialog.vars.seen = true end
  end,
  on_response = function(m)
    if m.status >= 300 and m.dialog then m.dialog.cdr.fail = m.status end
  end,
}]])
        local e = new_engine{rules = {path}, events = true}
        e:sip(t.request("INVITE", {call_id = "c1"}), {time = 1})
        e:sip(t.response(486, {call_id = "c1", to_tag = "x"}), {time = 1.5})
        t.call(e, {call_id = "c2", time = 3})
        local ev = e:events()
        assert.are.equal(2, #ev)
        assert.are.equal("c1", ev[1].call_id)
        assert.are.equal(486, ev[1].outcome)
        assert.is_nil(ev[1].fail)
        assert.are.equal("c2", ev[2].call_id)
        assert.is_nil(ev[2].fail)
        e:close()
    end)

    it("starts each call with no fields, though a finished call's field table is reused", function()
        -- Calls one after the other: each one's fields table is emptied and serves the next.
        -- The rule keeps the first call's d.cdr and writes through it during later calls:
        -- those writes must reach no line.
        local path = t.write_rule("recycle.lua", [[
local first
return {
  on_dialog_start = function(d)
    local c = d.cdr
    if d.call_id == "r1" then
      first = c
      c.only_r1 = 1
      c.shared = "r1"
    else
      first.stale = d.call_id
      c.shared = d.call_id
    end
    assert(d.cdr == c, "one proxy per call")
  end,
  on_dialog_end = function(d)
    if d.call_id ~= "r1" then
      first.stale_end = d.call_id
    end
    d.cdr.ended = d.call_id
  end,
}]])
        local e = new_engine{rules = {path}, events = true}
        for i = 1, 4 do
            t.call(e, {call_id = "r" .. i, time = 20 * i})
        end
        local lines = read_lines(e)
        assert.are.equal(4, #lines)
        assert.are.equal('"ended":"r1","only_r1":1,"shared":"r1"}', rule_fields(lines[1]))
        for i = 2, 4 do
            assert.are.equal(('"ended":"r%d","shared":"r%d"}'):format(i, i),
                rule_fields(lines[i]))
        end
        -- No hook failed (the proxy check above included): no error series at all.
        assert.is_nil(e:exposition():find("sipscope_rule_errors_total{", 1, true))
        e:close()
    end)
end)
